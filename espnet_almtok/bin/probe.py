"""Content probe on frozen tokens (see espnet_almtok.eval.probe)."""

import argparse
from typing import Optional, Sequence

from espnet_almtok.eval import probe
from espnet_almtok.utils.cli import add_log_level, positive, setup_logging


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="Train CTC character and speaker probes on frozen codec tokens",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--train_dir", required=True, help="train token dump dir")
    parser.add_argument("--train_data", required=True, help="train Kaldi data dir")
    parser.add_argument("--test_dir", required=True, help="test token dump dir")
    parser.add_argument("--test_data", required=True, help="test Kaldi data dir")
    parser.add_argument("--out", required=True, help="the result JSON")
    parser.add_argument(
        "--layer", type=positive(int), default=1, help="1-based RVQ layer"
    )
    parser.add_argument(
        "--steps", type=positive(int), default=2000, help="optimizer steps per probe"
    )
    parser.add_argument("--batch_size", type=positive(int), default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=positive(int), default=256, help="probe width")
    parser.add_argument(
        "--upsample", type=positive(int), default=4, help="CTC output frames per token"
    )
    parser.add_argument(
        "--spk_test_every",
        type=positive(int),
        default=4,
        help="hold out every N-th utterance of each speaker for the speaker probe",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--log_every",
        type=positive(int),
        default=100,
        help="log the loss every N steps",
    )
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Run the CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    probe.probe(args)


if __name__ == "__main__":
    main()
