"""Summarize score directories into one table (see espnet_almtok.eval.summary)."""

import argparse
from typing import Optional, Sequence

from espnet_almtok.eval import summary


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="Tabulate the summaries of scoring directories",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--score_dirs", nargs="+", required=True, help="score output dirs"
    )
    parser.add_argument("--out", required=True, help="markdown table to write")
    parser.add_argument("--json", default=None, help="combined JSON to write")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Run the CLI."""
    summary.summarize(get_parser().parse_args(cmd))


if __name__ == "__main__":
    main()
