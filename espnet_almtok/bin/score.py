"""Score reconstructed audio against references (see espnet_almtok.eval.scoring)."""

import argparse
from typing import Optional, Sequence

import torch
from espnet2.utils.types import str2bool

from espnet_almtok.eval import scoring
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="Score reconstructed audio against references",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref_scp", required=True, help="reference wav.scp")
    parser.add_argument("--hyp_scp", required=True, help="reconstruction wav.scp")
    parser.add_argument(
        "--decode_stats", default=None, help="decoder's decode_stats.json"
    )
    parser.add_argument("--out_dir", required=True, help="where results go")
    parser.add_argument(
        "--tag", default=None, help="name of this run (default: out_dir's name)"
    )
    parser.add_argument("--num_plots", type=int, default=3, help="utterances to plot")
    parser.add_argument(
        "--text", default=None, help="Kaldi text of the references (for wer)"
    )
    parser.add_argument(
        "--speech_metrics",
        type=str2bool,
        default=True,
        help="add Whisper WERs, DNSMOS and speaker similarity",
    )
    parser.add_argument(
        "--speech_utts",
        type=int,
        default=0,
        help="compute the speech metrics on this many utterances spread over the "
        "set (0: all)",
    )
    parser.add_argument(
        "--log_every", type=int, default=50, help="log progress every N utterances"
    )
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    # Per-utterance STFTs are small: extra threads cost more than they save
    # (tens of times slower on a 2-core machine).
    torch.set_num_threads(1)
    scoring.score(args)


if __name__ == "__main__":
    main()
