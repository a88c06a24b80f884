"""The equal-budget benchmark (see espnet_almtok.eval.benchmark)."""

import argparse
from typing import List, Optional

from espnet_almtok.eval import benchmark
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=benchmark.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="benchmark config (YAML)")
    parser.add_argument("--run", default="./run.sh", help="the recipe's run.sh")
    parser.add_argument("--ngpu", type=int, default=0, help="GPUs for training")
    parser.add_argument("--expdir", default="exp/benchmark", help="experiments")
    parser.add_argument(
        "--out_dir", default=None, help="report folder (default: EXPDIR/results)"
    )
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--stop_stage", type=int, default=6)
    parser.add_argument(
        "--systems", nargs="+", default=None, help="run stages 2-4 for these only"
    )
    add_log_level(parser)
    return parser


def main(cmd: Optional[List[str]] = None):
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    benchmark.run(args)


if __name__ == "__main__":
    main()
