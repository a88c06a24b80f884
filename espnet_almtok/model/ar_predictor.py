"""Continuous autoregressive prediction of a deeper RVQ layer.

A light causal transformer predicts layer ``target_layer``'s quantized vector at
step ``t`` from the shallower layers at steps ``<= t`` and the target layer at
steps ``< t``. Its MSE loss shapes the residual layers so that a language model
can predict them from the first ones.
"""

from typing import List

import torch
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.transformer import TransformerStack


class ARPredictor(nn.Module):
    """Predict RVQ layer ``target_layer`` (1-based) from layers ``1 .. target_layer-1``.

    Args:
        codebook_dim: Width of the quantized vectors.
        n_q: Number of RVQ layers (to validate ``target_layer``).
        target_layer: 1-based layer to predict (default 3).
        dim: Transformer width.
        num_layers: Transformer layers.
        num_heads: Attention heads.
    """

    @typechecked
    def __init__(
        self,
        codebook_dim: int,
        n_q: int,
        target_layer: int = 3,
        dim: int = 256,
        num_layers: int = 2,
        num_heads: int = 4,
    ):
        super().__init__()
        if not 2 <= target_layer <= n_q:
            raise ValueError(
                f"ar target_layer must be in [2, n_q={n_q}] (1-based), "
                f"got {target_layer}"
            )
        self.target = target_layer - 1
        self.inp = nn.Linear(2 * codebook_dim, dim)
        self.transformer = TransformerStack(dim, num_layers, num_heads, causal=True)
        self.out = nn.Linear(dim, codebook_dim)

    def forward(self, layers: List[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
        """MSE loss of the prediction over valid positions.

        Args:
            layers: Per-layer quantized vectors, each (B, N, codebook_dim).
            valid: Bool (B, N), True at real positions.
        """
        context = torch.stack(layers[: self.target]).sum(0)
        target = layers[self.target]
        previous = F.pad(target, (0, 0, 1, 0))[:, :-1]
        pred = self.out(self.transformer(self.inp(torch.cat([context, previous], -1))))
        err = (pred - target).pow(2).mean(-1)
        return (err * valid).sum() / valid.sum().clamp(min=1)
