"""Chunked against whole-file coding (see espnet_almtok.eval.chunk_quality)."""

import argparse
from pathlib import Path

from espnet_almtok import registration
from espnet_almtok.eval import chunk_quality
from espnet_almtok.model.codec import DEFAULT_CHUNK_SECONDS
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=chunk_quality.__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--train_config", required=True, help="Model config.yaml")
    parser.add_argument("--model_file", required=True, help="Model .pth file")
    parser.add_argument("--wav_scp", required=True, help="Kaldi wav.scp to code")
    parser.add_argument("--out", type=Path, required=True, help="JSON to write")
    parser.add_argument(
        "--window_size",
        type=int,
        default=None,
        help="Frames per token (default: the config's inference_window)",
    )
    parser.add_argument(
        "--chunk_seconds",
        type=float,
        default=DEFAULT_CHUNK_SECONDS,
        help="Chunk length, rounded down to whole tokens",
    )
    parser.add_argument(
        "--boundary_seconds",
        type=float,
        default=0.25,
        help="Region scored either side of a boundary (at most a quarter chunk)",
    )
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: one GPU")
    add_log_level(parser)
    return parser


def main(cmd=None):
    """Run the CLI."""
    registration.install()
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    chunk_quality.report(args)


if __name__ == "__main__":
    main()
