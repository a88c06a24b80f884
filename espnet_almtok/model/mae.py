"""Masked-autoencoding (MAE) loss on patchify frames.

A random 20-30 % of each item's frames are set to zero; an encoder (the query
encoder in stage 2, a plain transformer in stage 1) reads the masked sequence and
a small MAE decoder predicts the original frames. The loss is the MSE on the
masked frames only.
"""

from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.transformer import TransformerStack, length_mask


class MAEDecoder(nn.Module):
    """Predict masked frames from encoder outputs.

    Args:
        dim: Frame width.
        num_layers: Layers of the (small) MAE-decoder transformer.
        num_heads: Attention heads.
        mask_rate: Range ``[low, high]`` the per-step mask rate is drawn from.
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        num_heads: int = 4,
        mask_rate: Sequence[float] = (0.2, 0.3),
    ):
        super().__init__()
        low, high = mask_rate
        if not 0.0 < low <= high < 1.0:
            raise ValueError(f"mask_rate must satisfy 0 < low <= high < 1: {mask_rate}")
        self.mask_rate = (float(low), float(high))
        self.transformer = TransformerStack(dim, num_layers, num_heads)
        self.proj = nn.Linear(dim, dim)

    def mask_frames(
        self, frames: torch.Tensor, frame_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Zero a random share of each item's valid frames.

        Returns:
            The masked frames and a bool (B, T) that is True at masked frames.
        """
        b, t, _ = frames.shape
        rate = torch.empty(()).uniform_(*self.mask_rate).item()
        valid = ~length_mask(frame_lengths, t)
        scores = torch.rand(b, t, device=frames.device).masked_fill(~valid, 2.0)
        num_masked = (frame_lengths.float() * rate).round().clamp(min=1).long()
        rank = scores.argsort(dim=1).argsort(dim=1)
        masked = (rank < num_masked[:, None]) & valid
        return frames.masked_fill(masked.unsqueeze(-1), 0.0), masked

    def loss(
        self,
        encoded: torch.Tensor,
        target: torch.Tensor,
        masked: torch.Tensor,
        frame_lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """MSE between predicted and original frames, on masked frames only."""
        pad = (
            None
            if frame_lengths is None
            else length_mask(frame_lengths, target.size(1))
        )
        pred = self.proj(self.transformer(encoded, pad))
        err = (pred - target.detach()).pow(2).mean(-1)
        return (err * masked).sum() / masked.sum().clamp(min=1)
