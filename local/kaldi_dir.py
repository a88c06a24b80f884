"""Write Kaldi-style data directories: the shared helper of the ``prep_*`` scripts.

A directory holds ``wav.scp`` (absolute paths), ``utt2spk``, ``spk2utt`` and, when
any utterance has a transcript, ``text``. Every file is sorted by its first
column in byte order (``LC_ALL=C sort``), so the output is deterministic and
directories can be merged with ``sort``.

Utterance ids are ``<speaker>-<name>`` with speaker ids made of ``[A-Za-z0-9_]``
only: ``-`` sorts before all of those, so sorting by utterance and sorting by
speaker agree, as Kaldi's ``validate_data_dir.sh`` requires.
"""

import hashlib
import logging
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional


class Utterance(NamedTuple):
    """One row of a data directory.

    Attributes:
        utt: Utterance id (no whitespace).
        path: Audio file.
        spk: Speaker id (for sounds: their category).
        text: Transcript, or None for clips without one.
    """

    utt: str
    path: Path
    spk: str
    text: Optional[str] = None


def setup_logging():
    """Log INFO and above to stderr with timestamps, as the other local scripts do."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s"
    )


def require_dir(path: Path, what: str) -> Path:
    """Stop with a message naming ``path`` unless it is a directory.

    Args:
        path: Directory that must exist.
        what: What it is, for the message (e.g. "LibriTTS root").

    Returns:
        ``path``, for chaining.

    Raises:
        SystemExit: When ``path`` is missing or not a directory.
    """
    if not path.exists():
        raise SystemExit(f"{what} not found: {path}")
    if not path.is_dir():
        raise SystemExit(f"{what} is not a directory: {path}")
    return path


def clean_id(name: str, default: str = "") -> str:
    """Reduce a label to ``[A-Za-z0-9_]`` (``"Dog bark, loud"`` -> ``Dog_bark_loud``).

    Args:
        name: Free-form label.
        default: Returned when nothing usable is left.

    Returns:
        The cleaned id.
    """
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or default


def hash_fraction(name: str) -> float:
    """A stable number in [0, 1) from a file name (MD5, not Python's salted hash).

    Args:
        name: File name.

    Returns:
        The number.
    """
    return int(hashlib.md5(name.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def utt_id(spk: str, name: str) -> str:
    """Utterance id ``<spk>-<name>``, whitespace in ``name`` replaced by ``_``.

    Args:
        spk: Speaker id, already cleaned with :func:`clean_id`.
        name: Clip name (usually the file name without extension).

    Returns:
        The utterance id.
    """
    return spk + "-" + re.sub(r"\s+", "_", name.strip())


def write_kaldi_dir(out_dir: Path, utts: Iterable[Utterance]) -> int:
    """Write one data directory, replacing any previous one.

    The directory is written under a temporary name and renamed when complete,
    so an interrupted run never leaves a half-written set (or a stale ``text``).

    Args:
        out_dir: Directory to create.
        utts: Its utterances, in any order.

    Returns:
        The number of utterances written.

    Raises:
        SystemExit: When there are no utterances or an utterance id repeats.
    """
    rows: List[Utterance] = sorted(utts, key=lambda u: u.utt)
    if not rows:
        raise SystemExit(f"{out_dir}: no utterances to write")
    for prev, cur in zip(rows, rows[1:]):
        if prev.utt == cur.utt:
            raise SystemExit(
                f"{out_dir}: utterance id {cur.utt} repeats "
                f"({prev.path} and {cur.path})"
            )
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    spk2utt: Dict[str, List[str]] = defaultdict(list)
    with open(tmp / "wav.scp", "w") as scp, open(tmp / "utt2spk", "w") as u2s:
        for u in rows:
            # abspath, not resolve(): keep the user's symlinked data paths as given.
            scp.write(f"{u.utt} {os.path.abspath(u.path)}\n")
            u2s.write(f"{u.utt} {u.spk}\n")
            spk2utt[u.spk].append(u.utt)
    with open(tmp / "spk2utt", "w") as f:
        for spk in sorted(spk2utt):
            f.write(f"{spk} {' '.join(spk2utt[spk])}\n")
    if any(u.text is not None for u in rows):
        with open(tmp / "text", "w") as f:
            for u in rows:
                if u.text is not None:
                    f.write(f"{u.utt} {u.text}\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return len(rows)
