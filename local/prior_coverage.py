#!/usr/bin/env python3
"""How well a semantic-prior codebook file covers held-out feature frames.

For each ``--feats NAME=feats.scp`` (frames of the same kind as the codebooks),
quantizes every frame residually through all layers, with the whole codebooks,
with their speech half only and with their sound half only, and reports the
residual energy left as a share of the frames' variance (lower: better covered),
and the share of frames whose layer-1 code is a sound-half entry. Writes JSON.

Example (the real-audio recipe; features of held-out sets from extract_features)::

    python3 local/prior_coverage.py --codebooks dump/kmeans/codebooks.npz \\
        --feats test_en=exp/prior_probe/test_en.whisper/feats.scp \\
        --feats test_sound=exp/prior_probe/test_sound.whisper/feats.scp --out cov.json
"""

import argparse
import json
from typing import List, Tuple

import kaldiio
import numpy as np


def residual(x: np.ndarray, books: np.ndarray) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Residual of ``x`` after each layer's nearest entry, and the codes."""
    r, codes = x.copy(), []
    for book in books:
        dist = (r**2).sum(1, keepdims=True) - 2 * r @ book.T + (book**2).sum(1)
        codes.append(dist.argmin(1))
        r = r - book[codes[-1]]
    return r, codes


def coverage(x: np.ndarray, books: np.ndarray, num_speech: int) -> dict:
    var = ((x - x.mean(0)) ** 2).sum()
    full, codes = residual(x, books)
    row = {"full": float((full**2).sum() / var)}
    for name, part in (
        ("speech_half", books[:, :num_speech]),
        ("sound_half", books[:, num_speech:]),
    ):
        row[name] = float((residual(x, part)[0] ** 2).sum() / var)
    row["layer1_sound_half_share"] = float((codes[0] >= num_speech).mean())
    row["frames"] = len(x)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codebooks", required=True, help="learn_kmeans output (.npz)")
    parser.add_argument(
        "--feats", action="append", required=True, help="NAME=feats.scp"
    )
    parser.add_argument("--out", required=True, help="JSON file")
    args = parser.parse_args()
    with np.load(args.codebooks) as f:
        books, num_speech = f["codebooks"], int(f["num_speech"])
    report = {"codebooks": args.codebooks}
    for spec in args.feats:
        name, scp = spec.split("=", 1)
        frames = [m for _, m in kaldiio.load_scp_sequential(scp)]
        report[name] = coverage(
            np.concatenate(frames).astype(np.float32), books, num_speech
        )
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
