"""Whisper dWER (pooled, and capped per clip) and STOI on every clip of a test set,
for several codecs in one run (the one-off script behind learning_speed.md's last
section). Run from egs2/pkgaudio/almtok1:

    S=../../../results/pkgaudio_small16k/level/score_all_clips.py
    M=../../../pretrained/almtok_small16k_pkgaudio
    python $S OUT.json test_en codec2_450=codec2_450 \\
        shipped=$M/config.yaml:$M/model.pth:16:-18

A system is ``name=anchor`` (``espnet_almtok.eval.anchors``) or
``name=config:model_file:beam_size[:level_dbfs]``: a trained ALMTokenizer coded as
codec inference codes it (its config's chunks), with ``beam_size`` paths in the code
search and, given ``level_dbfs``, each input scaled to that RMS level first
(``input_level_dbfs``; STOI and Whisper do not depend on the output's level, so it is
not scaled back here). dWER is
measured against Whisper's transcripts of the original prompts at their own level
(``../content/transcripts_all_test_en.json``), so quieter copies of ``test_en``
(``local/format_data.py --gain_db``) are scored against the same words; for other
sets, such as ``local/concat_data.py``'s long-form copy, against its transcripts of
their originals, made in the same run.

``--asr sphinx`` scores with PocketSphinx instead (``SphinxASR``: a recogniser that
shares nothing with Whisper, whose encoder gave the content loss), its language model
a bigram of the 563 prompts' texts; dWER is then against its transcripts of the
original prompts, made in the same run.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from espnet_almtok.eval.anchors import build_anchor
from espnet_almtok.eval.metrics import stoi
from espnet_almtok.eval.speech_metrics import (
    SphinxASR,
    WhisperASR,
    pooled_wer,
    word_errors,
)
from espnet_almtok.pretrained import load_codec

TRANSCRIPTS = Path(__file__).parent.parent / "content/transcripts_all_test_en.json"


def codec_system(config, model_file, beam_size, level_dbfs=""):
    codec = load_codec(config, "cpu", model_file=model_file).eval()
    codec.generator.quantizer.beam_size = int(beam_size)
    # The argument, not the config, sets the level (ALMTokenizer.input_gains).
    codec.input_level_dbfs = float(level_dbfs) if level_dbfs else None

    def code(x, fs):
        with torch.no_grad():
            codes, n = codec.encode_chunked(
                torch.from_numpy(x)[None], torch.tensor([len(x)])
            )
            return codec.decode_chunked(codes, None, n)[0, 0, : len(x)].numpy()

    return code


def anchor_system(name):
    anchor = build_anchor(name)
    return lambda x, fs: anchor(x, fs).wav.astype(np.float32)


def build_systems(specs):
    """``name=anchor`` or ``name=config:model_file:beam_size[:level_dbfs]`` specs
    (the module doc) -> {name: a function coding (x, fs) to audio}."""
    systems = {}
    for spec in specs:
        name, rest = spec.split("=")
        parts = rest.split(":")
        systems[name] = codec_system(*parts) if len(parts) > 1 else anchor_system(rest)
    return systems


def whisper_test_en():
    """Whisper's transcripts of the original ``test_en`` prompts, at their own level."""
    return {k: v["orig"] for k, v in json.loads(TRANSCRIPTS.read_text()).items()}


def reference_transcripts(out):
    """What an output file's ``hyp`` is scored against: its ``orig`` transcripts, or,
    for ``test_en`` files written without them, ``whisper_test_en()``."""
    return out.get("orig") or whisper_test_en()


def table(path):
    return dict(line.strip().split(maxsplit=1) for line in open(path))


def recogniser(asr, orig):
    """The recogniser and its transcripts of the original clips (at their level),
    those of the data dir ``orig``: Whisper's of ``test_en`` are ``TRANSCRIPTS``."""
    scp = table(f"{orig}/wav.scp")
    if asr == "whisper":
        whisper = WhisperASR()
        if orig == "dump/raw/test_en":
            return whisper, whisper_test_en()
        return whisper, {
            k: whisper(*sf.read(p, dtype="float32")) for k, p in scp.items()
        }
    # Its language model: the prompts' sentences, also for their long-form joins.
    sphinx = SphinxASR(list(table("data/test_en/text").values()))
    said = {k: sphinx(*sf.read(p, dtype="float32")) for k, p in scp.items()}
    text = table(f"{orig}/text")
    wer = pooled_wer([word_errors(text[k], said[k]) for k in said])["mean"]
    print(f"PocketSphinx on the originals: WER {wer:.3f} against the prompts' text")
    return sphinx, said


def main(out, dset, *specs, asr="whisper"):
    torch.set_num_threads(1)
    scp = table(f"dump/raw/{dset}/wav.scp")
    # Quieter copies of test_en are scored against the words of its originals.
    same = set(scp) <= set(table("dump/raw/test_en/wav.scp"))
    asr, said = recogniser(asr, "dump/raw/" + ("test_en" if same else dset))
    said = {k: words for k, words in said.items() if k in scp}  # a subset's clips
    systems = build_systems(specs)
    res = {s: dict(counts=[], stoi=[], hyp={}) for s in systems}
    start = time.time()
    for i, (key, words) in enumerate(said.items()):
        x, fs = sf.read(scp[key], dtype="float32")
        for name, code in systems.items():
            y = code(x, fs)
            r = res[name]
            r["stoi"].append(stoi(x, y, fs))
            r["hyp"][key] = asr(y, fs)
            r["counts"].append(word_errors(words, r["hyp"][key]))
        if i % 100 == 0:
            print(f"{i}/{len(said)} clips, {time.time() - start:.0f} s", flush=True)
    summary = {}
    for s, r in res.items():
        # Clips whose original transcribes to nothing have no dWER.
        capped = [min(1.0, c["errors"] / c["words"]) for c in r["counts"] if c["words"]]
        dwer = pooled_wer(r["counts"])
        summary[s] = dict(
            dwer=dwer["mean"],
            dwer_capped=float(np.mean(capped)),
            stoi=float(np.nanmean(r["stoi"])),
            clips=dwer["count"],
        )
    hyp = {s: r["hyp"] for s, r in res.items()}
    Path(out).write_text(
        json.dumps(dict(set=dset, summary=summary, orig=said, hyp=hyp), indent=1)
    )
    for s, v in summary.items():
        print(dset, s, json.dumps(v))


if __name__ == "__main__":
    args = sys.argv[1:]
    asr = args.pop(args.index("--asr") + 1) if "--asr" in args else "whisper"
    main(*[a for a in args if a != "--asr"], asr=asr)
