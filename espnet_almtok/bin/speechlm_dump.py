"""Dump one SpeechLM set from our codec's tokens (see espnet_almtok.speechlm.dump)."""

import argparse
import logging
import sys
from pathlib import Path

from espnet_almtok.speechlm import data as speechlm_data
from espnet_almtok.speechlm import dump
from espnet_almtok.utils.cli import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=dump.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train_config", required=True, help="Codec config.yaml")
    parser.add_argument("--model_file", required=True, help="Codec model file")
    parser.add_argument("--wav_scp", required=True, help="Audio: <utt> <wav path>")
    parser.add_argument("--text", help="Transcripts (tts, asr)")
    parser.add_argument("--utt2spk", help="Speakers (tts speaker prompts)")
    parser.add_argument("--out_dir", required=True, type=Path)
    parser.add_argument(
        "--tasks", nargs="+", default=["tts", "asr"], choices=speechlm_data.TASK_ENTRIES
    )
    parser.add_argument(
        "--g2p", default="espeak_ng_english_us_vits", help="ESPnet g2p of the tts text"
    )
    parser.add_argument("--bpemodel", help="SentencePiece model of the asr text")
    parser.add_argument(
        "--window_size", type=int, help="Frames per token (default: the inference one)"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log_every", type=int, default=100, help="Progress period")
    return parser


def main(cmd=None) -> None:
    """Run the CLI."""
    setup_logging("INFO")
    args = get_parser().parse_args(cmd)
    try:
        dump.dump(args)
    except (ValueError, FileNotFoundError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
