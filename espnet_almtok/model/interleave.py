"""Interleave one token after every group of ``w`` frames, and retrieve them.

The encoder puts a learnable query ``[CLS]`` after each window of ``w`` patchify
frames; the decoder puts each quantized vector after ``w`` learnable mask
tokens. Both are the same layout, ``[f_1 .. f_w, t_1, f_w+1 .. f_2w, t_2, ...]``,
so one pair of functions serves both.
"""

from typing import Tuple

import torch


def interleave(frames: torch.Tensor, tokens: torch.Tensor, w: int) -> torch.Tensor:
    """Insert ``tokens[:, k]`` after frames ``k*w .. k*w+w-1``.

    Args:
        frames: (B, N * w, D).
        tokens: (B, N, D).
        w: Window size.

    Returns:
        (B, N * (w + 1), D).
    """
    b, t, d = frames.shape
    n = tokens.size(1)
    if t != n * w:
        raise ValueError(f"{t} frames do not fill {n} windows of size {w}")
    seq = torch.cat([frames.reshape(b, n, w, d), tokens.unsqueeze(2)], dim=2)
    return seq.reshape(b, n * (w + 1), d)


def retrieve(seq: torch.Tensor, w: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split an interleaved sequence back into frames and tokens.

    Args:
        seq: (B, N * (w + 1), D).
        w: Window size.

    Returns:
        frames (B, N * w, D) and tokens (B, N, D).
    """
    b, length, d = seq.shape
    if length % (w + 1) != 0:
        raise ValueError(f"length {length} is not a multiple of w + 1 = {w + 1}")
    seq = seq.reshape(b, length // (w + 1), w + 1, d)
    return seq[:, :, :w].reshape(b, -1, d), seq[:, :, w]
