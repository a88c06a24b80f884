"""Semantic input: a frozen teacher's frames join the query encoder's input.

At the small16k scale, the query encoder (two 128-wide layers over log-mel
frames) never learned what the semantic prior's units stand for: its layer-1
vectors predicted none of the Whisper frames they coded, and distilling the
teacher into them (``semantic_distillation.py``) did not change that on
held-out audio. As in X-Codec, the teacher's frames are given to the encoder
instead: normalized, projected to the frames' width and added to each patchify
frame, so that what the teacher knows is one linear map away from the tokens.
The teacher then runs at inference too; each clip (each chunk of chunked
coding) is encoded alone, so that its codes never depend on the rest of a
batch.

Measured at that scale (41 English test clips, 412.5 bit/s, the same budget):
neither this input alone nor with the distillation beside it made the tokens
more intelligible than the main job's (capped per-clip dWER 0.81 and 0.82
against 0.74-0.83 for two runs of the main config), and with the
distillation a step took 0.43 s against 0.25 s on two threads; it stays off by
default (results/pkgaudio_small16k/learning_speed.md).
"""

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.initialization import init_variance_preserving


class SemanticInput(nn.Module):
    """Teacher frames (B, T, teacher_dim) to additions (B, T, dim) to the frames.

    Args:
        teacher_dim: Width of the teacher's frames.
        dim: Width of the patchify frames (in the transformers' units, about
            unit RMS: the projection's init keeps that scale).
    """

    @typechecked
    def __init__(self, teacher_dim: int, dim: int):
        super().__init__()
        # Whisper's frames have a few channels hundreds of times larger than the
        # rest: normalize each frame before the projection.
        self.norm = nn.LayerNorm(teacher_dim)
        self.proj = init_variance_preserving(nn.Linear(teacher_dim, dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(frames))
