"""Bitrates from a codec's ``meta_info()`` (torch-free, for scoring scripts too)."""

import math
from typing import Any, Dict, Sequence


def bits_per_step(code_size_per_stream: Sequence[int]) -> float:
    """Bits of one token step: the sum over streams of log2(codebook size)."""
    return sum(math.log2(c) for c in code_size_per_stream)


def bitrate(meta: Dict[str, Any]) -> float:
    """Nominal bits per second of a codec, computed from its ``meta_info()``."""
    return (
        meta["fs"] / meta["frame_shift"] * bits_per_step(meta["code_size_per_stream"])
    )


def chunk_samples(chunk_seconds: float, fs: int, unit: int) -> int:
    """``chunk_seconds`` rounded down to whole ``unit``-sample tokens (at least one).

    ``0`` means no chunking and gives ``0``.
    """
    if chunk_seconds < 0:
        raise ValueError(f"chunk_seconds must be >= 0, got {chunk_seconds}")
    if chunk_seconds == 0:
        return 0
    # The epsilon keeps e.g. 0.24 s * 16000 / 1280 = 2.9999... at 3 tokens.
    return max(1, math.floor(chunk_seconds * fs / unit + 1e-6)) * unit
