#!/usr/bin/env python3
"""Make train/dev/test Kaldi data dirs from a local folder of sound clips.

Two layouts (``--layout auto`` picks ESC-50 when ``<root>/meta/esc50.csv`` exists):

* ``esc50``: ``<root>/meta/esc50.csv`` (columns ``filename, fold, target,
  category, ...``) and the clips in ``<root>/audio/``. The folds give the split:
  ``--test_folds`` and ``--dev_folds`` (comma lists), training gets the rest.
  A clip listed in the CSV but missing on disk is skipped with a warning.
* ``plain``: every ``.wav``/``.flac``/``.ogg`` under ``<root>``, found
  recursively (AudioSet-style clips). Labels come from ``--labels_csv``
  (``filename,label``; the file name may be given with or without extension or
  as a path relative to the root), else every clip is ``sound``. Each clip goes
  to test, dev or train by an MD5 hash of its file name, so the split does not
  depend on which other clips are present or on the order they are found in.

Writes ``<out_dir>/{train,dev,test}<suffix>`` (wav.scp with absolute paths,
utt2spk, spk2utt; no text, sounds have no transcript). The "speaker" of a clip
is its category or label, reduced to ``[A-Za-z0-9_]``. Examples::

    python3 local/prep_sound_folder.py --root /data/ESC-50 --out_dir data \\
        --test_folds 5 --dev_folds 4
    python3 local/prep_sound_folder.py --root /data/audioset_clips --out_dir data \\
        --labels_csv /data/audioset_labels.csv --dev_fraction 0.02 --test_fraction 0.02
"""

import argparse
import csv
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

from kaldi_dir import (
    Utterance,
    clean_id,
    hash_fraction,
    require_dir,
    setup_logging,
    utt_id,
    write_kaldi_dir,
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
UNKNOWN = "sound"  # speaker of clips without a label
PROGRESS_EVERY = 10000  # files between progress lines
SPLITS = ("train", "dev", "test")


def parse_folds(value: str) -> List[int]:
    """``"4,5"`` -> ``[4, 5]``.

    Args:
        value: Comma-separated fold numbers.

    Returns:
        The folds.

    Raises:
        argparse.ArgumentTypeError: When a fold is not an integer.
    """
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected folds like 4 or 4,5, got {value!r}")


def esc50_split(root: Path, test_folds: List[int], dev_folds: List[int]):
    """Split an ESC-50 tree by its folds.

    Args:
        root: ESC-50 root (``meta/esc50.csv``, ``audio/``).
        test_folds: Folds of the test set.
        dev_folds: Folds of the dev set.

    Returns:
        Split name -> utterances.

    Raises:
        SystemExit: On a missing file or column, unknown or overlapping folds.
    """
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise SystemExit(f"ESC-50 metadata not found: {meta}")
    audio = require_dir(root / "audio", "ESC-50 audio folder")
    with open(meta, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = {"filename", "fold", "category"}
    if not rows or not need <= set(rows[0]):
        raise SystemExit(f"{meta}: expected the columns {', '.join(sorted(need))}")
    if set(test_folds) & set(dev_folds):
        raise SystemExit(
            f"--test_folds {test_folds} and --dev_folds {dev_folds} overlap"
        )
    folds = {int(r["fold"]) for r in rows}
    unknown = sorted(set(test_folds + dev_folds) - folds)
    if unknown:
        raise SystemExit(f"{meta} has no fold {unknown} (folds: {sorted(folds)})")

    sets: Dict[str, List[Utterance]] = {s: [] for s in SPLITS}
    missing = 0
    for r in rows:
        path = audio / r["filename"]
        if not path.is_file():
            missing += 1
            if missing <= 10:
                logging.warning(f"{path} is listed in {meta} but missing: skipped")
            continue
        fold = int(r["fold"])
        split = (
            "test" if fold in test_folds else "dev" if fold in dev_folds else "train"
        )
        spk = clean_id(r["category"], UNKNOWN)
        sets[split].append(Utterance(utt_id(spk, path.stem), path, spk))
    if missing:
        logging.warning(f"{missing} clips listed in {meta} are missing")
    return sets


def find_clips(root: Path) -> List[Path]:
    """Every audio file under ``root``, recursively, sorted.

    Args:
        root: Folder to search.

    Returns:
        The files.
    """
    clips: List[Path] = []
    # followlinks: large clip collections are often assembled from symlinked shards.
    for dirpath, _, files in os.walk(root, followlinks=True):
        for name in files:
            if name.lower().endswith(AUDIO_EXTENSIONS):
                clips.append(Path(dirpath) / name)
                if len(clips) % PROGRESS_EVERY == 0:
                    logging.info(f"{root}: {len(clips)} clips found so far")
    return sorted(clips)


def read_labels(path: Path) -> Dict[str, str]:
    """Read a ``filename,label`` CSV (with or without that header row).

    Args:
        path: The CSV file.

    Returns:
        File name (as written in the CSV) -> label.

    Raises:
        SystemExit: When the file is missing or a row has fewer than two columns.
    """
    if not path.is_file():
        raise SystemExit(f"labels CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    i_name, i_label, start = 0, 1, 0
    cols = [c.strip().lower() for c in rows[0]] if rows else []
    if "filename" in cols and "label" in cols:
        i_name, i_label, start = cols.index("filename"), cols.index("label"), 1
    labels: Dict[str, str] = {}
    for n, row in enumerate(rows[start:], start + 1):
        if not "".join(row).strip():
            continue
        if len(row) <= max(i_name, i_label):
            raise SystemExit(f"{path}:{n}: expected filename,label, got {row}")
        labels.setdefault(row[i_name].strip(), row[i_label].strip())
    return labels


def plain_split(
    root: Path, labels_csv: Optional[Path], dev_fraction: float, test_fraction: float
):
    """Split a plain folder of clips by a hash of each file name.

    Args:
        root: Folder of clips.
        labels_csv: Optional ``filename,label`` CSV.
        dev_fraction: Share of clips for dev.
        test_fraction: Share of clips for test.

    Returns:
        Split name -> utterances.

    Raises:
        SystemExit: When the folder holds no audio files.
    """
    labels = read_labels(labels_csv) if labels_csv else {}
    clips = find_clips(root)
    if not clips:
        raise SystemExit(
            f"no {'/'.join(e[1:] for e in AUDIO_EXTENSIONS)} files under {root}"
        )
    sets: Dict[str, List[Utterance]] = {s: [] for s in SPLITS}
    used = set()
    for path in clips:
        rel = path.relative_to(root)
        label = UNKNOWN
        for key in (rel.as_posix(), path.name, path.stem):
            if key in labels:
                label = labels[key]
                used.add(key)
                break
        spk = clean_id(label, UNKNOWN)
        # The relative path keeps ids unique in folder-per-class trees (dog/001.wav).
        name = rel.with_suffix("").as_posix().replace("/", "_")
        h = hash_fraction(path.name)
        split = (
            "test"
            if h < test_fraction
            else "dev" if h < test_fraction + dev_fraction else "train"
        )
        sets[split].append(Utterance(utt_id(spk, name), path, spk))
    if labels_csv:
        unlabelled = sum(u.spk == UNKNOWN for s in sets.values() for u in s)
        logging.info(
            f"{labels_csv}: {len(used)} of {len(labels)} labels matched a clip; "
            f"{unlabelled} clips without label are '{UNKNOWN}'"
        )
    return sets


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    parser.add_argument("--root", type=Path, required=True, help="folder of clips")
    parser.add_argument("--out_dir", type=Path, required=True, help="data/ directory")
    parser.add_argument("--layout", choices=["auto", "esc50", "plain"], default="auto")
    parser.add_argument(
        "--suffix", default="_sound", help="set names: train<suffix>, ..."
    )
    parser.add_argument("--test_folds", type=parse_folds, default=[5], help="esc50")
    parser.add_argument("--dev_folds", type=parse_folds, default=[4], help="esc50")
    parser.add_argument("--labels_csv", type=Path, help="plain: filename,label CSV")
    parser.add_argument("--dev_fraction", type=float, default=0.05, help="plain")
    parser.add_argument("--test_fraction", type=float, default=0.05, help="plain")
    args = parser.parse_args()
    setup_logging()

    require_dir(args.root, "sound folder")
    layout = args.layout
    if layout == "auto":
        layout = "esc50" if (args.root / "meta" / "esc50.csv").is_file() else "plain"
    logging.info(f"{args.root}: {layout} layout")
    if layout == "esc50":
        if args.labels_csv:
            raise SystemExit("--labels_csv is for the plain layout (ESC-50 has meta/)")
        sets = esc50_split(args.root, args.test_folds, args.dev_folds)
    else:
        fractions = (args.dev_fraction, args.test_fraction)
        if min(fractions) <= 0 or sum(fractions) >= 1:
            raise SystemExit(
                "--dev_fraction and --test_fraction must be > 0 and sum to less than 1"
            )
        sets = plain_split(
            args.root, args.labels_csv, args.dev_fraction, args.test_fraction
        )

    # Check every split before writing, so a failed run leaves no partial sets.
    for split in SPLITS:
        if not sets[split]:
            hint = "folds" if layout == "esc50" else "--dev_fraction/--test_fraction"
            raise SystemExit(
                f"{args.root}: no clips for {split}{args.suffix} (check {hint})"
            )
    for split in SPLITS:
        out = args.out_dir / f"{split}{args.suffix}"
        n = write_kaldi_dir(out, sets[split])
        labels = len({u.spk for u in sets[split]})
        logging.info(f"{out}: {n} clips, {labels} labels")


if __name__ == "__main__":
    main()
