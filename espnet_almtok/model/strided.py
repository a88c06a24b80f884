"""Strided compression: the ablation without query-based compression.

The encoder runs the same transformer as the query encoder over the frames, but
without query tokens, then pools each window of ``w`` frames into one vector
with a Conv1d whose kernel and stride are ``w``. The decoder unpools each vector
into ``w`` frames with a transposed Conv1d (kernel = stride = ``w``) and runs a
transformer over them. The token rate equals the query model's at the same
window, but the window is built into the weights: one model serves one bitrate.
"""

from typing import Optional, Tuple

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.transformer import TransformerStack, length_mask


class _StridedTransformer(nn.Module):
    """A transformer over frames and a strided resampling layer of a fixed window.

    Subclasses name the resampling layer class in ``resampler``.

    Args:
        dim: Frame and token width.
        window: Frames per vector, fixed at build time.
        num_layers: Transformer layers.
        num_heads: Attention heads.
        ff_dim: Feed-forward width (default ``4 * dim``).
        dropout: Dropout rate.
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        window: int,
        num_layers: int = 8,
        num_heads: int = 8,
        ff_dim: Optional[int] = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.window = window
        self.transformer = TransformerStack(
            dim, num_layers, num_heads, ff_dim=ff_dim, dropout=dropout
        )
        self.resample = self.resampler(dim, dim, window, stride=window)

    def _check_window(self, w: int):
        if w != self.window:
            raise ValueError(
                f"strided compression is built for window {self.window}; "
                f"it cannot code at window {w}"
            )


class StridedEncoder(_StridedTransformer):
    """Transformer over frames, then a strided Conv1d: one vector per window."""

    resampler = nn.Conv1d

    def forward(
        self, frames: torch.Tensor, num_windows: torch.Tensor, w: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode frames, as ``QueryEncoder.forward``.

        Args:
            frames: (B, N * w, dim) patchify frames.
            num_windows: (B,) number of valid windows of each item.
            w: Window size (must be the built-in one).

        Returns:
            Pooled vectors (B, N, dim), and the transformer's frame outputs
            (B, N * w, dim) that the MAE decoder reads.
        """
        self._check_window(w)
        out = self.transformer(frames, length_mask(num_windows * w, frames.size(1)))
        return self.resample(out.transpose(1, 2)).transpose(1, 2), out


class StridedDecoder(_StridedTransformer):
    """Transposed strided Conv1d to ``w`` frames per vector, then a transformer."""

    resampler = nn.ConvTranspose1d

    def forward(
        self, tokens: torch.Tensor, num_windows: torch.Tensor, w: int
    ) -> torch.Tensor:
        """Decode (B, N, dim) vectors into (B, N * w, dim) frames."""
        self._check_window(w)
        frames = self.resample(tokens.transpose(1, 2)).transpose(1, 2)
        return self.transformer(frames, length_mask(num_windows * w, frames.size(1)))
