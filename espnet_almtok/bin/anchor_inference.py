"""Code a test set with a classic codec (Codec2, Opus), as stage 7 does a model.

Usage::

    python -m espnet_almtok.bin.anchor_inference --anchor codec2_1300 \\
        --wav_scp dump/raw/test_speech/wav.scp --out_dir exp/anchors/codec2_1300/test

Then score it like any decoding::

    python -m espnet_almtok.bin.score --ref_scp dump/raw/test_speech/wav.scp \\
        --hyp_scp D/wav/wav.scp --decode_stats D/decode_stats.json --out_dir D/score

Anchors: see ``espnet_almtok.eval.anchors``.
"""

import argparse
from typing import Optional, Sequence

from espnet_almtok.eval.anchors import ANCHORS, code_scp
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="Code a wav.scp with a classic codec anchor",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--anchor", required=True, choices=sorted(ANCHORS))
    parser.add_argument("--wav_scp", required=True, help="input wav.scp")
    parser.add_argument("--out_dir", required=True, help="decoding directory")
    parser.add_argument(
        "--log_every", type=int, default=50, help="log progress every N utterances"
    )
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Run the anchor CLI."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    code_scp(args.anchor, args.wav_scp, args.out_dir, args.log_every)


if __name__ == "__main__":
    main()
