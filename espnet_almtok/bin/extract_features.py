"""Extract frame features of a wav.scp (see espnet_almtok.prior.extraction)."""

import argparse

from espnet_almtok.prior import extraction
from espnet_almtok.prior.features import CHECKPOINT_FORMATS, KINDS
from espnet_almtok.utils.cli import add_log_level, setup_logging


def _count(value: str) -> int:
    """An argparse type: an integer >= 0."""
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        description=extraction.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--wav_scp", required=True, help="Kaldi wav.scp: utt path")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument(
        "--checkpoint", default=None, help="local checkpoint (wav2vec2, beats)"
    )
    parser.add_argument(
        "--checkpoint_format", default="auto", choices=CHECKPOINT_FORMATS
    )
    parser.add_argument(
        "--layer",
        type=int,
        default=None,
        help="1-based transformer layer (default: wav2vec2 middle, beats last)",
    )
    parser.add_argument("--n_mels", type=int, default=40, help="logmel only")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--max_utts",
        type=_count,
        default=0,
        help="random subset of utterances (0: all)",
    )
    parser.add_argument(
        "--max_frames_per_utt",
        type=_count,
        default=0,
        help="random crop of each utterance to this many frames (0: all)",
    )
    parser.add_argument(
        "--batch_utts",
        type=int,
        default=32,
        help="utterances per extractor call (Whisper packs them into 30 s windows)",
    )
    parser.add_argument("--seed", type=int, default=0, help="for subsets and crops")
    parser.add_argument(
        "--log_every", type=_count, default=100, help="utterances (0: end only)"
    )
    add_log_level(parser)
    return parser


def main(cmd=None):
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    extraction.extract(args)


if __name__ == "__main__":
    main()
