"""Gather scoring directories into one results table.

Usage::

    python -m espnet_almtok.bin.summarize \\
        --score_dirs decode/test_w2/score decode/test_w4/score \\
        --out RESULTS.md --json RESULTS.json

Reads ``summary.json`` of each directory written by ``espnet_almtok.bin.score``
and writes ``--out``: one markdown table (``TABLE_HEADER``), one row per
directory in the order given; ``summary.md`` of each directory is the same table
with its row alone. ``--json`` also writes
``{"results": [{"score_dir": DIR, **summary}, ...]}``. The table is printed too.

The table helpers live here, not in ``score``, so that tabulating does not
import torch.
"""

import argparse
import json
from pathlib import Path
from typing import Dict, List, Sequence

from espnet_almtok.utils.atomic import atomic_path

# (header, "decode" or "metrics", key, format) of each column after the tag.
COLUMNS = (
    ("window", "decode", "window_size", "{}"),
    ("bitrate (bit/s)", "decode", "bitrate", "{:.1f}"),
    ("real bitrate (bit/s)", "decode", "real_bitrate", "{:.1f}"),
    ("token rate (1/s)", "decode", "token_rate", "{:.2f}"),
    ("mel dist", "metrics", "mel_distance", "{:.3f}"),
    ("MR-STFT dist", "metrics", "mrstft_distance", "{:.3f}"),
    ("SI-SNR (dB)", "metrics", "si_snr", "{:.2f}"),
    ("PESQ", "metrics", "pesq", "{:.3f}"),
    ("STOI", "metrics", "stoi", "{:.3f}"),
    ("WER", "metrics", "wer", "{:.3f}"),
    ("WER orig", "metrics", "wer_orig", "{:.3f}"),
    ("dWER", "metrics", "dwer", "{:.3f}"),
    ("dWER capped", "metrics", "dwer_capped", "{:.3f}"),
    ("DNSMOS", "metrics", "dnsmos", "{:.2f}"),
    ("DNSMOS orig", "metrics", "dnsmos_orig", "{:.2f}"),
    ("spk sim", "metrics", "spk_sim", "{:.3f}"),
    ("encode RTF", "decode", "encode_rtf", "{:.4f}"),
    ("decode RTF", "decode", "decode_rtf", "{:.4f}"),
)
TABLE_HEADER = ["tag"] + [c[0] for c in COLUMNS] + ["#utts"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table; ``|`` inside cells is escaped."""
    lines = [header, ["---"] * len(header), *rows]
    return "".join(
        "| " + " | ".join(c.replace("|", "\\|") for c in line) + " |\n"
        for line in lines
    )


def summary_row(summary: Dict) -> List[str]:
    """The ``TABLE_HEADER`` cells of a ``summary.json``; ``-`` where unknown.

    A metric some utterances lack reads ``mean (k NaN)``; one that was not
    computed (a speech metric without its package, say) reads ``-``.
    """
    cells = [summary["tag"]]
    for _, source, key, fmt in COLUMNS:
        if source == "decode":
            value = (summary["decode"] or {}).get(key)
            cells.append("-" if value is None else fmt.format(value))
            continue
        stats = summary["metrics"].get(key)
        if stats is None:
            cells.append("-")
            continue
        cell = "-" if stats["mean"] is None else fmt.format(stats["mean"])
        if stats["num_nan"]:
            cell += f" ({stats['num_nan']} NaN)"
        cells.append(cell)
    return cells + [str(summary["num_utts"])]


def summarize(args: argparse.Namespace) -> None:
    """Write one table (and optionally JSON) over the score directories.

    Args:
        args: The options of ``espnet_almtok.bin.summarize``.
    """
    summaries = []
    for score_dir in args.score_dirs:
        path = Path(score_dir) / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: has scoring finished?")
        summaries.append(json.loads(path.read_text(encoding="utf-8")))

    table = markdown_table(TABLE_HEADER, [summary_row(s) for s in summaries])
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(table, encoding="utf-8")
    if args.json is not None:
        results = [dict(score_dir=d, **s) for d, s in zip(args.score_dirs, summaries)]
        with atomic_path(Path(args.json)) as tmp:
            text = json.dumps(dict(results=results), indent=2, allow_nan=False)
            tmp.write_text(text + "\n", encoding="utf-8")
    print(table, end="")
