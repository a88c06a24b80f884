#!/usr/bin/env python3
"""Training curves of ESPnet train.log files against generator steps.

ESPnet's own plots (``<exp>/images``) have one point per epoch. This reads the
per-interval lines that the trainer logs every ``log_interval`` batches
(``3epoch:train:41-60batch: ... mel_loss=64.3, codes_used_1=31.2, ...``) and
draws, per log, the mel loss and each RVQ layer's distinct codes per batch
against the generator step.

Usage::

    python local/plot_curves.py --log stage1=exp/x/stage1/train.log \\
        --log stage2=exp/x/stage2/train.log --out curves.png [--json curves.json]

A stage-2 log continues the step count of the stage-1 log before it.
"""

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LINE = re.compile(r"(\d+)epoch:train:(\d+)-(\d+)batch: (.*)")
STAT = re.compile(r"([A-Za-z_0-9]+)=([-+0-9.e]+)")


def read_log(path: Path) -> Dict[str, List[float]]:
    """Per logged interval: its last step (counted across epochs) and its stats."""
    curves: Dict[str, List[float]] = {"step": []}
    offset, last_epoch, last_end = 0, None, 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = LINE.search(line)
        if not m:
            continue
        epoch, end = int(m.group(1)), int(m.group(3))
        if last_epoch is not None and epoch != last_epoch:
            offset += last_end
        last_epoch, last_end = epoch, end
        stats = {k: float(v) for k, v in STAT.findall(m.group(4))}
        curves["step"].append(offset + end)
        for key, value in stats.items():
            curves.setdefault(key, []).append(value)
    if not curves["step"]:
        raise ValueError(f"{path}: no 'Nepoch:train:a-bbatch:' lines")
    return curves


def plot(logs: Dict[str, Dict[str, List[float]]], out: Path) -> None:
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    mel_ax, code_ax = fig.subplots(1, 2)
    start = 0
    for name, c in logs.items():
        steps = [start + s for s in c["step"]]
        mel_ax.plot(steps, c["mel_loss"], label=name)
        for key in sorted(k for k in c if k.startswith("codes_used_")):
            code_ax.plot(steps, c[key], label=f"{name} layer {key.rsplit('_', 1)[1]}")
        start = steps[-1]
    mel_ax.set(xlabel="generator step", ylabel="mel loss (weighted)", yscale="log")
    code_ax.set(xlabel="generator step", ylabel="distinct codes per batch")
    for ax in (mel_ax, code_ax):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--log", action="append", required=True, help="NAME=train.log, in order"
    )
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--json", default=None, help="also write the curves here")
    args = parser.parse_args()
    logs = {}
    for item in args.log:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--log takes NAME=PATH, got {item!r}")
        logs[name] = read_log(Path(path))
    plot(logs, Path(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(logs) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
