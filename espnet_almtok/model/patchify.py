"""Patchify (waveform to frames) and UnPatchify (frames to waveform).

Three kinds:

* ``mel``: log-mel frames from a fixed STFT and mel filterbank, then a patch
  embedding (a convolution over mel bands x a few frames). Nothing learned runs
  at the sample rate: a stage-1 step costs a third of SEANet's, and the
  autoencoder starts from the spectrum the mel loss scores. In 5 CPU-minutes of
  stage 1 it reached STOI 0.85 where SEANet's encoder reached 0.66
  (``results/pkgaudio_small16k/learning_speed.md``). Causal, as ``conv``.
* ``conv``: ESPnet's SEANet encoder/decoder (EnCodec-style strided convolutions).
  The encoder is causal by default, so a frame never sees audio after it: the
  padding that batching or a longer clip adds cannot change earlier frames.
* ``linear``: fixed-size waveform patches, a linear layer and transformer
  blocks (StableCodec style); padded patches are masked in attention.

UnPatchify may instead be ``istft`` (``unpatchify_kind``): Vocos's ConvNeXt
backbone at the frame rate and an inverse-STFT head. It computes nothing at the
sample rate, so a step costs a fraction of SEANet's decoder, and it learns the
spectrum the mel loss scores directly rather than through eight upsampling
layers.
"""

import math
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from espnet2.gan_codec.shared.decoder.seanet import SEANetDecoder
from espnet2.gan_codec.shared.encoder.seanet import SEANetEncoder
from torch import nn
from typeguard import typechecked
from vocos.heads import ISTFTHead
from vocos.models import VocosBackbone

from espnet_almtok.model.initialization import init_variance_preserving
from espnet_almtok.model.transformer import TransformerStack, length_mask
from espnet_almtok.utils.config_check import accepted_keys, build_checked, check_keys

PATCHIFY_KINDS = ("mel", "conv", "linear")


class FrameRMS(nn.Module):
    """Running RMS of the frames patchify makes, measured while it trains.

    The transformers read and write frames in these units. Stage 1 leaves the
    frames at whatever scale suits its decoder (RMS 0.04 on speech), while
    transformer positions, tokens and layer-normalised outputs are unit-scale:
    raw frames would be drowned at the encoder's input (two codes per layer, the
    same output for every input), and unit-scale decoder outputs would overdrive
    UnPatchify 25-fold. Saved with patchify, so stage 2 inherits it with
    ``--init_param``.

    Args:
        momentum: Weight of each training batch in the running value.
    """

    @typechecked
    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("rms", torch.zeros(()))  # 0: not measured yet

    def update(self, frames: torch.Tensor, frame_lengths: Optional[torch.Tensor]):
        """Fold a training batch of (B, T, dim) frames into the running RMS.

        Only while patchify trains, i.e. its frames carry gradients: a frozen
        patchify (stage 2) keeps the value UnPatchify was trained with.
        """
        if not (self.training and frames.requires_grad):
            return
        with torch.no_grad():
            if frame_lengths is None:
                power = frames.pow(2).mean()
            else:
                valid = ~length_mask(frame_lengths, frames.size(1))
                power = frames.pow(2).mean(-1)[valid].mean()
            rms = power.sqrt()
            # No host sync: the first batch sets the value, later ones blend in.
            self.rms.copy_(
                torch.where(self.rms > 0, self.rms.lerp(rms, self.momentum), rms)
            )

    def scale(self) -> torch.Tensor:
        """The running RMS (1 before any training batch)."""
        return torch.where(self.rms > 0, self.rms, torch.ones_like(self.rms))


class MelPatchify(nn.Module):
    """Log-mel frames, then a patch embedding to (B, T, dim) frames at ``hop``.

    Each frame's STFT window ends at the frame's last sample (left padding), so
    a frame never sees later audio: padding cannot change earlier frames.

    Args:
        dim: Frame dimension.
        sampling_rate: Audio sampling rate (set by the codec).
        hop: Samples per frame.
        n_fft: STFT window (default ``4 * hop``).
        n_mels: Mel bands.
        kernel_size: Frames the patch embedding spans (the frame and those
            before it).
        log_floor: Added to the mel power before the log.
        patch_frames: Mel frames per output frame: the mel hop is
            ``hop / patch_frames`` and the patch embedding spans and strides
            over ``patch_frames`` of them (LoSATok's 4 mel frames of 10 ms per
            40 ms latent frame); 1: one mel frame per output frame.
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        sampling_rate: int,
        hop: int = 320,
        n_fft: Optional[int] = None,
        n_mels: int = 80,
        kernel_size: int = 1,
        log_floor: float = 1.0e-5,
        patch_frames: int = 1,
    ):
        super().__init__()
        if patch_frames < 1 or hop % patch_frames:
            raise ValueError(
                f"patch_frames ({patch_frames}) must divide hop ({hop}) evenly"
            )
        self.hop = hop
        self.mel_hop = hop // patch_frames
        self.n_fft = n_fft or 4 * hop
        if self.n_fft < self.mel_hop:
            raise ValueError(
                f"n_fft ({self.n_fft}) must be at least hop / patch_frames "
                f"({self.mel_hop})"
            )
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sampling_rate,
            n_fft=self.n_fft,
            hop_length=self.mel_hop,
            n_mels=n_mels,
            center=False,
        )
        self.context = (kernel_size - 1) * patch_frames
        self.log_floor = log_floor
        self.embed = nn.Conv1d(
            n_mels, dim, kernel_size * patch_frames, stride=patch_frames
        )
        self.frame_rms = FrameRMS()

    def forward(
        self, x: torch.Tensor, frame_lengths: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """(B, 1, T * hop) waveform to (B, T, dim) frames."""
        x = F.pad(x[:, 0], (self.n_fft - self.mel_hop, 0))
        logmel = torch.log(self.mel(x) + self.log_floor)
        logmel = F.pad(logmel, (self.context, 0), value=math.log(self.log_floor))
        e = self.embed(logmel).transpose(1, 2)
        self.frame_rms.update(e, frame_lengths)
        return e


class ConvPatchify(nn.Module):
    """SEANet encoder producing (B, T, dim) frames at ``hop = prod(ratios)``."""

    @typechecked
    def __init__(self, dim: int, causal: bool = True, **seanet_params: Any):
        super().__init__()
        seanet_params.setdefault("lstm", 0)
        if causal:
            # Reflect padding would mirror later samples into the left pad.
            seanet_params.setdefault("pad_mode", "constant")
        self.net = init_variance_preserving(
            SEANetEncoder(dimension=dim, causal=causal, **seanet_params)
        )
        self.hop = int(np.prod(self.net.ratios))
        self.frame_rms = FrameRMS()

    def forward(
        self, x: torch.Tensor, frame_lengths: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """(B, 1, T * hop) waveform to (B, T, dim) frames."""
        e = self.net(x).transpose(1, 2)
        self.frame_rms.update(e, frame_lengths)
        return e


class ConvUnPatchify(nn.Module):
    """SEANet decoder: (B, T, dim) frames to a (B, 1, T * hop) waveform."""

    @typechecked
    def __init__(self, dim: int, causal: bool = False, **seanet_params: Any):
        super().__init__()
        seanet_params.setdefault("lstm", 0)
        self.net = init_variance_preserving(
            SEANetDecoder(dimension=dim, causal=causal, **seanet_params)
        )
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
        self.proj = init_variance_preserving(nn.Linear(self.hop, dim))
        self.frame_rms = FrameRMS()

    def forward(self, x: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        patches = x.reshape(x.size(0), -1, self.hop)
        mask = length_mask(frame_lengths, patches.size(1))
        e = self.blocks(self.proj(patches), mask)
        self.frame_rms.update(e, frame_lengths)
        return e


class LinearUnPatchify(_LinearPatches):
    """Transformer blocks, a linear layer to ``hop`` samples, then reshape."""

    def __init__(self, dim: int, **kwargs):
        super().__init__(dim, **kwargs)
        self.proj = init_variance_preserving(nn.Linear(dim, self.hop))

    def forward(self, e: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(frame_lengths, e.size(1))
        patches = self.proj(self.blocks(e, mask))
        return patches.reshape(e.size(0), 1, -1)


class ISTFTUnPatchify(nn.Module):
    """Vocos: ConvNeXt blocks on the frames, then magnitude and phase, iSTFT.

    Args:
        dim: Frame dimension.
        hop: Samples per frame (the patchify hop).
        width: ConvNeXt channels.
        ff_dim: ConvNeXt inner width.
        num_layers: ConvNeXt blocks.
        n_fft: FFT size of the head (a multiple of ``hop`` keeps frames aligned).
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        hop: int,
        width: int = 256,
        ff_dim: int = 768,
        num_layers: int = 4,
        n_fft: Optional[int] = None,
    ):
        super().__init__()
        self.hop = hop
        self.backbone = VocosBackbone(dim, width, ff_dim, num_layers)
        # "same" padding: exactly hop samples per frame, as the other kinds.
        self.head = ISTFTHead(width, n_fft or 4 * hop, hop, padding="same")

    def forward(self, e: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, dim) frames to a (B, 1, T * hop) waveform."""
        return self.head(self.backbone(e.transpose(1, 2))).unsqueeze(1)


@typechecked
def build_patchify(
    kind: str,
    dim: int,
    params: Optional[Dict[str, Any]] = None,
    unpatchify_kind: Optional[str] = None,
    unpatchify_params: Optional[Dict[str, Any]] = None,
    sampling_rate: int = 24000,
):
    """Build the (patchify, unpatchify) pair.

    Args:
        kind: ``mel``, ``conv`` or ``linear``.
        dim: Frame dimension.
        params: Keyword arguments of the chosen kind (``MelPatchify``'s for
            ``mel``; SEANet arguments for ``conv``;
            ``hop``/``num_layers``/``num_heads``/``dropout`` for ``linear``).
            ``causal`` only applies to the patchify side.
        unpatchify_kind: ``istft`` for Vocos's decoder (``ISTFTUnPatchify``);
            None: the decoder of ``kind``, with the same ``params`` (``mel``
            has none: it needs ``istft``).
        unpatchify_params: ``ISTFTUnPatchify`` arguments (``istft`` only).
        sampling_rate: Audio sampling rate (``mel`` only).

    Returns:
        Tuple of two modules, each with a ``hop`` attribute.
    """
    params = dict(params or {})
    where = "generator_params.patchify_params"
    unpatchify_cls = None
    if kind == "mel":
        patchify = build_checked(
            MelPatchify, params, where, dim=dim, sampling_rate=sampling_rate
        )
    elif kind == "conv":
        causal = params.pop("causal", True)
        check_keys(
            params, accepted_keys(SEANetEncoder) - {"dimension", "causal"}, where
        )
        patchify, unpatchify_cls = (
            ConvPatchify(dim, causal=causal, **params),
            ConvUnPatchify,
        )
    elif kind == "linear":
        check_keys(params, accepted_keys(_LinearPatches.__init__) - {"dim"}, where)
        patchify, unpatchify_cls = LinearPatchify(dim, **params), LinearUnPatchify
    else:
        raise ValueError(
            f"unknown patchify kind '{kind}'; expected one of "
            f"{', '.join(PATCHIFY_KINDS)}"
        )
    if unpatchify_kind is None:
        if unpatchify_cls is None:
            raise ValueError(
                f"patchify kind '{kind}' has no decoder of its own: set "
                "generator_params.unpatchify_kind: istft"
            )
        if unpatchify_params:
            raise ValueError(
                "generator_params.unpatchify_params needs unpatchify_kind: istft"
            )
        return patchify, unpatchify_cls(dim, **params)
    if unpatchify_kind == "istft":
        return patchify, build_checked(
            ISTFTUnPatchify,
            unpatchify_params,
            "generator_params.unpatchify_params",
            dim=dim,
            hop=patchify.hop,
        )
    raise ValueError(
        f"unknown unpatchify kind '{unpatchify_kind}'; expected istft (or null for "
        f"the patchify kind's own decoder)"
    )
