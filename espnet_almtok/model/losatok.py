"""LoSATok: a continuous, low-dimensional semantic-acoustic latent (``codec: losatok``).

Two branches meet in a small latent (128 dims at 25 Hz by default):

* semantic: a frozen teacher's frames (``semantic_encoder.py``), compressed by
  the semantic bottleneck (``semantic_bottleneck.py``), trained first and then
  frozen;
* acoustic: log-mel frames and a patch embedding (mel bands x a few frames) at
  the latent rate, layer-normalised, in the teacher's dimension, then a linear
  map to the latent dimension.

``latent = acoustic_low + semantic_low``; linear heads give a mean and a
log-variance, the decoder reads a sample in training and the mean otherwise.
Dual-level semantic supervision pulls the acoustic branch towards the teacher
in both spaces. The decoder upsamples the latent (transposed convolution) and
runs Vocos (ConvNeXt blocks and an inverse-STFT head).

``training_stage: 1`` trains the semantic bottleneck alone (no decoder, no
audio out); ``training_stage: 2`` the tokenizer, with the bottleneck loaded by
``--init_param`` and frozen.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.gan_codec import (
    ADV_LOSS_DEFAULTS,
    FEAT_MATCH_DEFAULTS,
    MEL_LOSS_DEFAULTS,
    GANCodec,
    as_mono_batch,
    check_lengths,
    refuse_unknown,
)
from espnet_almtok.model.patchify import ISTFTUnPatchify, MelPatchify
from espnet_almtok.model.semantic_bottleneck import (
    SemanticBottleneck,
    cosine_reconstruction_loss,
    time_relation_loss,
)
from espnet_almtok.model.semantic_encoder import SemanticEncoder
from espnet_almtok.model.transformer import length_mask
from espnet_almtok.utils.config_check import build_checked


def kl_divergence(
    mu: torch.Tensor, logvar: torch.Tensor, floor: Optional[float] = None
) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed over dims, averaged over frames.

    Args:
        mu, logvar: (B, N, D) posterior parameters.
        floor: Per-dimension lower bound ("free bits"): dimensions already
            below it are not pushed further towards the prior.
    """
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    if floor is not None:
        kl = kl.clamp(min=floor)
    return kl.sum(-1).mean()


class LoSATokGenerator(nn.Module):
    """Teacher, semantic bottleneck, acoustic branch, latent heads and decoder.

    Args:
        training_stage: 1 (the semantic bottleneck alone) or 2 (the tokenizer,
            with the bottleneck frozen).
        latent_dim: Latent dimension (the bottleneck's low dimension).
        hop: Samples per latent frame (640 at 16 kHz: 25 Hz).
        semantic_encoder_params: ``SemanticEncoder`` arguments (the teacher:
            ``kind``, ``checkpoint``, ...).
        bottleneck_params: ``SemanticBottleneck`` arguments (``hidden_dim``).
        acoustic_params: ``MelPatchify`` arguments of the acoustic branch
            (``n_fft``, ``n_mels``, ``patch_frames``, ...); its width is the
            teacher's.
        upsample: Decoder frames per latent frame (a transposed convolution).
        decoder_dim: Width of the upsampled frames.
        decoder_params: ``ISTFTUnPatchify`` arguments (Vocos: ``width``,
            ``ff_dim``, ``num_layers``, ``n_fft``).
        logvar_min, logvar_max: Clamp of the log-variance head.
        kl_floor: Per-dimension floor of the KL loss (None: none).
        sampling_rate: Audio sampling rate (the codec sets it).
    """

    @typechecked
    def __init__(
        self,
        training_stage: int = 2,
        latent_dim: int = 128,
        hop: int = 640,
        semantic_encoder_params: Optional[Dict[str, Any]] = None,
        bottleneck_params: Optional[Dict[str, Any]] = None,
        acoustic_params: Optional[Dict[str, Any]] = None,
        upsample: int = 2,
        decoder_dim: int = 512,
        decoder_params: Optional[Dict[str, Any]] = None,
        logvar_min: float = -20.0,
        logvar_max: float = 20.0,
        kl_floor: Optional[float] = None,
        sampling_rate: int = 16000,
    ):
        super().__init__()
        if training_stage not in (1, 2):
            raise ValueError(f"training_stage must be 1 or 2, got {training_stage}")
        if upsample < 1 or hop % upsample:
            raise ValueError(f"upsample ({upsample}) must divide hop ({hop}) evenly")
        if logvar_min >= logvar_max:
            raise ValueError(
                f"logvar_min ({logvar_min}) must be below logvar_max ({logvar_max})"
            )
        self.training_stage = training_stage
        self.hop = hop
        self.logvar_range = (logvar_min, logvar_max)
        self.kl_floor = kl_floor
        self.semantic_encoder = build_checked(
            SemanticEncoder,
            semantic_encoder_params,
            "generator_params.semantic_encoder_params",
            sampling_rate=sampling_rate,
            hop=hop,
        )
        high = self.semantic_encoder.dim
        self.semantic_bottleneck = build_checked(
            SemanticBottleneck,
            bottleneck_params,
            "generator_params.bottleneck_params",
            high_dim=high,
            low_dim=latent_dim,
        )
        if training_stage == 1:
            return
        self.semantic_bottleneck.requires_grad_(False)
        self.acoustic = build_checked(
            MelPatchify,
            acoustic_params,
            "generator_params.acoustic_params",
            dim=high,
            sampling_rate=sampling_rate,
            hop=hop,
        )
        self.acoustic_norm = nn.LayerNorm(high)
        self.acoustic_to_low = nn.Linear(high, latent_dim)
        self.to_mu = nn.Linear(latent_dim, latent_dim)
        self.to_logvar = nn.Linear(latent_dim, latent_dim)
        self.upsample = nn.ConvTranspose1d(
            latent_dim, decoder_dim, upsample, stride=upsample
        )
        self.vocoder = build_checked(
            ISTFTUnPatchify,
            decoder_params,
            "generator_params.decoder_params",
            dim=decoder_dim,
            hop=hop // upsample,
        )

    def _require_tokenizer(self):
        if self.training_stage == 1:
            raise RuntimeError(
                "this is a stage-1 semantic bottleneck: it has no acoustic branch "
                "and no decoder; train stage 2 (training_stage: 2) to encode or "
                "decode"
            )

    def branches(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """The four branch outputs (B, N, dim) of (B, 1, L) audio, N = ceil(L / hop).

        ``semantic_high`` (the teacher), ``semantic_low`` (its bottleneck),
        ``acoustic_high`` (the acoustic branch in the teacher's dimension) and
        ``acoustic_low``.
        """
        self._require_tokenizer()
        n = -(-x.size(-1) // self.hop)
        semantic_high = self.semantic_encoder(x, lengths, pack=self.training)
        with torch.no_grad():
            # The mirror MLP only trains the bottleneck (stage 1).
            semantic_low = self.semantic_bottleneck.down(semantic_high)
        x = F.pad(x, (0, n * self.hop - x.size(-1)))
        acoustic_high = self.acoustic_norm(self.acoustic(x, None))
        return dict(
            semantic_high=semantic_high,
            semantic_low=semantic_low,
            acoustic_high=acoustic_high,
            acoustic_low=self.acoustic_to_low(acoustic_high),
        )

    def posterior(self, b: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Mean and clamped log-variance (B, N, latent_dim) of the latent."""
        unified = b["acoustic_low"] + b["semantic_low"]
        return self.to_mu(unified), self.to_logvar(unified).clamp(*self.logvar_range)

    def encoder(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """The latent mean (B, latent_dim, N) of (B, 1, L) audio.

        Named and laid out as ESPnet's ``encode_continuous`` expects.
        """
        return self.posterior(self.branches(x, lengths))[0].transpose(1, 2)

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, 1, N * hop) of latents (B, latent_dim, N).

        Named and laid out as ESPnet's ``decode_continuous`` expects.
        """
        self._require_tokenizer()
        frames = self.upsample(z).transpose(1, 2)
        return self.vocoder(frames, None)

    def forward(
        self, x: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor], None]:
        """Training pass on equal-length (B, 1, L) waveforms.

        Returns:
            The reconstruction (B, 1, L) (None in stage 1), the auxiliary
            losses (stage 1: ``sembo_cos``, ``sembo_relation``; stage 2:
            ``semantic_high``, ``semantic_low``, ``kl``) and None (no codes).
        """
        if self.training_stage == 1:
            high = self.semantic_encoder(x, pack=self.training)
            low, recon = self.semantic_bottleneck(high)
            if self.training:
                self.semantic_bottleneck.trained_steps += 1
            losses = dict(
                sembo_cos=cosine_reconstruction_loss(recon, high),
                sembo_relation=time_relation_loss(low, high),
            )
            return None, losses, None
        if self.training:
            self.semantic_bottleneck.require_trained(
                "codec.generator.semantic_bottleneck"
            )
        b = self.branches(x)
        mu, logvar = self.posterior(b)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        audio_hat = self.decoder(z.transpose(1, 2))[..., : x.size(-1)]
        losses = dict(
            semantic_high=F.mse_loss(b["acoustic_high"], b["semantic_high"]),
            semantic_low=F.mse_loss(b["acoustic_low"], b["semantic_low"]),
            kl=kl_divergence(mu, logvar, self.kl_floor),
        )
        return audio_hat, losses, None


class LoSATok(GANCodec):
    """LoSATok as an ESPnet GAN codec: continuous latents, not codes.

    ``encode`` gives latents (B, N, latent_dim) at ``fs / hop`` frames a second
    and ``decode`` takes them back to audio; ESPnet's ``encode_continuous`` and
    ``decode_continuous`` work too, in ESPnet's (B, latent_dim, N) layout.

    Args:
        sampling_rate: Audio sampling rate.
        generator_params: ``LoSATokGenerator`` arguments.
        discriminator_params, generator_adv_loss_params,
        discriminator_adv_loss_params, feat_match_loss_params,
        mel_loss_params, cache_generator_outputs, adversarial_start_step,
        dither, content_loss_params, random_gain_db, random_lowpass_hz,
        random_lowpass_share: See ``GANCodec``.
        lambda_adv, lambda_feat_match, lambda_mel: Reconstruction loss weights.
        lambda_sembo_cos, lambda_sembo_relation: Weights of the semantic
            bottleneck's cosine reconstruction and time-relation losses
            (stage 1).
        lambda_semantic_high, lambda_semantic_low: Weights of the dual-level
            semantic supervision (stage 2); 0 turns a level off.
        lambda_kl: Weight of the KL loss (stage 2); 0 turns it off.
        lambda_content: Weight of the content loss (with
            ``content_loss_params``).
    """

    @typechecked
    def __init__(
        self,
        sampling_rate: int = 16000,
        generator_params: Dict[str, Any] = {},
        discriminator_params: Dict[str, Any] = {},
        generator_adv_loss_params: Dict[str, Any] = ADV_LOSS_DEFAULTS,
        discriminator_adv_loss_params: Dict[str, Any] = ADV_LOSS_DEFAULTS,
        feat_match_loss_params: Dict[str, Any] = FEAT_MATCH_DEFAULTS,
        mel_loss_params: Dict[str, Any] = MEL_LOSS_DEFAULTS,
        lambda_adv: float = 1.0,
        lambda_feat_match: float = 2.0,
        lambda_mel: float = 45.0,
        lambda_sembo_cos: float = 1.0,
        lambda_sembo_relation: float = 1.0,
        lambda_semantic_high: float = 1.0,
        lambda_semantic_low: float = 1.0,
        lambda_kl: float = 1.0e-3,
        lambda_content: float = 1.0,
        cache_generator_outputs: bool = True,
        adversarial_start_step: int = 0,
        dither: float = 0.0,
        content_loss_params: Optional[Dict[str, Any]] = None,
        random_gain_db: Optional[List[float]] = None,
        random_lowpass_hz: Optional[List[float]] = None,
        random_lowpass_share: float = 0.5,
    ):
        super().__init__(
            sampling_rate,
            discriminator_params,
            generator_adv_loss_params,
            discriminator_adv_loss_params,
            feat_match_loss_params,
            mel_loss_params,
            dict(
                adv=lambda_adv,
                feat_match=lambda_feat_match,
                mel=lambda_mel,
                sembo_cos=lambda_sembo_cos,
                sembo_relation=lambda_sembo_relation,
                semantic_high=lambda_semantic_high,
                semantic_low=lambda_semantic_low,
                kl=lambda_kl,
                content=lambda_content,
            ),
            cache_generator_outputs,
            adversarial_start_step,
            dither,
            content_loss_params,
            random_gain_db,
            random_lowpass_hz,
            random_lowpass_share,
        )
        self.generator = build_checked(
            LoSATokGenerator,
            generator_params,
            "codec_conf.generator_params",
            sampling_rate=sampling_rate,
        )

    def meta_info(self) -> Dict[str, Any]:
        """``fs``, ``frame_shift`` (samples per latent frame) and ``latent_dim``."""
        self.generator._require_tokenizer()
        return {
            "fs": self.fs,
            "frame_shift": self.generator.hop,
            "latent_dim": self.generator.to_mu.out_features,
            "continuous": True,
        }

    def run_generator(self, x: torch.Tensor):
        return self.generator(x)

    def encode_with_lengths(
        self, x: torch.Tensor, x_lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Latents (B, N, latent_dim) of a padded batch, and frames per item.

        Args:
            x: Audio (T,), (B, T) or (B, 1, T), padded past each length.
            x_lengths: (B,) valid samples per item (default: all).

        Returns:
            The latent means and ``ceil(length / hop)`` per item; latents past
            an item's count are padding.
        """
        x = as_mono_batch(x)
        check_lengths(x_lengths)
        if x_lengths is None:
            x_lengths = torch.full((x.size(0),), x.size(-1), device=x.device)
        hop = self.generator.hop
        # Zero the padding: the causal acoustic branch then cannot see it, and
        # the teacher reads each item only up to its length.
        x = x * ~length_mask(x_lengths.to(x.device), x.size(-1))[:, None]
        z = self.generator.encoder(x, x_lengths).transpose(1, 2)
        return z, -(-x_lengths.long() // hop)

    def encode(
        self, x: torch.Tensor, x_lengths: Optional[torch.Tensor] = None, **kwargs
    ) -> torch.Tensor:
        """Latents (B, N, latent_dim); see ``encode_with_lengths``."""
        refuse_unknown(kwargs, "LoSATok.encode")
        return self.encode_with_lengths(x, x_lengths)[0]

    def decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        """Waveforms (B, 1, N * hop) of latents (B, N, latent_dim)."""
        refuse_unknown(kwargs, "LoSATok.decode")
        dim = self.meta_info()["latent_dim"]
        if z.dim() != 3 or z.size(-1) != dim:
            raise ValueError(f"expected latents (B, N, {dim}), got {tuple(z.shape)}")
        return self.generator.decoder(z.transpose(1, 2))

    def inference(self, x: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        """Encode and decode one clip.

        Args:
            x: Audio (T,) or (1, T).

        Returns:
            ``wav`` with the input's shape and length, and ``latent``
            (1, N, latent_dim).
        """
        refuse_unknown(kwargs, "LoSATok.inference")
        z = self.encode(x)
        wav = self.decode(z)[..., : x.size(-1)]
        return {"wav": wav.reshape(x.shape), "latent": z}
