#!/usr/bin/env python3
"""Make Kaldi data dirs from a local copy of LibriTTS (or LibriTTS-R).

Expects the layout of the OpenSLR archives::

    <root>/<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<...>.wav
                                       /<speaker>_<chapter>_<...>.normalized.txt

Each ``--set NAME=SUBSET[,SUBSET...]`` writes ``<out_dir>/NAME`` with wav.scp
(absolute paths), utt2spk, spk2utt and text. The transcript is the
``.normalized.txt`` file, else the ``.original.txt`` one; a wav with neither is
skipped with a warning and counted. Utterance ids are ``<speaker>-<file stem>``
(see ``kaldi_dir.py``), speakers are the LibriTTS reader ids.

Every requested subset is checked before anything is scanned, so a typo in the
last set does not cost a full scan of the first. Example::

    python3 local/prep_libritts.py --root /data/LibriTTS --out_dir data \\
        --set train_speech=train-clean-100,train-clean-360 \\
        --set dev_speech=dev-clean --set test_speech=test-clean
"""

import argparse
import logging
import os
from pathlib import Path
from typing import Dict, List, Tuple

from kaldi_dir import (
    Utterance,
    clean_id,
    require_dir,
    setup_logging,
    utt_id,
    write_kaldi_dir,
)

TRANSCRIPT_SUFFIXES = (".normalized.txt", ".original.txt")
PROGRESS_EVERY = 10000  # utterances between progress lines


def parse_set(spec: str) -> Tuple[str, List[str]]:
    """Split ``NAME=SUBSET[,SUBSET...]`` into the name and its subsets.

    Args:
        spec: The ``--set`` value.

    Returns:
        The output set name and its subset names, without repeats, in order.

    Raises:
        argparse.ArgumentTypeError: When the value is malformed.
    """
    name, sep, subsets = spec.partition("=")
    parts = [s.strip() for s in subsets.split(",") if s.strip()]
    if not sep or not name.strip() or not parts:
        raise argparse.ArgumentTypeError(
            f"expected NAME=SUBSET[,SUBSET...] (e.g. dev=dev-clean), got {spec!r}"
        )
    return name.strip(), list(dict.fromkeys(parts))


def check_subsets(root: Path, sets: Dict[str, List[str]]):
    """Stop with a message naming every missing subset directory.

    Args:
        root: LibriTTS root.
        sets: Output set name -> subset names.

    Raises:
        SystemExit: When a subset directory is missing.
    """
    wanted = sorted({s for subsets in sets.values() for s in subsets})
    missing = [str(root / s) for s in wanted if not (root / s).is_dir()]
    if not missing:
        return
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    msg = f"LibriTTS subset not found: {', '.join(missing)} (subsets in {root}: "
    msg += f"{', '.join(found) or 'none'})"
    nested = [p for p in (root / "LibriTTS", root / "LibriTTS_R") if p.is_dir()]
    if nested:
        msg += f"; did you mean --root {nested[0]}?"
    raise SystemExit(msg)


def transcript(names: set, chapter: Path, stem: str) -> str:
    """The transcript of one wav, or "" when it has none.

    Args:
        names: File names in the wav's directory (listed once per directory).
        chapter: That directory.
        stem: The wav's name without ``.wav``.

    Returns:
        The transcript on one line, or "" when no (non-empty) transcript exists.
    """
    for suffix in TRANSCRIPT_SUFFIXES:
        if stem + suffix in names:
            text = (chapter / (stem + suffix)).read_text(encoding="utf-8")
            return " ".join(text.split())
    return ""


def scan_subset(subset_dir: Path) -> Tuple[List[Utterance], int]:
    """Collect the utterances of one subset.

    Args:
        subset_dir: ``<root>/<subset>``.

    Returns:
        The utterances, and the number of wavs skipped for lack of a transcript.
    """
    utts: List[Utterance] = []
    skipped = 0
    speakers = sorted(p for p in subset_dir.iterdir() if p.is_dir())
    logging.info(f"{subset_dir}: {len(speakers)} speakers")
    for speaker in speakers:
        spk = clean_id(speaker.name, "unknown")
        for chapter in sorted(p for p in speaker.iterdir() if p.is_dir()):
            # One listing per chapter instead of a stat per transcript: much
            # cheaper on network file systems with 100k+ files.
            names = set(os.listdir(chapter))
            for name in sorted(n for n in names if n.endswith(".wav")):
                stem = name[: -len(".wav")]
                text = transcript(names, chapter, stem)
                if not text:
                    skipped += 1
                    if skipped <= 10:
                        logging.warning(f"no transcript for {chapter / name}: skipped")
                    continue
                utts.append(Utterance(utt_id(spk, stem), chapter / name, spk, text))
                if len(utts) % PROGRESS_EVERY == 0:
                    logging.info(f"{subset_dir}: {len(utts)} utterances so far")
    if skipped > 10:
        logging.warning(f"{subset_dir}: {skipped - 10} more wavs without transcript")
    return utts, skipped


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    parser.add_argument("--root", type=Path, required=True, help="LibriTTS root")
    parser.add_argument("--out_dir", type=Path, required=True, help="data/ directory")
    parser.add_argument(
        "--set",
        dest="sets",
        type=parse_set,
        action="append",
        required=True,
        metavar="NAME=SUBSET[,SUBSET...]",
        help="an output set and the LibriTTS subsets it holds (repeatable)",
    )
    args = parser.parse_args()
    setup_logging()

    sets = dict(args.sets)
    if len(sets) != len(args.sets):
        raise SystemExit("each --set NAME may be given once")
    require_dir(args.root, "LibriTTS root")
    check_subsets(args.root, sets)
    owners: Dict[str, List[str]] = {}
    for name, subsets in sets.items():
        for s in subsets:
            owners.setdefault(s, []).append(name)
    for s, names in owners.items():
        if len(names) > 1:
            logging.warning(f"subset {s} is in several sets: {', '.join(names)}")

    for name, subsets in sets.items():
        utts: List[Utterance] = []
        skipped = 0
        for s in subsets:
            found, missed = scan_subset(args.root / s)
            utts += found
            skipped += missed
        if not utts:
            raise SystemExit(
                f"no utterances (.wav with a .normalized.txt or .original.txt "
                f"transcript) under {', '.join(str(args.root / s) for s in subsets)}"
            )
        n = write_kaldi_dir(args.out_dir / name, utts)
        speakers = len({u.spk for u in utts})
        logging.info(
            f"{args.out_dir / name}: {n} utterances, {speakers} speakers from "
            f"{','.join(subsets)} ({skipped} wavs without transcript skipped)"
        )


if __name__ == "__main__":
    main()
