"""ESPnet SpeechLM's on-disk data layout, for ALMTokenizer tokens.

A dumped set (``espnet_almtok.bin.speechlm_dump``) looks like ESPnet's
``egs2/TEMPLATE/speechlm1`` dumps::

    <set>/index_files/wav.scp       codec tokens (kaldi_ark scp, SpeechLM layout)
    <set>/index_files/text          transcripts
    <set>/index_files/utt2spk       speakers (TTS speaker prompts)
    <set>/codes.ark
    <set>/codec_info.json           the codec the tokens come from
    <set>/token_lists/<modality>_token_list
    <set>/<task>/data.json          task, data_files, vocabularies, examples

``data.json`` is what ESPnet's ``ESPnetMultiTaskDataset`` reads (data type
``dataset_json``); ``merge_vocabularies`` builds the joint ``token_list`` and
``token_bias.json`` that ``espnet2.bin.speechlm_train`` takes.
"""

import json
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from espnet_almtok.speechlm import tokens as speechlm_tokens
from espnet_almtok.utils.atomic import atomic_path

# ESPnet SpeechLM tasks we dump for: (file, modality, type) per entry.
TASK_ENTRIES = {
    "tts": [
        ("text", "g2p", "text"),
        ("utt2spk", "spk", "text"),
        ("wav.scp", "codec", "kaldi_ark"),
    ],
    "asr": [("wav.scp", "codec", "kaldi_ark"), ("text", "text_bpe", "text")],
}


def read_index(path: Path) -> Dict[str, str]:
    """A Kaldi-style ``<id> <content>`` file as a dict (content may be empty)."""
    rows = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if key in rows:
            raise ValueError(f"{path}:{n}: duplicate id {key}")
        rows[key] = value.strip()
    return rows


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write one line per item, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_json(path: Path, value) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=4, ensure_ascii=False) + "\n")


def modalities(tasks: Iterable[str]) -> List[str]:
    """The discrete modalities with a vocabulary that ``tasks`` need, in order."""
    found = []
    for task in tasks:
        for _, modality, _ in TASK_ENTRIES[task]:
            if modality != "spk" and modality not in found:
                found.append(modality)
    return found


def data_json(set_dir: Path, task: str, examples: List[str]) -> dict:
    """The ``data.json`` of ``task`` over the index files of ``set_dir``."""
    return {
        "task": task,
        "vocabularies": [
            str(set_dir / "token_lists" / f"{m}_token_list") for m in modalities([task])
        ],
        "data_files": [
            f"{set_dir / 'index_files' / name},{modality},{kind}"
            for name, modality, kind in TASK_ENTRIES[task]
        ],
        "num_examples": len(examples),
        "examples": examples,
    }


def set_dir_of(data_json_path: Path) -> Path:
    """The dumped set a ``<set>/<task>/data.json`` belongs to."""
    return Path(data_json_path).resolve().parent.parent


def merge_vocabularies(
    data_jsons: Sequence[Path], special_tokens: Sequence[str]
) -> Tuple[List[str], Dict[str, int]]:
    """The joint token list and each modality's start, as ESPnet SpeechLM expects.

    Special tokens come first (ESPnet's 256 slots), then each modality's tokens in
    the order they first appear. A modality token that equals a special token
    (e.g. g2p's ``<space>``) keeps the special token's id. All sets must share one
    codec (``codec_info.json``).

    Raises:
        ValueError: if the sets were dumped with different codecs.
    """
    token_list = list(special_tokens)
    seen = set(token_list)
    per_modality: Dict[str, List[str]] = {}
    first_info, first_dir = None, None
    for path in data_jsons:
        meta = json.loads(Path(path).read_text())
        set_dir = set_dir_of(path)
        info = speechlm_tokens.read_info(set_dir / "codec_info.json")
        if first_info is None:
            first_info, first_dir = info, set_dir
        else:
            speechlm_tokens.check_info(
                info, first_info, f"{set_dir} (against {first_dir})"
            )
        for vocab in meta["vocabularies"]:
            modality = Path(vocab).name[: -len("_token_list")]
            tokens = per_modality.setdefault(modality, [])
            for token in Path(vocab).read_text(encoding="utf-8").splitlines():
                if token not in seen:
                    seen.add(token)
                    tokens.append(token)
    bias = {}
    for modality, tokens in per_modality.items():
        bias[modality] = len(token_list)
        token_list += tokens
        logging.info(f"{modality}: {len(tokens)} tokens from id {bias[modality]}")
    return token_list, bias
