"""Summarise a SpeechLM run on ALMTokenizer tokens (recipe stage 12).

Reads ESPnet's ``train.log`` (train/valid loss per epoch) and the TTS output of
``speechlm_inference`` (``token/token.ark`` and the wavs listed in
``wav.scp/wav.scp_list``), and compares each generated clip with the reference
tokens of the same utterance. Writes ``RESULTS.md`` and ``RESULTS.json``.
"""

import json
import re
from pathlib import Path
from typing import Sequence

import kaldiio
import numpy as np
import soundfile as sf

from espnet_almtok.speechlm import data as speechlm_data
from espnet_almtok.speechlm import tokens as speechlm_tokens
from espnet_almtok.utils.atomic import atomic_path

EPOCH = re.compile(r"(\d+)epoch results: \[train\](.*?)\[valid\](.*)")
LOSS = re.compile(r"[ ,]loss=([-+.\deE]+)")


def epoch_losses(train_log: Path):
    """[(epoch, train loss, valid loss)] from an ESPnet training log."""
    rows = []
    for line in Path(train_log).read_text(errors="replace").splitlines():
        m = EPOCH.search(line)
        if m:
            train, valid = (LOSS.search(part) for part in m.group(2, 3))
            rows.append(
                (
                    int(m.group(1)),
                    float(train.group(1)) if train else None,
                    float(valid.group(1)) if valid else None,
                )
            )
    return rows


def tts_summary(decode_dir: Path, dump_dir: Path) -> dict:
    """Generated vs reference token steps and seconds for one TTS test set."""
    dset = decode_dir.name
    info = speechlm_tokens.read_info(dump_dir / dset / "codec_info.json")
    step_seconds = info["frame_shift"] / info["fs"]
    refs = speechlm_data.read_index(dump_dir / dset / "index_files/wav.scp")
    wavs = speechlm_data.read_index(decode_dir / "wav.scp/wav.scp_list")
    tokens = dict(kaldiio.load_ark(str(decode_dir / "token/token.ark")))
    rows = []
    for key, path in wavs.items():
        utt = re.sub(r"^tts_|_sample\d+$", "", key)
        samples = sf.info(path).frames
        steps = tokens[key].size // info["num_streams"]
        ref_steps = kaldiio.load_mat(refs[utt]).size // info["num_streams"]
        rows.append(
            dict(
                key=key,
                steps=steps,
                ref_steps=ref_steps,
                seconds=samples / info["fs"],
                samples_match_steps=samples == steps * info["frame_shift"],
            )
        )
    ratio = [r["steps"] / r["ref_steps"] for r in rows]
    return dict(
        set=dset,
        num_generated=len(rows),
        seconds=float(sum(r["seconds"] for r in rows)),
        mean_length_ratio=float(np.mean(ratio)) if rows else None,
        all_samples_match_steps=all(r["samples_match_steps"] for r in rows),
        token_step_seconds=step_seconds,
        utterances=rows,
    )


def write_report(
    exp_dir: Path, dump_dir: Path, decode_dirs: Sequence[Path], out: Path
) -> None:
    """Write ``out`` (markdown) and its ``.json`` twin.

    Args:
        exp_dir: The SpeechLM experiment (its ``train.log``).
        dump_dir: The dump the TTS references come from.
        decode_dirs: TTS decoding directories.
        out: The markdown file to write.
    """
    losses = epoch_losses(Path(exp_dir) / "train.log")
    tts = [tts_summary(d, dump_dir) for d in decode_dirs]
    lines = [
        f"# SpeechLM on ALMTokenizer tokens: {exp_dir}",
        "",
        "| epoch | train loss | valid loss |",
        "| ---: | ---: | ---: |",
    ]
    lines += [f"| {e} | {t} | {v} |" for e, t, v in losses]
    lines += [
        "",
        "TTS (generated token steps / reference token steps of the same utterance):",
        "",
        "| set | clips | seconds | length ratio | wav samples = steps x frame shift |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {s['set']} | {s['num_generated']} | {s['seconds']:.1f} | "
        f"{s['mean_length_ratio'] or 0:.2f} | {s['all_samples_match_steps']} |"
        for s in tts
    ]
    out = Path(out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(dict(epochs=losses, tts=tts), indent=2) + "\n")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
