"""Package a trained model for shipping: config.yaml and inference weights.

Usage::

    python -m espnet_almtok.bin.package_model \\
        --train_config exp/almtok_x/stage2/config.yaml \\
        --model_file exp/almtok_x/stage2/latest.pth --out_dir pretrained/<name>

Leaves out the discriminator and the training-only heads (MAE, AR); write the
model card (``README.md``) beside them by hand.
"""

import argparse
import logging
from typing import Optional, Sequence

from espnet_almtok.pretrained import package
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_config", required=True, help="the model's config.yaml")
    parser.add_argument("--model_file", required=True, help="the trained .pth")
    parser.add_argument("--out_dir", required=True, help="directory to write")
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    model = package(args.train_config, args.model_file, args.out_dir)
    logging.info(f"wrote {model} ({model.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
