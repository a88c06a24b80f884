"""Is one system's dWER really lower than another's on the same clips? A paired
bootstrap over clips of score_all_clips.py's outputs. Run from egs2/pkgaudio/almtok1:

    B=../../../results/pkgaudio_small16k/level/paired_bootstrap.py
    python $B H_test_en.json:english_more2=H0_test_en.json:english_more2_nogan

Each argument ``A_FILE:A_SYSTEM=B_FILE:B_SYSTEM`` names two systems' transcripts of
the same set; several arguments pool their clips (e.g. two test sets). Transcripts are
scored against the file's ``orig`` (both files must hold the same), or, for files
without one, against Whisper's of the original ``test_en`` prompts, as
score_all_clips.py scores them. Prints A's and B's pooled and capped dWER, and the 95 %
interval of A - B over 2000 resamplings of the clips (seed 0): an interval that holds
0 says the two are not told apart on these clips.
"""

import json
import sys
from pathlib import Path

import numpy as np
from score_all_clips import reference_transcripts

from espnet_almtok.eval.speech_metrics import word_errors


def clip_errors(pairs):
    """(errors of A, errors of B, words) per clip with words, over all pairs."""
    rows = []
    for pair in pairs:
        (file_a, sys_a), (file_b, sys_b) = (s.rsplit(":", 1) for s in pair.split("="))
        out_a, out_b = (json.loads(Path(f).read_text()) for f in (file_a, file_b))
        orig = reference_transcripts(out_a)
        if orig != reference_transcripts(out_b):
            sys.exit(f"{file_a} and {file_b} score against different transcripts")
        hyp_a, hyp_b = out_a["hyp"][sys_a], out_b["hyp"][sys_b]
        for utt in sorted(set(hyp_a) & set(hyp_b)):
            a = word_errors(orig[utt], hyp_a[utt])
            b = word_errors(orig[utt], hyp_b[utt])
            if a["words"]:
                rows.append((a["errors"], b["errors"], a["words"]))
    return np.array(rows, dtype=float).T


def main(*pairs, rounds=2000):
    a, b, words = clip_errors(pairs)
    cap_a, cap_b = np.minimum(a / words, 1), np.minimum(b / words, 1)
    rng = np.random.default_rng(0)
    pooled, capped = [], []
    for _ in range(rounds):
        i = rng.integers(0, len(words), len(words))
        pooled.append((a[i].sum() - b[i].sum()) / words[i].sum())
        capped.append((cap_a[i] - cap_b[i]).mean())
    for name, va, vb, diffs in (
        ("pooled", a.sum() / words.sum(), b.sum() / words.sum(), pooled),
        ("capped", cap_a.mean(), cap_b.mean(), capped),
    ):
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        print(
            f"{len(words)} clips, {name}: A {va:.3f}, B {vb:.3f}, A - B "
            f"{va - vb:+.3f} (95 %: {lo:+.3f} to {hi:+.3f})"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
