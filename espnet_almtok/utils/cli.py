"""What the package's command-line tools share: log options and argument types."""

import argparse
import logging
from typing import Callable

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    """Add ``--log_level`` (any case) to ``parser``."""
    parser.add_argument(
        "--log_level", type=str.upper, default=default, choices=LOG_LEVELS
    )


def setup_logging(level: str) -> None:
    """Log ``level`` and above to stderr, in ESPnet's format."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def positive(kind: Callable) -> Callable:
    """An argparse type: ``kind`` values greater than 0."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse
