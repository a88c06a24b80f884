#!/usr/bin/env python3
"""Merge the outputs of parallel codec_inference jobs: merge_decode.py OUT JOB_DIR...

Concatenates ``codec/codec.scp`` (or ``latent/latent.scp``), ``wav/wav.scp`` and
``failed.txt`` (the ark
and wav files stay in the job dirs) and sums the counts and seconds of
``decode_stats.json``. A job dir without ``decode_stats.json`` did not finish:
the merge refuses it. Each file is written under a temporary name and renamed,
the merged ``decode_stats.json`` last.
"""

import json
import sys
from pathlib import Path

from espnet_almtok.utils.atomic import atomic_path

SUMMED = (
    "num_utts",
    "audio_seconds",
    "num_token_steps",
    "num_failed",
    "encode_seconds",
    "decode_seconds",
)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: merge_decode.py OUT_DIR JOB_DIR [JOB_DIR ...]")
    out, jobs = Path(sys.argv[1]), [Path(d) for d in sys.argv[2:]]
    stats = []
    for job in jobs:
        if not (job / "decode_stats.json").exists():
            sys.exit(
                f"merge_decode.py: {job} has no decode_stats.json (the job did not finish)"
            )
        stats.append(json.loads((job / "decode_stats.json").read_text()))
    listings = ("codec/codec.scp", "latent/latent.scp", "wav/wav.scp", "failed.txt")
    for name in listings:
        parts = [job / name for job in jobs if (job / name).exists()]
        if parts:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out / name) as tmp:
                tmp.write_text("".join(p.read_text() for p in parts))
    merged = dict(stats[0])
    for key in SUMMED:
        merged[key] = sum(s[key] for s in stats)
    merged["num_jobs"] = len(jobs)
    with atomic_path(out / "decode_stats.json") as tmp:
        tmp.write_text(json.dumps(merged, indent=2))


if __name__ == "__main__":
    main()
