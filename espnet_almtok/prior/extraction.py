"""Extract frame features of a wav.scp for the semantic-prior k-means.

Writes, in ``--out_dir``:

* ``feats.ark`` / ``feats.scp``: Kaldi archive (kaldiio), one float32 ``(T, D)``
  matrix per utterance; the scp holds absolute archive paths;
* ``info.json``: ``kind``, ``checkpoint``, ``checkpoint_format``, ``layer``,
  ``dim``, ``num_utts``, ``num_frames``, ``fallback`` (true for ``logmel``: no
  semantic prior), ``sample_rate``, ``frame_shift`` (16 kHz samples per vector)
  and the options that bounded the work.

``info.json`` is written last and removed when a run starts, so it marks a
complete output; the other files are written under temporary names and renamed
at the end. Utterances too short to give one frame are skipped with a warning.

Example::

    python -m espnet_almtok.bin.extract_features --wav_scp data/train/wav.scp \\
        --out_dir exp/feats/wav2vec2 --kind wav2vec2 --checkpoint wav2vec2_base/ \\
        --layer 6 --max_frames_per_utt 500
"""

import argparse
import json
import logging
import math
from pathlib import Path

import kaldiio
import numpy as np
import torch
from espnet2.fileio.read_text import read_2columns_text

from espnet_almtok.prior.features import (
    SAMPLE_RATE,
    build_extractor,
)
from espnet_almtok.utils.audio import load_audio


def _crop(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random slice of ``length`` along the first axis (all of ``x`` if shorter)."""
    if len(x) <= length:
        return x
    start = int(rng.integers(0, len(x) - length + 1))
    return x[start : start + length]


def extract(args: argparse.Namespace) -> None:
    """Extract the frames of every utterance of ``args.wav_scp`` into ``args.out_dir``.

    Args:
        args: The options of ``espnet_almtok.bin.extract_features``.
    """
    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but no CUDA device is available")
    extractor = build_extractor(
        args.kind,
        args.checkpoint or None,  # recipes pass "" for "no checkpoint"
        args.checkpoint_format,
        args.layer,
        args.n_mels,
        args.device,
    )
    utts = list(read_2columns_text(args.wav_scp).items())
    if not utts:
        raise ValueError(f"{args.wav_scp} lists no utterance")
    if args.batch_utts < 1:
        raise ValueError(f"--batch_utts must be >= 1, got {args.batch_utts}")
    rng = np.random.default_rng(args.seed)
    if 0 < args.max_utts < len(utts):
        # A random subset, not the first ones: scp files are sorted by speaker.
        keep = np.sort(rng.choice(len(utts), args.max_utts, replace=False))
        utts = [utts[i] for i in keep]
    # Audio is cropped before extraction to bound the work; one extra second
    # covers receptive fields, so every kind still gives max_frames_per_utt.
    max_samples = math.ceil(args.max_frames_per_utt * extractor.frame_shift)
    max_samples += SAMPLE_RATE

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info_path = out_dir / "info.json"
    info_path.unlink(missing_ok=True)  # no stale "complete" marker during the run
    ark, scp = out_dir / "feats.ark", out_dir / "feats.scp"
    tmp = {p: p.with_name(p.name + ".tmp") for p in (ark, scp, info_path)}
    num_utts = num_frames = 0
    skipped = []
    try:
        with open(tmp[ark], "wb") as ark_f, open(tmp[scp], "w") as scp_f:
            for first in range(0, len(utts), args.batch_utts):
                batch = utts[first : first + args.batch_utts]
                wavs = []
                for utt, path in batch:
                    try:
                        wav = load_audio(path)
                    except ValueError as e:
                        raise ValueError(f"utterance {utt}: {e}") from e
                    if args.max_frames_per_utt:
                        wav = torch.from_numpy(_crop(wav.numpy(), max_samples, rng))
                    wavs.append(wav)
                for (utt, path), feats in zip(batch, extractor.extract_many(wavs)):
                    if args.max_frames_per_utt:
                        feats = _crop(feats, args.max_frames_per_utt, rng)
                    if len(feats) == 0:
                        logging.warning(
                            f"{utt} ({path}): too short for one frame, skipped"
                        )
                        skipped.append(utt)
                        continue
                    # The scp points past "<utt> " in the archive, at the matrix.
                    offset = ark_f.tell() + len(f"{utt} ".encode("utf-8"))
                    kaldiio.save_ark(ark_f, {utt: feats.astype(np.float32)})
                    scp_f.write(f"{utt} {ark.resolve()}:{offset}\n")
                    num_utts += 1
                    num_frames += len(feats)
                done = first + len(batch)
                if args.log_every and done // args.log_every > first // args.log_every:
                    logging.info(f"{done}/{len(utts)} utterances, {num_frames} frames")
        if num_utts == 0:
            raise ValueError(f"no utterance of {args.wav_scp} gave a feature frame")
        info = {
            **extractor.info(),
            "num_utts": num_utts,
            "num_frames": num_frames,
            "skipped_utts": skipped,
            "wav_scp": str(args.wav_scp),
            "max_utts": args.max_utts,
            "max_frames_per_utt": args.max_frames_per_utt,
            "seed": args.seed,
        }
        tmp[info_path].write_text(json.dumps(info, indent=2) + "\n")
        for final in (ark, scp, info_path):  # info.json last: it marks completion
            tmp[final].replace(final)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    logging.info(
        f"{num_utts} utterances, {num_frames} frames of dim {extractor.dim} "
        f"({args.kind}{', FALLBACK: no semantic prior' if extractor.fallback else ''})"
        f" in {out_dir}"
    )
