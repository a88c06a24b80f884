"""Semantic distillation: layer 1's tokens predict a frozen teacher's frames.

Frozen codebooks fix where the semantic prior's units lie, not which unit a
token lands on: with the mel loss alone, layer 1 codes whatever is cheapest to
reconstruct, and the small16k model's layer-1 inputs explained none of the
Whisper frames of their windows. As in SpeechTokenizer and Mimi, each token's
layer-1 vector predicts the teacher's frames over its window (through a linear
head, or directly), and the loss reaches the encoder, so that the first tokens
may come to carry what the teacher carries.

The target is the teacher's frames averaged over the token's window, in the
codebooks' search space (mapped as their centres were: the quantizer's
``to_search_space``), standardized by running statistics of the data: a batch of
speech chunks varies in a small corner of the space that the centres of speech
and sound span, around an offset of its own.

Two of LoSATok's losses (``losatok.py``) serve layer 1 as well:

* low-level supervision (``target: bottleneck``): the target is LoSATok's
  semantic bottleneck (SemBo) applied to those averaged frames, its low frames,
  which keep the teacher's content in few dimensions; the bottleneck comes from
  a LoSATok stage-1 model (``--init_param``) and stays frozen;
* the time-relation loss (``time_relation: true``): the T x T similarities of
  layer 1's tokens within a chunk follow those of the teacher's frames (the
  ``semantic_relation`` loss). The frames are standardized first, as layer 1's
  inputs are: raw Whisper frames averaged per token share a large common
  direction (cosine 0.53 +- 0.16 between the tokens of a 0.8 s chunk of English,
  0.12 +- 0.22 standardized), which standardized vectors cannot follow; with raw
  frames the loss did not fall in 280 steps of fine-tuning.

Measured at the small16k scale (results/pkgaudio_small16k/learning_speed.md):
neither form learned the teacher on held-out audio within the main job's
budget, and both cost mel loss; it is an ablation, off by default.
"""

from typing import Any, Callable, Dict, Optional

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.initialization import init_variance_preserving
from espnet_almtok.model.semantic_bottleneck import (
    SemanticBottleneck,
    time_relation_loss,
)
from espnet_almtok.model.semantic_prior import fold_in
from espnet_almtok.utils.config_check import build_checked


class SemanticDistillation(nn.Module):
    """A linear head from layer-1 vectors to standardized targets of the teacher.

    Args:
        dim: Width of the codebook search space (layer 1's vectors).
        teacher_dim: Width of the teacher's frames (``target: bottleneck``).
        source: What the head reads: ``quantized`` (layer 1's entries, through
            the straight-through estimator, as SpeechTokenizer and Mimi) or
            ``input`` (the vector layer 1 quantizes: with frozen entries the
            estimator's gradient says how an entry should move, which it
            cannot).
        target: What layer 1 predicts: ``teacher`` (the teacher's frames in the
            search space), ``bottleneck`` (their low frames in LoSATok's frozen
            semantic bottleneck) or None (nothing: the time-relation loss alone).
        bottleneck_params: ``SemanticBottleneck`` arguments (``low_dim``,
            ``hidden_dim``) for ``target: bottleneck``; they must match the
            LoSATok stage-1 model it is loaded from.
        time_relation: Also the time-relation loss between layer 1's vectors
            and the teacher's frames (``semantic_relation``).
        head: Predict through a learned linear head; False: the tokens are
            the prediction (the quantizer's input is standardized as the
            targets are). A head learns only what the tokens already carry:
            from a small16k model's layer 1 it explained 7 % of the targets'
            variance after 1900 steps, and passed the encoder little gradient.
        momentum: Of the running statistics that standardize the targets and
            the relation's frames (plain averages over the first
            ``1 / momentum`` batches).
        eps: Added to the running variance.
    """

    SOURCES = ("quantized", "input")
    TARGETS = ("teacher", "bottleneck", None)

    @staticmethod
    def needs_teacher_dim(params: Dict[str, Any]) -> bool:
        """Whether settings ``params`` build parts as wide as the teacher's
        frames (LoSATok's bottleneck, the relation's statistics)."""
        return bool(params.get("time_relation")) or params.get("target") == "bottleneck"

    @typechecked
    def __init__(
        self,
        dim: int,
        teacher_dim: Optional[int] = None,
        source: str = "quantized",
        target: Optional[str] = "teacher",
        bottleneck_params: Optional[Dict[str, Any]] = None,
        time_relation: bool = False,
        head: bool = True,
        momentum: float = 0.01,
        eps: float = 1e-5,
    ):
        super().__init__()
        if source not in self.SOURCES:
            raise ValueError(
                f"semantic distillation source must be one of {self.SOURCES}, "
                f"got {source!r}"
            )
        if target not in self.TARGETS:
            raise ValueError(
                f"semantic distillation target must be one of {self.TARGETS}, "
                f"got {target!r}"
            )
        if target is None and not time_relation:
            raise ValueError(
                "semantic distillation with target: null needs time_relation: true"
            )
        if (bottleneck_params is not None) != (target == "bottleneck"):
            raise ValueError(
                "bottleneck_params go with target: bottleneck, and only with it"
            )
        self.source = source
        self.target = target
        self.time_relation = time_relation
        self.bottleneck = None
        target_dim = dim
        if target == "bottleneck":
            if teacher_dim is None:
                raise ValueError("target: bottleneck needs the teacher's width")
            self.bottleneck = build_checked(
                SemanticBottleneck,
                bottleneck_params,
                "semantic_distillation_params.bottleneck_params",
                high_dim=teacher_dim,
            )
            self.bottleneck.requires_grad_(False)
            target_dim = self.bottleneck.down[-1].out_features
        if time_relation:
            if teacher_dim is None:
                raise ValueError("time_relation needs the teacher's width")
            self.frame_norm = RunningStandardization(teacher_dim, momentum, eps)
        if target is None:
            return
        if not head and target_dim != dim:
            raise ValueError(
                f"head: false needs targets of the tokens' width {dim}, got "
                f"{target_dim}"
            )
        self.head = (
            init_variance_preserving(nn.Linear(dim, target_dim)) if head else None
        )
        self.target_norm = RunningStandardization(target_dim, momentum, eps)

    def targets(
        self,
        frames: torch.Tensor,
        to_search_space: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """What layer 1 predicts, of the teacher's frames averaged per token
        (B, N, teacher dim)."""
        if self.target == "teacher":
            return to_search_space(frames)
        if self.training:
            self.bottleneck.require_trained(
                "codec.generator.semantic_distillation.bottleneck"
            )
        with torch.no_grad():
            return self.bottleneck.down(frames)

    def forward(
        self, tokens: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The unexplained share of the target's variance.

        Args:
            tokens: Layer-1 vectors (B, N, dim) of ``source``.
            target: Each token's target (B, N, target dim), from ``targets``.
            valid: Bool (B, N), True at real (not padded) tokens.
        """
        z = self.target_norm(target, valid)
        prediction = tokens if self.head is None else self.head(tokens)
        return (prediction - z).pow(2).mean(-1)[valid].mean()

    def relation(
        self, tokens: torch.Tensor, frames: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The time-relation loss between layer-1 vectors (B, N, dim) and the
        teacher's standardized frames averaged per token (B, N, teacher dim)."""
        return time_relation_loss(tokens, self.frame_norm(frames, valid), valid)


class RunningStandardization(nn.Module):
    """Standardization by running statistics of the data.

    Args:
        dim: Feature width.
        momentum: Of the running statistics (plain averages over the first
            ``1 / momentum`` batches).
        eps: Added to the running variance.
    """

    @typechecked
    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x`` (B, N, dim) standardized; in training, its ``valid`` (B, N)
        vectors are folded into the statistics first."""
        if self.training:
            self.seen += 1
            momentum = max(self.momentum, 1.0 / int(self.seen))
            with torch.no_grad():
                fold_in(self.mean, self.var, x[valid], momentum)
        return (x - self.mean) * torch.rsqrt(self.var + self.eps)
