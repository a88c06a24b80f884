"""Encode/decode speed and memory of codec systems (see espnet_almtok.eval.speed)."""

import argparse
from pathlib import Path
from typing import List, Optional, Tuple

from espnet_almtok.eval import speed
from espnet_almtok.model.codec import DEFAULT_CHUNK_SECONDS
from espnet_almtok.utils.cli import add_log_level, positive, setup_logging


def parse_system(text: str) -> Tuple[str, str, Optional[str]]:
    """``NAME=CONFIG[:MODEL_FILE]`` as (name, config, model file or None)."""
    name, sep, paths = text.partition("=")
    config, _, model_file = paths.partition(":")
    if not (sep and name and config):
        raise argparse.ArgumentTypeError(
            f"expected NAME=CONFIG[:MODEL_FILE], got {text!r}"
        )
    return name, config, model_file or None


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        description=speed.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--system",
        type=parse_system,
        action="append",
        required=True,
        help="NAME=CONFIG[:MODEL_FILE], repeated; random weights without a model",
    )
    parser.add_argument(
        "--reference", default=None, help="system the ratios are to (default: first)"
    )
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument(
        "--durations",
        type=positive(float),
        nargs="+",
        default=[10.0, 60.0, 600.0],
        help="seconds of the single inputs timed for RTFs",
    )
    parser.add_argument("--repeats", type=positive(int), default=3)
    parser.add_argument("--batch_size", type=positive(int), default=8)
    parser.add_argument("--batch_seconds", type=positive(float), default=10.0)
    parser.add_argument(
        "--chunk_seconds",
        type=float,
        default=DEFAULT_CHUNK_SECONDS,
        help="chunk length, as codec_inference's (0: whole inputs)",
    )
    parser.add_argument(
        "--window_size",
        type=int,
        default=None,
        help="ALMTokenizer frames per token (default: its inference window); "
        "other codecs have one rate and ignore it",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--num_threads",
        type=positive(int),
        default=None,
        help="torch threads (default: torch's default)",
    )
    add_log_level(parser)
    return parser


def main(cmd: Optional[List[str]] = None):
    """Run the CLI."""
    parser = get_parser()
    args = parser.parse_args(cmd)
    setup_logging(args.log_level)
    # Unusable options are usage errors; errors while measuring are not.
    try:
        reference = speed.check_systems(args)
    except ValueError as e:
        parser.error(str(e))
    speed.measure(args, reference)


if __name__ == "__main__":
    main()
