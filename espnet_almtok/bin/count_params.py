"""Parameters and bitrate of training configs (see espnet_almtok.eval.params)."""

import argparse
from typing import List, Optional

from espnet_almtok.eval import params
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        description=params.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", nargs="+", required=True, help="training config(s) (.yaml)"
    )
    parser.add_argument(
        "--reference", default=None, help="config whose codec_path the others match"
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.2, help="allowed relative difference"
    )
    parser.add_argument("--out", default=None, help="also write the JSON here")
    add_log_level(parser, "WARNING")
    return parser


def main(cmd: Optional[List[str]] = None):
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    params.report(args)


if __name__ == "__main__":
    main()
