"""Pooled dWER by clip duration, from score_all_clips.py's outputs. Run from
egs2/pkgaudio/almtok1:

    python ../../../results/pkgaudio_small16k/level/by_duration.py OUT.json [...]

Each file's ``hyp`` is scored against its ``orig`` transcripts (``--asr sphinx``), or
against Whisper's of the original prompts (files without ``orig``). Durations are
those of ``dump/raw/test_en``.
"""

import json
import sys
from pathlib import Path

import soundfile as sf
from score_all_clips import reference_transcripts

from espnet_almtok.eval.speech_metrics import pooled_wer, word_errors

BINS = [(0, 1.5), (1.5, 3.2), (3.2, 6.0), (6.0, float("inf")), (1.5, float("inf"))]


def main(*files):
    scp = dict(line.split(maxsplit=1) for line in open("dump/raw/test_en/wav.scp"))
    seconds = {k: sf.info(v.strip()).duration for k, v in scp.items()}
    print("| file | system | " + " | ".join(f"{lo}-{hi} s" for lo, hi in BINS) + " |")
    print("| --- | --- |" + " ---: |" * len(BINS))
    for f in files:
        out = json.loads(Path(f).read_text())
        said = reference_transcripts(out)
        for system, hyp in out["hyp"].items():
            cells = []
            for lo, hi in BINS:
                keys = [k for k in hyp if lo <= seconds[k] < hi]
                counts = [word_errors(said[k], hyp[k]) for k in keys]
                words = sum(c["words"] for c in counts)
                cells.append(f"{pooled_wer(counts)['mean']:.3f} ({words} words)")
            print(f"| {Path(f).name} | {system} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
