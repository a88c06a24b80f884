"""STOI on every clip of a test set, per speaker, for several codecs in one run: for
sets that no recogniser here understands (``test_other``: Czech game voices, Greek
Tux Paint descriptions). Systems as in ``score_all_clips.py``; from
egs2/pkgaudio/almtok1:

    S=../../../results/pkgaudio_small16k/level/stoi_all_clips.py
    M=../../../pretrained/almtok_small16k_pkgaudio
    python $S OUT.json test_other codec2_450=codec2_450 \\
        shipped=$M/config.yaml:$M/model.pth:16:-18
"""

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from score_all_clips import build_systems, table

from espnet_almtok.eval.metrics import stoi


def main(out, dset, *specs):
    torch.set_num_threads(1)
    systems = build_systems(specs)
    scp = table(f"dump/raw/{dset}/wav.scp")
    spk = table(f"dump/raw/{dset}/utt2spk")
    res = {s: {} for s in systems}
    for key, path in scp.items():
        x, fs = sf.read(path, dtype="float32")
        for name, code in systems.items():
            res[name][key] = stoi(x, code(x, fs), fs)
    summary = {}
    for name, clips in res.items():
        by = {}
        for key, value in clips.items():
            by.setdefault(spk[key], []).append(value)
        summary[name] = dict(
            stoi=float(np.nanmean(list(clips.values()))),
            per_speaker={s: float(np.nanmean(v)) for s, v in sorted(by.items())},
        )
        print(dset, name, json.dumps(summary[name]))
    Path(out).write_text(
        json.dumps(dict(set=dset, summary=summary, stoi=res), indent=1)
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
