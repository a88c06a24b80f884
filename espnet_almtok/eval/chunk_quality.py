"""Quality at chunk boundaries: chunked against whole-file coding.

Usage::

    python -m espnet_almtok.bin.chunk_quality \\
        --train_config exp/stage2/config.yaml \\
        --model_file exp/stage2/valid.mel_loss.best.pth \\
        --wav_scp dump/raw/test/wav.scp --window_size 4 --chunk_seconds 5 \\
        --out chunk_quality.json

Codes each utterance twice, as a whole (``encode``/``decode``) and in chunks
(``encode_chunked``/``decode_chunked``, as ``codec_inference --chunk_seconds``
does), and scores both reconstructions against the input in three kinds of
region:

* ``boundary``: ``--boundary_seconds`` either side of each chunk boundary;
* ``interior``: a region of the same width in the middle of the chunk before
  each boundary (the control: chunking changes the context there too, but
  leaves no seam);
* ``utterance``: the whole utterance.

Metrics (``espnet_almtok.eval.metrics``): ``mel_distance`` (lower is better) and
``si_snr`` (dB, higher is better). The JSON written to ``--out`` holds the
settings, ``num_utts``, ``num_boundaries``, ``token_agreement`` (per RVQ layer,
the fraction of tokens that chunked coding leaves unchanged), per region,
system (``chunked``, ``whole``) and metric the ``mean`` over regions where it is
defined, their ``count`` and ``num_nan`` (``score.nan_stats``), and ``per_utt``
rows (the same means per utterance). Utterances no longer than one
chunk have no boundary (chunked coding equals whole-file coding for them).

Whole-file coding attends over the whole file, so its memory grows with the
file: score files a few chunks long (say ``--chunk_seconds 5`` on 20-second
files), not hour-long ones. This is an analysis script, not a timed benchmark.
"""

import argparse
import itertools
import json
import logging
import math
from typing import Dict, List, Tuple

import numpy as np
import torch

from espnet_almtok.eval.metrics import Scorer, si_snr
from espnet_almtok.eval.scoring import nan_stats
from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.audio import load_audio

REGIONS = ("boundary", "interior", "utterance")
SYSTEMS = ("chunked", "whole")
METRICS = ("mel_distance", "si_snr")


def regions(length: int, chunk: int, half: int) -> Dict[str, List[Tuple[int, int]]]:
    """Sample ranges ``[start, end)`` of each region kind (see the module doc).

    Args:
        length: Samples of the utterance.
        chunk: Samples per chunk.
        half: Samples scored either side of a boundary or chunk middle.
    """
    bounds = range(chunk, length, chunk)
    middles = [b - chunk // 2 for b in bounds]
    return dict(
        boundary=[(b - half, min(length, b + half)) for b in bounds],
        interior=[(m - half, m + half) for m in middles],
        utterance=[(0, length)],
    )


def region_metrics(
    scorer: Scorer, ref: np.ndarray, hyp: np.ndarray, utt: str
) -> Dict[str, float]:
    """``METRICS`` of ``hyp`` against ``ref`` (1-D, equal length)."""
    mel = math.nan
    if len(ref) >= scorer.min_mel_samples:
        r, h = (torch.from_numpy(a).float()[None, None] for a in (ref, hyp))
        with torch.no_grad():
            mel = float(scorer.mel(h, r))
    return dict(mel_distance=mel, si_snr=si_snr(ref, hyp, utt))


def code_both_ways(codec, x: torch.Tensor, w: int, chunk_seconds: float):
    """Code ``x`` as a whole and in chunks.

    Returns:
        The codes (n_q, 1, N) and the reconstructions (trimmed to the input,
        as NumPy arrays) of each system, as two dicts keyed by system.
    """
    with torch.no_grad():
        whole = codec.encode(x, window_size=w)
        chunked, _ = codec.encode_chunked(x, None, w, chunk_seconds)
        wavs = dict(
            whole=codec.decode(whole, w),
            chunked=codec.decode_chunked(chunked, w, None, chunk_seconds),
        )
    wavs = {k: v[0, 0, : len(x)].float().cpu().numpy() for k, v in wavs.items()}
    return dict(whole=whole, chunked=chunked), wavs


def chunk_quality(args) -> Dict[str, object]:
    """Score chunked against whole-file coding; return the JSON contents."""
    from espnet2.fileio.read_text import read_2columns_text

    from espnet_almtok.model.codec import ALMTokenizer
    from espnet_almtok.pretrained import load_codec

    device = "cuda" if args.ngpu >= 1 else "cpu"
    codec = load_codec(args.train_config, device, model_file=args.model_file)
    if not isinstance(codec, ALMTokenizer):
        raise ValueError(
            f"{args.train_config} is a '{type(codec).__name__}' model; chunk "
            "quality is measured for ALMTokenizer models"
        )
    w = codec.window(args.window_size)
    fs = codec.fs
    chunk = codec.chunk_samples(args.chunk_seconds, w)
    half = round(args.boundary_seconds * fs)
    if chunk == 0 or not 0 < half <= chunk // 4:
        raise ValueError(
            f"--boundary_seconds must be > 0 and at most a quarter of the chunk "
            f"({chunk / fs} s at window {w}; --chunk_seconds must be > 0)"
        )
    scorer = Scorer(fs)
    values = {r: {s: {m: [] for m in METRICS} for s in SYSTEMS} for r in REGIONS}
    agree, total, per_utt, failed = 0, 0, [], []
    for utt, path in read_2columns_text(args.wav_scp).items():
        try:
            x = load_audio(path, fs, warn=True)
        except ValueError as e:
            logging.error(f"{utt}: {e}; skipped")
            failed.append(utt)
            continue
        codes, wavs = code_both_ways(codec, x.to(device), w, args.chunk_seconds)
        same = (codes["whole"] == codes["chunked"])[:, 0].float().cpu()
        agree, total = agree + same.sum(-1), total + same.size(-1)
        spans = regions(len(x), chunk, half)
        row = dict(
            utt_id=utt,
            seconds=len(x) / fs,
            num_boundaries=len(spans["boundary"]),
            token_agreement=same.mean(-1).tolist(),
        )
        ref = x.numpy()
        for region, system in itertools.product(REGIONS, SYSTEMS):
            scores = [
                region_metrics(scorer, ref[a:b], wavs[system][a:b], utt)
                for a, b in spans[region]
            ]
            for m in METRICS:
                values[region][system][m] += [s[m] for s in scores]
                row[f"{region}_{system}_{m}"] = nan_stats([s[m] for s in scores])[
                    "mean"
                ]
        per_utt.append(row)
    if not per_utt:
        raise ValueError(f"{args.wav_scp}: no utterance could be coded")
    return dict(
        train_config=str(args.train_config),
        model_file=str(args.model_file),
        wav_scp=str(args.wav_scp),
        window_size=w,
        chunk_seconds=chunk / fs,
        boundary_seconds=half / fs,
        fs=fs,
        num_utts=len(per_utt),
        num_failed=len(failed),
        num_boundaries=sum(r["num_boundaries"] for r in per_utt),
        token_agreement=(agree / total).tolist(),
        **{
            region: {
                system: {m: nan_stats(values[region][system][m]) for m in METRICS}
                for system in SYSTEMS
            }
            for region in REGIONS
        },
        per_utt=per_utt,
    )


def report(args: argparse.Namespace) -> None:
    """Measure (``chunk_quality``), write the JSON and log the means.

    Args:
        args: The options of ``espnet_almtok.bin.chunk_quality``.
    """
    result = chunk_quality(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    for region in REGIONS:
        logging.info(
            f"{region}: "
            + ", ".join(
                f"{system} {m} {result[region][system][m]['mean']}"
                for system in SYSTEMS
                for m in METRICS
            )
        )
