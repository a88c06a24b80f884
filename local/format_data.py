#!/usr/bin/env python3
"""Format a Kaldi data dir for codec training: mono, one sample rate, bounded length.

Reads ``<src>/wav.scp`` (paths; ``cmd |`` pipes are not supported), writes 16-bit
wavs at ``--fs`` under ``<dst>/wav/`` and a new ``<dst>/wav.scp``,
``utt2num_samples`` and ``audio_shape`` (what ESPnet's shape files hold), and
copies ``utt2spk``/``text`` restricted to the kept clips.

Conversions, each logged: multi-channel audio is averaged to mono; other sample
rates are resampled (torchaudio). Clips shorter than ``--min_seconds`` or longer
than ``--max_seconds`` are dropped and counted. Unreadable, empty or NaN clips
stop the stage with an error naming the file. ``<dst>`` is written under a
temporary name and renamed when complete.

``--gain_db`` scales every clip, e.g. to make a quieter copy of a test set that
measures how a codec copes with the input's level (from a recipe directory)::

    ../../../local/format_data.py dump/raw/test_en dump/raw/test_en_m10db \\
        --fs 16000 --gain_db -10

Samples that the gain takes past full scale are clipped; the clips that had
any are counted in the log.
"""

import argparse
import logging
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from espnet_almtok.utils.audio import load_audio


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--fs", type=int, required=True)
    parser.add_argument("--min_seconds", type=float, default=0.0)
    parser.add_argument("--max_seconds", type=float, default=float("inf"))
    parser.add_argument("--gain_db", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s"
    )

    tmp = args.dst.with_name(args.dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wav").mkdir(parents=True)
    lines = (args.src / "wav.scp").read_text().splitlines()
    kept, short, long_, clipped = [], 0, 0, 0
    gain = 10 ** (args.gain_db / 20)
    with open(tmp / "wav.scp", "w") as scp, open(tmp / "utt2num_samples", "w") as num:
        for i, line in enumerate(lines, 1):
            utt, path = line.split(maxsplit=1)
            if path.rstrip().endswith("|"):
                raise SystemExit(
                    f"{utt}: pipe entries in {args.src}/wav.scp are not supported"
                )
            try:
                audio = load_audio(path, args.fs).numpy()
            except ValueError as e:
                shutil.rmtree(tmp)
                raise SystemExit(f"{utt}: {e}")
            seconds = len(audio) / args.fs
            if seconds < args.min_seconds or seconds > args.max_seconds:
                short += seconds < args.min_seconds
                long_ += seconds > args.max_seconds
                continue
            audio = audio * gain
            clipped += bool(np.abs(audio).max() > 1.0)
            out = (tmp / "wav" / f"{utt}.wav").resolve()
            sf.write(out, np.clip(audio, -1.0, 1.0), args.fs, subtype="PCM_16")
            final = args.dst.resolve() / "wav" / f"{utt}.wav"
            scp.write(f"{utt} {final}\n")
            num.write(f"{utt} {len(audio)}\n")
            kept.append(utt)
            if i % 200 == 0:
                logging.info(f"{args.src}: {i}/{len(lines)} clips")
    if not kept:
        raise SystemExit(f"{args.src}: no clip left after the length filter")
    shutil.copy(tmp / "utt2num_samples", tmp / "audio_shape")
    keep = set(kept)
    for name in ("utt2spk", "text"):
        if (args.src / name).exists():
            rows = [
                r
                for r in (args.src / name).read_text().splitlines()
                if r.split()[0] in keep
            ]
            (tmp / name).write_text("".join(r + "\n" for r in rows))
    shutil.rmtree(args.dst, ignore_errors=True)
    tmp.rename(args.dst)
    logging.info(
        f"{args.src} -> {args.dst}: kept {len(kept)} of {len(lines)} clips at "
        f"{args.fs} Hz (dropped {short} shorter than {args.min_seconds} s, "
        f"{long_} longer than {args.max_seconds} s; "
        f"gain {args.gain_db:+g} dB, {clipped} clips clipped)"
    )


if __name__ == "__main__":
    main()
