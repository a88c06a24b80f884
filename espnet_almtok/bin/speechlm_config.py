"""Write an ESPnet 202611 SpeechLM training config naming our codec and the LM."""

import argparse
import logging
import sys
from typing import Optional, Sequence

from espnet_almtok.speechlm.espnet202611 import write_train_config
from espnet_almtok.utils.cli import add_log_level, setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--template", required=True, help="conf/train_speechlm_espnet202611.yaml"
    )
    parser.add_argument(
        "--codec_archive", required=True, help="from espnet2.bin.pack codec"
    )
    parser.add_argument("--hf_model", required=True, help="Hub tag or local directory")
    parser.add_argument("--out", required=True, help="the config to write")
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    try:
        write_train_config(args.template, args.codec_archive, args.hf_model, args.out)
    except (ValueError, FileNotFoundError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
