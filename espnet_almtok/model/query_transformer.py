"""Query-based transformer encoder and decoder.

The encoder compresses each window of ``w`` frames into the output at a learnable
query token ``[CLS]`` placed after the window; the decoder expands each quantized
vector back into ``w`` frames, read at learnable mask tokens placed before it.
Each query (mask) token is the learnable token plus its window's mean frame (its
window's vector). Attention spans the whole sequence, so every token sees the
context around its window.
"""

from typing import Optional, Tuple

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.interleave import interleave, retrieve
from espnet_almtok.model.transformer import TransformerStack, length_mask


class _QueryTransformer(nn.Module):
    """A learnable token (query or mask) and a transformer over interleaved input.

    Args:
        dim: Frame and token width.
        num_layers: Transformer layers.
        num_heads: Attention heads.
        ff_dim: Feed-forward width (default ``4 * dim``).
        dropout: Dropout rate.
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        num_layers: int = 8,
        num_heads: int = 8,
        ff_dim: Optional[int] = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.token = nn.Parameter(torch.randn(dim) * 0.02)
        self.transformer = TransformerStack(
            dim, num_layers, num_heads, ff_dim=ff_dim, dropout=dropout
        )

    def _run(
        self,
        frames: torch.Tensor,
        tokens: torch.Tensor,
        num_windows: torch.Tensor,
        w: int,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        seq = interleave(frames, tokens, w)
        pad_mask = length_mask(num_windows * (w + 1), seq.size(1))
        return retrieve(self.transformer(seq, pad_mask), w)


class QueryEncoder(_QueryTransformer):
    """Interleave a query after every ``w`` frames and retrieve the query outputs."""

    def forward(
        self, frames: torch.Tensor, num_windows: torch.Tensor, w: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode frames.

        Args:
            frames: (B, N * w, dim) patchify frames.
            num_windows: (B,) number of valid windows of each item.
            w: Window size.

        Returns:
            Query outputs (B, N, dim), and frame outputs (B, N * w, dim) that the
            MAE decoder reads.
        """
        b, t, d = frames.shape
        # Each query starts from its window's mean: a bare token plus positions
        # made the query outputs 98 % input-independent at init (one code per
        # layer, one output for every input); attention refines it from there.
        queries = self.token + frames.reshape(b, t // w, w, d).mean(2)
        frame_out, query_out = self._run(frames, queries, num_windows, w)
        return query_out, frame_out


class QueryDecoder(_QueryTransformer):
    """Put ``w`` mask tokens before each vector and retrieve the mask outputs."""

    def forward(
        self, tokens: torch.Tensor, num_windows: torch.Tensor, w: int
    ) -> torch.Tensor:
        """Decode (B, N, dim) vectors into (B, N * w, dim) frames."""
        # Each mask starts from its window's vector, for the reason the queries
        # start from their window (see ``QueryEncoder``).
        masks = self.token + tokens.repeat_interleave(w, dim=1)
        return self._run(masks, tokens, num_windows, w)[0]
