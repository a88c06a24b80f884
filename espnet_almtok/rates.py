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
