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

Measured at the small16k scale (results/pkgaudio_small16k/learning_speed.md):
neither form learned the teacher on held-out audio within the main job's
budget, and both cost mel loss; it is an ablation, off by default.
"""

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.initialization import init_variance_preserving
from espnet_almtok.model.semantic_prior import fold_in


class SemanticDistillation(nn.Module):
    """A linear head from layer-1 entries to standardized teacher frames.

    Args:
        dim: Width of the codebook search space (entries and targets).
        source: What the head reads: ``quantized`` (layer 1's entries, through
            the straight-through estimator, as SpeechTokenizer and Mimi) or
            ``input`` (the vector layer 1 quantizes: with frozen entries the
            estimator's gradient says how an entry should move, which it
            cannot).
        head: Predict through a learned linear head; False: the tokens are
            the prediction (the quantizer's input is standardized as the
            targets are). A head learns only what the tokens already carry:
            from a small16k model's layer 1 it explained 7 % of the targets'
            variance after 1900 steps, and passed the encoder little gradient.
        momentum: Of the running statistics that standardize the targets
            (plain averages over the first ``1 / momentum`` batches).
        eps: Added to the running variance.
    """

    SOURCES = ("quantized", "input")

    @typechecked
    def __init__(
        self,
        dim: int,
        source: str = "quantized",
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
        self.source = source
        self.head = init_variance_preserving(nn.Linear(dim, dim)) if head else None
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(
        self, tokens: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The unexplained share of the target's variance.

        Args:
            tokens: Layer-1 vectors (B, N, dim) of ``source``.
            target: Teacher frames of each token in the search space (B, N, dim).
            valid: Bool (B, N), True at real (not padded) tokens.
        """
        if self.training:
            self.seen += 1
            momentum = max(self.momentum, 1.0 / int(self.seen))
            with torch.no_grad():
                fold_in(self.mean, self.var, target[valid], momentum)
        z = (target - self.mean) * torch.rsqrt(self.var + self.eps)
        prediction = tokens if self.head is None else self.head(tokens)
        return (prediction - z).pow(2).mean(-1)[valid].mean()
