"""LoSATok's semantic bottleneck (SemBo): a frozen teacher's frames in few dims.

An MLP compresses each teacher frame ``high -> hidden -> low`` and a mirror MLP
maps it back. Two losses train it, each a config switch:

* the cosine reconstruction loss: MSE between the L2-normalised reconstruction
  and the L2-normalised teacher frame (direction, not scale, carries meaning);
* the time-relation loss: MSE between the T x T cosine-similarity matrix of the
  low frames and that of the teacher's frames, so that the small space keeps
  which moments of the clip resemble which.

It is trained first (LoSATok's ``training_stage: 1``), then frozen.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from typeguard import typechecked


def cosine_reconstruction_loss(recon: torch.Tensor, target: torch.Tensor):
    """MSE between L2-normalised frames (B, T, D); the target is detached."""
    return F.mse_loss(F.normalize(recon, dim=-1), F.normalize(target.detach(), dim=-1))


def cosine_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, T, T) cosine similarities between the frames of (B, T, D)."""
    x = F.normalize(x, dim=-1)
    return x @ x.transpose(1, 2)


def time_relation_loss(
    low: torch.Tensor, high: torch.Tensor, valid: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """MSE between the frame-similarity matrices of ``low`` (B, T, d), trained,
    and ``high`` (B, T, D), the teacher's (detached).

    Args:
        valid: Bool (B, T), True at real frames: only pairs of two real frames
            count (None: all do).
    """
    error = (
        cosine_similarity_matrix(low) - cosine_similarity_matrix(high.detach())
    ).pow(2)
    if valid is None:
        return error.mean()
    return error[valid[:, :, None] & valid[:, None, :]].mean()


class SemanticBottleneck(nn.Module):
    """``high -> hidden -> low`` MLP and its mirror (GELU between layers).

    Args:
        high_dim: Teacher frame dimension.
        low_dim: Bottleneck dimension (LoSATok's latent dimension).
        hidden_dim: Width of the hidden layer of both MLPs.
    """

    @typechecked
    def __init__(self, high_dim: int, low_dim: int = 128, hidden_dim: int = 512):
        super().__init__()
        for name, value in (("low_dim", low_dim), ("hidden_dim", hidden_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.down = nn.Sequential(
            nn.Linear(high_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, low_dim)
        )
        self.up = nn.Sequential(
            nn.Linear(low_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, high_dim)
        )
        # Steps trained; the tokenizer refuses to start from an untrained one
        # (a missing --init_param would otherwise train on random targets).
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))

    def require_trained(self, key: str):
        """Raise unless stage 1 trained it: a missing ``--init_param`` would
        otherwise train on random targets. ``key``: where the model keeps it."""
        if int(self.trained_steps) == 0:
            raise RuntimeError(
                "the semantic bottleneck was never trained: train LoSATok's stage 1 "
                "first and load it with --init_param "
                f"<stage1.pth>:codec.generator.semantic_bottleneck:{key}"
            )

    def forward(self, high: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Low frames (B, T, low_dim) and their reconstruction (B, T, high_dim)."""
        low = self.down(high)
        return low, self.up(low)
