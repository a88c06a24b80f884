"""Patchify (waveform to frames) and UnPatchify (frames to waveform).

Two kinds:

* ``conv``: ESPnet's SEANet encoder/decoder (EnCodec-style strided convolutions).
  The encoder is causal by default, so a frame never sees audio after it: the
  padding that batching or a longer clip adds cannot change earlier frames.
* ``linear``: fixed-size waveform patches, a linear layer and transformer
  blocks (StableCodec style); padded patches are masked in attention.
"""

from typing import Any, Dict, Optional

import numpy as np
import torch
from espnet2.gan_codec.shared.decoder.seanet import SEANetDecoder
from espnet2.gan_codec.shared.encoder.seanet import SEANetEncoder
from torch import nn
from typeguard import typechecked

from espnet_almtok.config_check import accepted_keys, check_keys
from espnet_almtok.transformer import TransformerStack, length_mask

PATCHIFY_KINDS = ("conv", "linear")


class ConvPatchify(nn.Module):
    """SEANet encoder producing (B, T, dim) frames at ``hop = prod(ratios)``."""

    @typechecked
    def __init__(self, dim: int, causal: bool = True, **seanet_params: Any):
        super().__init__()
        seanet_params.setdefault("lstm", 0)
        if causal:
            # Reflect padding would mirror later samples into the left pad.
            seanet_params.setdefault("pad_mode", "constant")
        self.net = SEANetEncoder(dimension=dim, causal=causal, **seanet_params)
        self.hop = int(np.prod(self.net.ratios))

    def forward(self, x: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """(B, 1, T * hop) waveform to (B, T, dim) frames."""
        return self.net(x).transpose(1, 2)


class ConvUnPatchify(nn.Module):
    """SEANet decoder: (B, T, dim) frames to a (B, 1, T * hop) waveform."""

    @typechecked
    def __init__(self, dim: int, causal: bool = False, **seanet_params: Any):
        super().__init__()
        seanet_params.setdefault("lstm", 0)
        self.net = SEANetDecoder(dimension=dim, causal=causal, **seanet_params)
        self.hop = int(np.prod(self.net.ratios))

    def forward(self, e: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        return self.net(e.transpose(1, 2))


class _LinearPatches(nn.Module):
    """Shared settings of the ``linear`` kind: ``hop``-sample patches, transformer.

    Args:
        dim: Frame dimension.
        hop: Samples per patch (= per frame).
        num_layers: Transformer layers.
        num_heads: Attention heads.
        dropout: Dropout rate.
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        hop: int = 480,
        num_layers: int = 4,
        num_heads: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.hop = hop
        self.blocks = TransformerStack(dim, num_layers, num_heads, dropout=dropout)


class LinearPatchify(_LinearPatches):
    """Reshape the waveform into ``hop``-sample patches, project, transform."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, **kwargs)
        self.proj = nn.Linear(self.hop, dim)

    def forward(self, x: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        patches = x.reshape(x.size(0), -1, self.hop)
        mask = length_mask(frame_lengths, patches.size(1))
        return self.blocks(self.proj(patches), mask)


class LinearUnPatchify(_LinearPatches):
    """Transformer blocks, a linear layer to ``hop`` samples, then reshape."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, **kwargs)
        self.proj = nn.Linear(dim, self.hop)

    def forward(self, e: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(frame_lengths, e.size(1))
        patches = self.proj(self.blocks(e, mask))
        return patches.reshape(e.size(0), 1, -1)


@typechecked
def build_patchify(kind: str, dim: int, params: Optional[Dict[str, Any]] = None):
    """Build the (patchify, unpatchify) pair of the given kind.

    Args:
        kind: ``conv`` or ``linear``.
        dim: Frame dimension.
        params: Keyword arguments of the chosen kind (SEANet arguments for
            ``conv``; ``hop``/``num_layers``/``num_heads``/``dropout`` for
            ``linear``). ``causal`` only applies to the patchify side.

    Returns:
        Tuple of two modules, each with a ``hop`` attribute.
    """
    params = dict(params or {})
    where = "generator_params.patchify_params"
    if kind == "conv":
        causal = params.pop("causal", True)
        check_keys(
            params, accepted_keys(SEANetEncoder) - {"dimension", "causal"}, where
        )
        return (
            ConvPatchify(dim, causal=causal, **params),
            ConvUnPatchify(dim, **params),
        )
    if kind == "linear":
        check_keys(params, accepted_keys(_LinearPatches.__init__) - {"dim"}, where)
        return LinearPatchify(dim, **params), LinearUnPatchify(dim, **params)
    raise ValueError(
        f"unknown patchify kind '{kind}'; expected one of {', '.join(PATCHIFY_KINDS)}"
    )
