"""Summarise a SpeechLM run (see espnet_almtok.speechlm.report)."""

import argparse
from pathlib import Path
from typing import Optional, Sequence

from espnet_almtok.speechlm import report


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=report.__doc__.split("\n\n")[0])
    parser.add_argument("--exp_dir", required=True, type=Path)
    parser.add_argument("--dump_dir", required=True, type=Path)
    parser.add_argument("--decode_dirs", nargs="*", default=[], type=Path)
    parser.add_argument("--out", required=True, type=Path)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    report.write_report(args.exp_dir, args.dump_dir, args.decode_dirs, args.out)


if __name__ == "__main__":
    main()
