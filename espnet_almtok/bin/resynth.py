"""Resynthesize an audio file through a trained codec (the shipped one by default).

Usage::

    python -m espnet_almtok.bin.resynth in.wav out.wav \\
        [--model_dir pretrained/almtok_small16k_pkgaudio] [--window_size 4]
"""

import argparse
import logging
from typing import Optional, Sequence

from espnet_almtok.pretrained import DEFAULT_MODEL, resynthesize
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("input", help="audio file (any rate; mono or downmixed)")
    parser.add_argument("output", help="wav file to write, at the model's rate")
    parser.add_argument(
        "--model_dir",
        default=str(DEFAULT_MODEL),
        help="packaged model (config.yaml, model.pth)",
    )
    parser.add_argument(
        "--window_size",
        type=int,
        default=None,
        help="frames per token (default: the model's inference window)",
    )
    parser.add_argument("--device", default="cpu")
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    info = resynthesize(
        args.input, args.output, args.model_dir, args.window_size, args.device
    )
    logging.info(
        f"{args.input}: {info['seconds']:.2f} s, {info['tokens']} tokens at "
        f"{info['bitrate']:.1f} bit/s -> {args.output}"
    )


if __name__ == "__main__":
    main()
