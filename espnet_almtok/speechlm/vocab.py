"""SpeechLM vocabularies: a BPE model for the asr text, and the joint token list.

``bpe``: train a SentencePiece BPE model on the transcripts of a Kaldi ``text``
file (no BOS/EOS pieces: SpeechLM adds its own ``<sos/eos>``).

``merge``: build ESPnet SpeechLM's ``token_list`` (one token per line: its 256
special tokens, then each modality's tokens) and ``token_bias.json`` (where each
modality starts) from dumped ``data.json`` files, as ``speechlm_train`` takes them.
Runs where ESPnet's SpeechLM is importable (its special tokens define the first
256 ids); every set must come from the same codec.
"""

import logging
import tempfile
from pathlib import Path

from espnet_almtok import registration
from espnet_almtok.speechlm import data as speechlm_data


def train_bpe(text: str, nbpe: int, out_prefix: str) -> None:
    import sentencepiece as spm

    lines = [v for v in speechlm_data.read_index(Path(text)).values() if v]
    if not lines:
        raise ValueError(f"{text} has no transcripts")
    Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        spm.SentencePieceTrainer.train(
            input=f.name,
            model_prefix=out_prefix,
            vocab_size=nbpe,
            model_type="bpe",
            character_coverage=1.0,
            bos_id=-1,
            eos_id=-1,
            hard_vocab_limit=False,  # small corpora may not fill nbpe
            minloglevel=2,
        )
    logging.info(f"BPE model {out_prefix}.model from {len(lines)} transcripts")


def merge(data_json, token_list_dir: Path) -> None:
    registration.install()
    from espnet2.speechlm.definitions import special_tokens

    token_list, bias = speechlm_data.merge_vocabularies(data_json, special_tokens)
    token_list_dir.mkdir(parents=True, exist_ok=True)
    speechlm_data.write_lines(token_list_dir / "token_list", token_list)
    speechlm_data.write_json(token_list_dir / "token_bias.json", bias)
    logging.info(f"{token_list_dir}: {len(token_list)} tokens, bias {bias}")
