"""Score reconstructions against their references (the recipe's scoring stage).

Usage::

    python -m espnet_almtok.bin.score --ref_scp dump/test/wav.scp \\
        --hyp_scp decode/test_w4/wav/wav.scp \\
        --decode_stats decode/test_w4/decode_stats.json \\
        --out_dir decode/test_w4/score --tag "test w=4" --num_plots 3

Both scp files are Kaldi ``wav.scp`` files of ``utt_id path`` lines, read with
ESPnet's ``SoundScpReader``. Every reference utterance must have a
reconstruction; extra reconstructions are ignored. A reconstruction at another
sample rate is resampled to the reference rate, then trimmed or zero-padded to
the reference length (see ``espnet_almtok.eval.metrics``).

With ``--speech_metrics true`` (the default) the field's speech metrics of
``espnet_almtok.eval.speech_metrics`` are added, those whose package is installed:
``dwer``, ``dwer_capped``, ``dnsmos``, ``dnsmos_orig`` and ``spk_sim`` always,
``wer`` and ``wer_orig`` for the utterances that ``--text`` (a Kaldi ``text`` file) has.
They cost seconds an utterance (Whisper on the reference and the
reconstruction): ``--speech_utts N`` computes them on N utterances spread
evenly over the scp order (the same N for every system scored on the set).

Files written to ``--out_dir``, each under a temporary name and then renamed,
``summary.json`` last (a run that stopped early leaves none):

- ``per_utt.tsv``: a header line, then one tab-separated row per reference
  utterance in scp order: ``utt_id``, ``seconds`` (reference duration),
  ``hyp_len_diff`` (reconstruction minus reference samples, at the reference
  rate), then the metrics of ``METRICS`` and the speech metrics (WERs per
  utterance); undefined values read ``nan``.
- ``transcripts.tsv`` (with Whisper): ``utt_id``, ``text`` (reference or
  empty), ``orig`` and ``recon`` (Whisper's transcripts of both).
- ``summary.json``: ``tag``, ``num_utts``, ``speech_utts`` (utterances with
  speech metrics), ``ref_scp``, ``hyp_scp``,
  ``metrics`` (per metric: ``mean`` over the utterances where it is defined, or
  null if none, ``count`` of those, ``num_nan`` of the others; for the WERs
  ``mean`` is the pooled WER, total errors over total reference words, and
  for ``dwer_capped`` the mean per utterance) and
  ``decode`` (the decoder's ``decode_stats.json`` plus ``real_bitrate`` in
  bit/s and ``encode_rtf`` / ``decode_rtf``; null without ``--decode_stats``).
- ``summary.md``: the ``summarize`` table with this directory's row alone.
- ``images/<utt_id>.png`` (``/`` in ids read ``_``): log-magnitude spectrograms
  of the reference above the reconstruction, for the first ``--num_plots``
  utterances.
"""

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from espnet2.fileio.sound_scp import SoundScpReader
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from espnet_almtok.eval.metrics import (
    METRICS,
    Scorer,
    match_length,
    read_mono,
    resample,
    stft_magnitude,
)
from espnet_almtok.eval.speech_metrics import WER_METRICS, SpeechScorer, pooled_wer
from espnet_almtok.eval.summary import (
    TABLE_HEADER,
    markdown_table,
    summary_row,
)
from espnet_almtok.speechlm.data import read_index
from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.rates import bits_per_step

DECODE_KEYS = (
    "window_size",
    "code_size_per_stream",
    "bitrate",
    "token_rate",
    "audio_seconds",
    "num_token_steps",
    "encode_seconds",
    "decode_seconds",
)

# (n_fft, hop, window length) of the plotted spectrograms.
PLOT_STFT = (1024, 256, 1024)
PLOT_RANGE_DB = 80.0


def decode_summary(path: str) -> Dict:
    """``decode_stats.json`` plus real bitrate and real-time factors."""
    stats = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in DECODE_KEYS if k not in stats]
    if missing:
        raise ValueError(f"{path}: missing keys {', '.join(missing)}")
    seconds = stats["audio_seconds"]
    if seconds <= 0:
        raise ValueError(f"{path}: audio_seconds must be positive, not {seconds}")
    # Anchors (classic codecs) count their payload bits themselves.
    bits = stats.get("num_bits")
    if bits is None and stats["code_size_per_stream"] is not None:
        bits = stats["num_token_steps"] * bits_per_step(stats["code_size_per_stream"])
    return dict(
        stats,
        # None for a continuous codec's latents: they have no bitrate.
        real_bitrate=None if bits is None else bits / seconds,
        encode_rtf=stats["encode_seconds"] / seconds,
        decode_rtf=stats["decode_seconds"] / seconds,
    )


def nan_stats(values: Sequence[float]) -> Dict:
    """Mean over the defined (non-NaN) values, their count and the NaN count."""
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return dict(
        mean=float(defined.mean()) if len(defined) else None,
        count=len(defined),
        num_nan=len(values) - len(defined),
    )


def plot_spectrograms(
    ref: np.ndarray, hyp: np.ndarray, fs: int, title: str, path: Path
) -> None:
    """Save reference and reconstruction spectrograms, stacked, as a PNG."""
    specs = [
        20 * np.log10(stft_magnitude(torch.from_numpy(x).float(), *PLOT_STFT).numpy())
        for x in (ref, hyp)
    ]
    # One colour scale, set by the reference, so the panels compare directly.
    vmax = float(specs[0].max())
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, spec, name in zip(axes, specs, ("original", "reconstruction")):
        image = ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            extent=(0, len(ref) / fs, 0, fs / 2000),
            vmin=vmax - PLOT_RANGE_DB,
            vmax=vmax,
            cmap="magma",
        )
        ax.set_title(name)
        ax.set_ylabel("frequency (kHz)")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes, label="dB")
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)


def _cell(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_tsv(path: Path, lines: Sequence[Sequence[str]]) -> None:
    """Tab-separated lines (tabs and newlines inside cells become spaces)."""
    clean = [[" ".join(str(c).split()) for c in line] for line in lines]
    with atomic_path(path) as tmp:
        tmp.write_text("".join("\t".join(x) + "\n" for x in clean), encoding="utf-8")


def spread(utt_ids: Sequence[str], n: int) -> set:
    """``n`` utterances spread evenly over ``utt_ids`` (all of them for 0 or more)."""
    if n <= 0 or n >= len(utt_ids):
        return set(utt_ids)
    return {utt_ids[i * len(utt_ids) // n] for i in range(n)}


def score(args: argparse.Namespace) -> Dict:
    """Score every reference utterance, write the outputs, return the summary."""
    out = Path(args.out_dir)
    tag = args.tag or out.resolve().name
    (out / "images").mkdir(parents=True, exist_ok=True)
    # summary.json marks a finished run: drop a previous one before starting.
    (out / "summary.json").unlink(missing_ok=True)
    decode = decode_summary(args.decode_stats) if args.decode_stats else None

    refs = SoundScpReader(args.ref_scp, dtype="float64")
    hyps = SoundScpReader(args.hyp_scp, dtype="float64")
    utt_ids = list(refs.keys())
    if not utt_ids:
        raise ValueError(f"{args.ref_scp}: no utterances")
    missing = [u for u in utt_ids if u not in hyps.keys()]
    if missing:
        shown = " ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ValueError(
            f"{args.hyp_scp}: no reconstruction for {len(missing)} of "
            f"{len(utt_ids)} utterances of {args.ref_scp}: {shown}"
        )
    extra = len(hyps) - len(utt_ids)
    if extra:
        logging.warning(
            f"{args.hyp_scp}: ignoring {extra} utterances not in {args.ref_scp}"
        )
    if decode is not None and decode.get("num_utts", len(utt_ids)) != len(utt_ids):
        logging.warning(
            f"{args.decode_stats} counts {decode['num_utts']} utterances, "
            f"{args.ref_scp} {len(utt_ids)}"
        )

    texts = read_index(Path(args.text)) if args.text else {}
    if args.text:
        untranscribed = sum(u not in texts for u in utt_ids)
        if untranscribed:
            logging.warning(
                f"{args.text}: no transcript for {untranscribed} of {len(utt_ids)} "
                "utterances: their wer and wer_orig are undefined"
            )
    speech = SpeechScorer() if args.speech_metrics else None
    speech_metrics = speech.metrics if speech else []
    speech_utts = spread(utt_ids, args.speech_utts) if speech else set()

    scorers: Dict[int, Scorer] = {}
    resampled = set()
    rows, wers, transcripts = [], [], []
    start = time.perf_counter()
    for i, utt in enumerate(utt_ids, 1):
        fs, ref = read_mono(refs, utt, args.ref_scp)
        hyp_fs, hyp = read_mono(hyps, utt, args.hyp_scp)
        if hyp_fs != fs:
            if (hyp_fs, fs) not in resampled:
                logging.info(f"resampling reconstructions from {hyp_fs} to {fs} Hz")
                resampled.add((hyp_fs, fs))
            hyp = resample(hyp, hyp_fs, fs)
        len_diff = len(hyp) - len(ref)
        hyp = match_length(ref, hyp, utt)
        if fs not in scorers:
            scorers[fs] = Scorer(fs)
        metrics = scorers[fs](ref, hyp, utt)
        if utt in speech_utts:
            scores = speech(ref, hyp, fs, texts.get(utt), utt)
            metrics.update(scores.values)
            wers.append(scores.counts)
            if scores.transcripts:
                transcripts.append([utt, texts.get(utt, ""), *scores.transcripts])
        row = dict(utt_id=utt, seconds=len(ref) / fs, hyp_len_diff=len_diff)
        row.update({m: math.nan for m in speech_metrics}, **metrics)
        rows.append(row)
        if i <= args.num_plots:
            png = out / "images" / f"{utt.replace('/', '_')}.png"
            plot_spectrograms(ref, hyp, fs, f"{utt} ({tag})", png)
        if (args.log_every and i % args.log_every == 0) or i == len(utt_ids):
            elapsed = time.perf_counter() - start
            logging.info(f"scored {i}/{len(utt_ids)} utterances in {elapsed:.1f} s")

    columns = ["utt_id", "seconds", "hyp_len_diff", *METRICS, *speech_metrics]
    write_tsv(
        out / "per_utt.tsv", [columns] + [[_cell(r[c]) for c in columns] for r in rows]
    )
    if transcripts:
        write_tsv(
            out / "transcripts.tsv", [["utt_id", "text", "orig", "recon"]] + transcripts
        )
    metrics = {m: nan_stats([row[m] for row in rows]) for m in METRICS}
    speech_rows = [row for row in rows if row["utt_id"] in speech_utts]
    metrics.update(
        {m: nan_stats([row[m] for row in speech_rows]) for m in speech_metrics}
    )
    for m in WER_METRICS:
        if m in speech_metrics:
            metrics[m] = pooled_wer([w[m] for w in wers])

    summary = dict(
        tag=tag,
        num_utts=len(rows),
        speech_utts=len(speech_utts),
        ref_scp=args.ref_scp,
        hyp_scp=args.hyp_scp,
        metrics=metrics,
        decode=decode,
    )
    with atomic_path(out / "summary.md") as tmp:
        table = markdown_table(TABLE_HEADER, [summary_row(summary)])
        tmp.write_text(table, encoding="utf-8")
    with atomic_path(out / "summary.json") as tmp:
        # allow_nan=False: NaN is not JSON; undefined means are already null.
        text = json.dumps(summary, indent=2, allow_nan=False)
        tmp.write_text(text + "\n", encoding="utf-8")
    return summary
