"""BPE model and joint token lists for SpeechLM (see espnet_almtok.speechlm.vocab)."""

import argparse
import logging
import sys
from pathlib import Path

from espnet_almtok.speechlm import vocab
from espnet_almtok.utils.cli import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=vocab.__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bpe = sub.add_parser("bpe", help="Train a SentencePiece BPE model")
    bpe.add_argument("--text", required=True, help="Kaldi text: <utt> <transcript>")
    bpe.add_argument("--nbpe", type=int, default=100, help="Vocabulary size")
    bpe.add_argument("--out_prefix", required=True, help="Writes PREFIX.model/.vocab")
    merge = sub.add_parser("merge", help="Build token_list and token_bias.json")
    merge.add_argument("--data_json", nargs="+", required=True, type=Path)
    merge.add_argument("--token_list_dir", required=True, type=Path)
    return parser


def main(cmd=None) -> None:
    """Run the CLI."""
    setup_logging("INFO")
    args = get_parser().parse_args(cmd)
    try:
        if args.command == "bpe":
            vocab.train_bpe(args.text, args.nbpe, args.out_prefix)
        else:
            vocab.merge(args.data_json, args.token_list_dir)
    except (ValueError, FileNotFoundError, ImportError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
