"""Transformer stack shared by the query encoder/decoder, MAE and AR parts."""

import math
from typing import Optional

import torch
from torch import nn
from typeguard import typechecked


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """Return absolute sinusoidal position encodings of shape (length, dim)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32)
        * (-math.log(10000.0) / dim)
    )
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class TransformerStack(nn.Module):
    """Pre-norm transformer with sinusoidal positions and padding masks.

    Args:
        dim: Model width.
        num_layers: Number of transformer layers.
        num_heads: Attention heads.
        ff_dim: Width of the feed-forward layers (default ``4 * dim``).
        dropout: Dropout rate.
        causal: Whether each position attends to earlier positions only.
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_dim: Optional[int] = None,
        dropout: float = 0.0,
        causal: bool = False,
    ):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=num_heads,
            dim_feedforward=ff_dim or 4 * dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors would drop padded rows and change numerics between a
        # batch and a single item; codes must not depend on the batch.
        self.layers = nn.TransformerEncoder(
            layer, num_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(dim)
        self.causal = causal

    def forward(
        self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Run the stack.

        Args:
            x: Input of shape (B, N, dim).
            pad_mask: Bool tensor (B, N), True at padded positions.

        Returns:
            Output of shape (B, N, dim).
        """
        n = x.size(1)
        x = x + sinusoidal_positions(n, x.size(2), x.device).to(x.dtype)
        attn_mask = None
        if self.causal:
            attn_mask = nn.Transformer.generate_square_subsequent_mask(
                n, device=x.device, dtype=x.dtype
            )
        if pad_mask is not None:
            # Same dtype as attn_mask, as torch requires.
            pad_mask = torch.zeros_like(pad_mask, dtype=x.dtype).masked_fill(
                pad_mask, float("-inf")
            )
        x = self.layers(x, mask=attn_mask, src_key_padding_mask=pad_mask)
        return self.norm(x)


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Return a bool mask (B, max_len) that is True at padded positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]
