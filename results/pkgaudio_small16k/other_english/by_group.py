"""Pooled and per-clip capped dWER and the clip count per group of clips, from
score_all_clips.py's outputs on a set made of a game's voice folders (a key
``wz-<folder>-<name>``: the folder is the group). Run from egs2/pkgaudio/almtok1:

    python ../../../results/pkgaudio_small16k/other_english/by_group.py OUT.json
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from espnet_almtok.eval.speech_metrics import pooled_wer, word_errors


def main(path):
    out = json.loads(Path(path).read_text())
    groups = defaultdict(list)
    for key, words in out["orig"].items():
        if words.split():  # an original heard as nothing has no dWER
            groups[key.split("-")[1]].append(key)
    groups["all"] = [k for keys in list(groups.values()) for k in keys]
    systems = list(out["hyp"])
    print(
        "| group | clips | " + " | ".join(f"{s} dWER (capped)" for s in systems) + " |"
    )
    print("| --- | ---: |" + " ---: |" * len(systems))
    for group, keys in groups.items():
        cells = []
        for s in systems:
            counts = [word_errors(out["orig"][k], out["hyp"][s][k]) for k in keys]
            capped = np.mean([min(1.0, c["errors"] / c["words"]) for c in counts])
            cells.append(f"{pooled_wer(counts)['mean']:.3f} ({capped:.3f})")
        print(f"| {group} | {len(keys)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
