"""Learn the semantic-prior codebooks (see espnet_almtok.prior.codebooks)."""

import argparse
from typing import List, Optional

from espnet_almtok.prior import codebooks
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        description=codebooks.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--speech_feats", required=True, help="feats.scp of speech")
    parser.add_argument(
        "--sound_feats", default=None, help="feats.scp of general sound (optional)"
    )
    parser.add_argument("--n_q", type=int, default=3, help="residual layers")
    parser.add_argument("--codebook_size", type=int, default=2048)
    parser.add_argument(
        "--num_speech",
        type=int,
        default=None,
        help="speech entries per layer (default: half with --sound_feats, else all)",
    )
    parser.add_argument(
        "--max_frames",
        type=int,
        default=0,
        help="random subset of frames per feature set (0: all)",
    )
    parser.add_argument("--max_iter", type=int, default=100, help="k-means iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--source",
        default=None,
        help="label of the features (default: from the info.json next to each scp)",
    )
    parser.add_argument("--out", required=True, help="codebook file (.npz)")
    add_log_level(parser)
    return parser


def main(cmd: Optional[List[str]] = None):
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    codebooks.learn(args)


if __name__ == "__main__":
    main()
