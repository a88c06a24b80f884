"""Codec inference for ESPnet codec models (see espnet_almtok.inference)."""

import sys
from pathlib import Path

from espnet_almtok import inference, registration
from espnet_almtok.utils.cli import setup_logging


def get_parser():
    from espnet2.bin.gan_codec_inference import get_parser as espnet_parser
    from espnet2.utils.types import float_or_none, int_or_none

    from espnet_almtok.model.codec import DEFAULT_CHUNK_SECONDS

    parser = espnet_parser()
    parser.description = "Batched, chunked codec inference (any ESPnet GAN codec)"
    parser.add_argument(
        "--window_size",
        type=int_or_none,
        default=None,
        help="ALMTokenizer frames per token (default: the training config's "
        "inference_window); not for fixed-rate codecs (SoundStream, DAC, ...)",
    )
    parser.add_argument(
        "--chunk_seconds",
        type=float_or_none,
        default=None,
        help="Code long files in chunks of this many seconds, rounded down to "
        "whole tokens; each chunk is coded on its own (bounded memory; a chunk's "
        "tokens do not depend on later audio). 0: the whole file at once. "
        "Default: an ALMTokenizer's codec_conf chunk_seconds, "
        f"{DEFAULT_CHUNK_SECONDS:g} s for other codecs",
    )
    return parser


def main(cmd=None):
    """Run the CLI."""
    registration.install()
    print(" ".join(sys.argv), file=sys.stderr)
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    summary = inference.inference(args)
    if summary["num_failed"]:
        total = summary["num_failed"] + summary["num_utts"]
        sys.exit(
            f"{summary['num_failed']} of {total} inputs failed: see the log; "
            f"their keys are in {Path(args.output_dir) / 'failed.txt'}"
        )


if __name__ == "__main__":
    main()
