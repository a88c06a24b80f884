#!/usr/bin/env python3
"""Join consecutive utterances of a speaker into long-form ones.

Codecs are judged on LibriSpeech-length sentences (test-clean: 2-35 s, 7 s on
average), longer than a codec's inference chunk, while most of ``test_en``'s
prompts are shorter than one. This makes a long-form copy of a formatted data dir
(``format_data.py``'s output: one sample rate, mono): each speaker's utterances,
in the dir's order, are joined with ``--gap_seconds`` of silence between them
until the join is at least ``--min_seconds`` long; a last join shorter than that
is dropped, and an utterance longer than ``--max_seconds`` on its own is skipped.
Transcripts are joined with spaces. From a recipe directory::

    ../../../local/concat_data.py dump/raw/test_en dump/raw/test_en_long \\
        --min_seconds 8 --max_seconds 30

``<dst>`` is written under a temporary name and renamed when complete.
"""

import argparse
import logging
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from kaldi_dir import setup_logging


def read_table(path: Path) -> dict:
    if not path.exists():
        return {}
    return dict(
        (line.split(maxsplit=1) + [""])[:2]
        for line in path.read_text().splitlines()
        if line.strip()
    )


def groups(utts, seconds, spk, min_seconds, max_seconds, gap_seconds):
    """Runs of one speaker's consecutive utterances, each at least ``min_seconds``
    long with its gaps and at most ``max_seconds``; a run that cannot reach
    ``min_seconds`` is dropped."""
    run, total = [], 0.0
    for utt in utts:
        if seconds[utt] > max_seconds:
            continue
        if run and (
            spk.get(utt) != spk.get(run[0])
            or total + gap_seconds + seconds[utt] > max_seconds
        ):
            run, total = [], 0.0
        total += (gap_seconds if run else 0.0) + seconds[utt]
        run.append(utt)
        if total >= min_seconds:
            yield run
            run, total = [], 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--min_seconds", type=float, default=8.0)
    parser.add_argument("--max_seconds", type=float, default=30.0)
    parser.add_argument("--gap_seconds", type=float, default=0.3)
    args = parser.parse_args()
    setup_logging()
    if args.min_seconds > args.max_seconds:
        raise SystemExit("--min_seconds must not exceed --max_seconds")

    scp = read_table(args.src / "wav.scp")
    if not scp:
        raise SystemExit(f"{args.src}/wav.scp: missing or empty")
    text = read_table(args.src / "text")
    spk = read_table(args.src / "utt2spk")
    infos = {u: sf.info(p.strip()) for u, p in scp.items()}
    rates = {i.samplerate for i in infos.values()}
    if len(rates) != 1 or any(i.channels != 1 for i in infos.values()):
        raise SystemExit(
            f"{args.src}: needs mono audio at one rate (format_data.py first)"
        )
    fs = rates.pop()
    seconds = {u: i.frames / fs for u, i in infos.items()}
    gap = np.zeros(int(round(args.gap_seconds * fs)), dtype=np.float32)

    tmp = args.dst.with_name(args.dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wav").mkdir(parents=True)
    rows = {n: [] for n in ("wav.scp", "utt2num_samples", "text", "utt2spk")}
    runs = list(
        groups(
            list(scp),
            seconds,
            spk,
            args.min_seconds,
            args.max_seconds,
            args.gap_seconds,
        )
    )
    for run in runs:
        utt = f"{run[0]}+{len(run) - 1}"
        parts = []
        for u in run:
            parts += [sf.read(scp[u].strip(), dtype="float32")[0], gap]
        audio = np.concatenate(parts[:-1])
        sf.write(tmp / "wav" / f"{utt}.wav", audio, fs, subtype="PCM_16")
        final = args.dst.resolve() / "wav" / f"{utt}.wav"
        rows["wav.scp"].append(f"{utt} {final}")
        rows["utt2num_samples"].append(f"{utt} {len(audio)}")
        if all(u in text for u in run):
            rows["text"].append(f"{utt} " + " ".join(text[u] for u in run))
        if run[0] in spk:
            rows["utt2spk"].append(f"{utt} {spk[run[0]]}")
    if not runs:
        raise SystemExit(
            f"{args.src}: no run of utterances reaches {args.min_seconds} s"
        )
    for name, lines in rows.items():
        if lines:
            (tmp / name).write_text("".join(r + "\n" for r in lines))
    shutil.copy(tmp / "utt2num_samples", tmp / "audio_shape")
    shutil.rmtree(args.dst, ignore_errors=True)
    tmp.rename(args.dst)
    used = sum(len(r) for r in runs)
    hours = sum(seconds[u] for r in runs for u in r) / 3600
    logging.info(
        f"{args.src} -> {args.dst}: {len(runs)} utterances from {used} of "
        f"{len(scp)} ({hours:.2f} h of speech, {args.gap_seconds} s gaps)"
    )


if __name__ == "__main__":
    main()
