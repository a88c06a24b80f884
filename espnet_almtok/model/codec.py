"""ALMTokenizer as an ESPnet GAN codec (``codec: almtokenizer``)."""

from typing import Any, Dict, Optional, Tuple

import torch
from espnet2.gan_codec.abs_gan_codec import AbsGANCodec
from espnet2.gan_codec.shared.discriminator.msmpmb_discriminator import (
    MultiScaleMultiPeriodMultiBandDiscriminator,
)
from espnet2.gan_codec.shared.loss.freq_loss import MultiScaleMelSpectrogramLoss
from espnet2.gan_tts.hifigan.loss import (
    DiscriminatorAdversarialLoss,
    FeatureMatchLoss,
    GeneratorAdversarialLoss,
)
from espnet2.torch_utils.device_funcs import force_gatherable
from typeguard import typechecked

from espnet_almtok.model.generator import ALMTokenizerGenerator, check_window
from espnet_almtok.utils.config_check import build_checked
from espnet_almtok.utils.rates import chunk_samples

# Long inputs are coded in chunks of this many seconds by default: attention
# spans the whole input, so the chunk bounds memory. Typical utterances fit in
# one chunk and are coded exactly as whole files.
DEFAULT_CHUNK_SECONDS = 30.0

BAND_DISCRIMINATOR_DEFAULTS = {
    "hop_factor": 0.25,
    "bands": [[0.0, 0.1], [0.1, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]],
    "channel": 32,
}


# Names users reach for, and the argument they mean.
KWARG_HINTS = {"lengths": "x_lengths", "ilens": "x_lengths", "window": "window_size"}


def refuse_unknown(kwargs: Dict[str, Any], where: str) -> None:
    """Raise on keyword arguments ``where`` does not know, naming them.

    ``AbsGANCodec``'s signatures take ``**kwargs``; ignoring one silently would
    code the padding of ``encode(x, lengths=n)``, say.
    """
    if not kwargs:
        return
    hints = [
        f" ({k}: did you mean {KWARG_HINTS[k]}?)" for k in kwargs if k in KWARG_HINTS
    ]
    raise TypeError(
        f"ALMTokenizer.{where}() got unknown keyword arguments "
        f"{', '.join(sorted(kwargs))}{''.join(hints)}"
    )


class ALMTokenizer(AbsGANCodec):
    """Query-based, semantically rich low-bitrate audio codec.

    Args:
        sampling_rate: Audio sampling rate.
        generator_params: ``ALMTokenizerGenerator`` arguments.
        discriminator_params: Arguments of ESPnet's
            ``MultiScaleMultiPeriodMultiBandDiscriminator`` (MPD + multi-band
            STFT, as DAC); its ``sample_rate`` follows ``sampling_rate``.
        generator_adv_loss_params: ESPnet ``GeneratorAdversarialLoss`` arguments.
        discriminator_adv_loss_params: ESPnet ``DiscriminatorAdversarialLoss``
            arguments.
        feat_match_loss_params: ESPnet ``FeatureMatchLoss`` arguments.
        mel_loss_params: ESPnet ``MultiScaleMelSpectrogramLoss`` arguments;
            its ``fs`` follows ``sampling_rate``.
        lambda_adv, lambda_feat_match, lambda_mel, lambda_commit, lambda_mae,
        lambda_ar: Loss weights.
        cache_generator_outputs: Reuse the generator turn's output in the
            discriminator turn of the same step.
        adversarial_start_step: Generator steps trained on the reconstruction
            and auxiliary losses alone before the adversarial and
            feature-matching losses start and the discriminator first trains.
            The warm-up skips the discriminator entirely (several times cheaper
            per step on CPU) and lets the generator leave its initial noise
            before a discriminator can tell real from fake. The count is saved
            with the model, so a resumed run goes on where it stopped.
        dither: Standard deviation of white noise added to training audio
            (Kaldi's dither; 1e-3 is -60 dBFS). Digital silence has log-mel
            values at the loss's 1e-10 floor, whose squared errors otherwise
            make up most of the loss (a synthetic corpus with 11 % exact zeros:
            train mel loss 328 without, 99 with 1e-3 at the same step) and
            reward a quiet output over following the input. 0 turns it off.
        chunk_seconds: The chunk length of ``encode_chunked`` and
            ``decode_chunked`` (and so of codec inference) unless they are
            given one; 0: whole inputs. The query transformers' absolute
            positions reach only as far as the training chunks: a small16k
            model trained on 0.8 s chunks coded whole clips at 3.8 times the
            training scale in the quantizer (STOI 0.522 against 0.557 in 0.8 s
            chunks).
    """

    @typechecked
    def __init__(
        self,
        sampling_rate: int = 24000,
        generator_params: Dict[str, Any] = {},
        discriminator_params: Dict[str, Any] = {},
        generator_adv_loss_params: Dict[str, Any] = {
            "average_by_discriminators": False,
            "loss_type": "mse",
        },
        discriminator_adv_loss_params: Dict[str, Any] = {
            "average_by_discriminators": False,
            "loss_type": "mse",
        },
        feat_match_loss_params: Dict[str, Any] = {
            "average_by_discriminators": False,
            "average_by_layers": False,
            "include_final_outputs": True,
        },
        mel_loss_params: Dict[str, Any] = {
            "range_start": 6,
            "range_end": 11,
            "window": "hann",
            "n_mels": 80,
            "fmin": 0,
            "fmax": None,
            "log_base": None,
        },
        lambda_adv: float = 1.0,
        lambda_feat_match: float = 2.0,
        lambda_mel: float = 45.0,
        lambda_commit: float = 1.0,
        lambda_mae: float = 1.0,
        lambda_ar: float = 1.0,
        cache_generator_outputs: bool = True,
        adversarial_start_step: int = 0,
        dither: float = 0.0,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    ):
        super().__init__()
        if chunk_seconds < 0:
            raise ValueError(f"chunk_seconds must be >= 0, got {chunk_seconds}")
        self.chunk_seconds = chunk_seconds
        if adversarial_start_step < 0:
            raise ValueError(
                f"adversarial_start_step must be >= 0, got {adversarial_start_step}"
            )
        self.fs = sampling_rate
        self.generator = build_checked(
            ALMTokenizerGenerator,
            generator_params,
            "codec_conf.generator_params",
            sampling_rate=sampling_rate,
        )
        # ESPnet reads every band-discriminator key, so fill those not given.
        band = {
            **BAND_DISCRIMINATOR_DEFAULTS,
            **discriminator_params.get("band_discriminator_params", {}),
            "sample_rate": sampling_rate,
        }
        self.discriminator = build_checked(
            MultiScaleMultiPeriodMultiBandDiscriminator,
            {
                **discriminator_params,
                "sample_rate": sampling_rate,
                "band_discriminator_params": band,
            },
            "codec_conf.discriminator_params",
        )
        self.generator_adv_loss = GeneratorAdversarialLoss(**generator_adv_loss_params)
        self.discriminator_adv_loss = DiscriminatorAdversarialLoss(
            **discriminator_adv_loss_params
        )
        self.feat_match_loss = FeatureMatchLoss(**feat_match_loss_params)
        self.mel_loss = MultiScaleMelSpectrogramLoss(
            **{**mel_loss_params, "fs": sampling_rate}
        )
        self.lambdas = dict(
            adv=lambda_adv,
            feat_match=lambda_feat_match,
            mel=lambda_mel,
            commit=lambda_commit,
            mae=lambda_mae,
            ar=lambda_ar,
        )
        self.cache_generator_outputs = cache_generator_outputs
        self._cache = None
        self.adversarial_start_step = adversarial_start_step
        if dither < 0:
            raise ValueError(f"dither must be >= 0, got {dither}")
        self.dither = dither
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))

    @property
    def adversarial(self) -> bool:
        """Whether the adversarial losses and the discriminator are on yet."""
        return int(self.generator_steps) >= self.adversarial_start_step

    def window(self, window_size: Optional[int] = None) -> int:
        """The given window, checked, or the inference window."""
        return check_window(
            window_size or self.generator.inference_window, "window_size"
        )

    def meta_info(self, window_size: Optional[int] = None) -> Dict[str, Any]:
        """Return ``fs``, ``num_streams``, ``frame_shift`` and code sizes.

        Args:
            window_size: Window to describe (default: the inference window).
        """
        gen = self.generator
        gen._require_quantizer()
        w = self.window(window_size)
        return {
            "fs": self.fs,
            "num_streams": gen.quantizer.n_q,
            "frame_shift": gen.hop * w,
            "code_size_per_stream": [gen.quantizer.codebook_size] * gen.quantizer.n_q,
        }

    def forward(
        self, audio: torch.Tensor, forward_generator: bool = True, **kwargs
    ) -> Dict[str, Any]:
        """Return the generator (optim_idx 0) or discriminator (1) loss.

        Args:
            audio: (B, T_wav) waveforms.
            forward_generator: Which of the two turns this is.
        """
        # The two turns of a step share one generator pass (and one dither).
        # The cache is keyed on the batch tensor and the turn, so it only ever
        # serves the other turn of the same step, even when ESPnet skips a turn.
        cache = self._cache
        self._cache = None
        if cache is not None and cache[0] is audio and cache[1] != forward_generator:
            x, audio_hat, aux, codes, adversarial = cache[2:]
        else:
            adversarial = self.adversarial  # one decision for both turns
            x = audio.unsqueeze(1)
            if self.training and self.dither > 0:
                x = x + self.dither * torch.randn_like(x)
            # Validation codes at the inference window, so its losses compare.
            w = self.generator.draw_window() if self.training else self.window()
            audio_hat, aux, codes = self.generator(x, w)
            if self.cache_generator_outputs:
                self._cache = (
                    audio,
                    forward_generator,
                    x,
                    audio_hat,
                    aux,
                    codes,
                    adversarial,
                )
        if forward_generator:
            if self.training:
                self.generator_steps += 1
            return self._generator_turn(x, audio_hat, aux, codes, adversarial)
        return self._discriminator_turn(x, audio_hat, adversarial)

    def _generator_turn(self, x, audio_hat, aux, codes, adversarial) -> Dict[str, Any]:
        losses = dict(mel=self.mel_loss(audio_hat, x), **aux)
        if adversarial:
            p_hat = self.discriminator(audio_hat)
            with torch.no_grad():
                p = self.discriminator(x)
            losses["adv"] = self.generator_adv_loss(p_hat)
            losses["feat_match"] = self.feat_match_loss(p_hat, p)
        weighted = {k: v * self.lambdas[k] for k, v in losses.items()}
        loss = sum(weighted.values())
        stats = {f"{k}_loss": v.item() for k, v in weighted.items()}
        if not adversarial:  # reported as NaN: not yet part of the loss
            stats.update(adv_loss=None, feat_match_loss=None)
        stats["loss"] = loss.item()
        if codes is not None:
            # Distinct entries each layer picks in this batch: a falling count
            # is the first sign of codebook collapse.
            for k, layer in enumerate(codes, 1):
                stats[f"codes_used_{k}"] = float(layer.unique().numel())
        loss, stats, weight = force_gatherable((loss, stats, x.size(0)), loss.device)
        return {"loss": loss, "stats": stats, "weight": weight, "optim_idx": 0}

    def _discriminator_turn(self, x, audio_hat, adversarial) -> Dict[str, Any]:
        if adversarial:
            real_loss, fake_loss = self.discriminator_adv_loss(
                self.discriminator(audio_hat.detach()), self.discriminator(x)
            )
            loss = real_loss + fake_loss
            stats = dict(
                discriminator_loss=loss.item(),
                real_loss=real_loss.item(),
                fake_loss=fake_loss.item(),
            )
        else:
            # ESPnet's trainer backpropagates every turn: a loss that reaches no
            # parameter leaves the discriminator (and its optimizer) untouched.
            loss = torch.zeros((), device=x.device, requires_grad=True)
            stats = dict(discriminator_loss=None, real_loss=None, fake_loss=None)
        loss, stats, weight = force_gatherable((loss, stats, x.size(0)), loss.device)
        return {"loss": loss, "stats": stats, "weight": weight, "optim_idx": 1}

    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Accept (T,), (B, T) or (B, 1, T) mono audio; return (B, 1, T)."""
        if x.dim() == 1:
            x = x.view(1, 1, -1)
        elif x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.size(1) != 1:
            raise ValueError(
                f"expected mono audio (T,), (B, T) or (B, 1, T), got {tuple(x.shape)}; "
                "downmix multi-channel audio first"
            )
        if x.size(-1) == 0:
            raise ValueError("cannot encode empty audio")
        if not torch.isfinite(x).all():
            raise ValueError("audio contains NaN or infinite samples")
        return x

    @staticmethod
    def _check_lengths(x_lengths: Optional[torch.Tensor]):
        if x_lengths is not None and (x_lengths <= 0).any():
            raise ValueError(
                f"cannot encode empty audio (lengths {x_lengths.tolist()})"
            )

    def encode_with_lengths(
        self,
        x: torch.Tensor,
        x_lengths: Optional[torch.Tensor] = None,
        window_size: Optional[int] = None,
    ):
        """Encode a padded batch.

        Args:
            x: Audio (T,), (B, T) or (B, 1, T), zero-padded past each length.
            x_lengths: (B,) valid samples per item (default: all).
            window_size: Frames per token (default: the inference window).

        Returns:
            Codes (n_q, B, N) and the valid tokens per item (B,),
            ``ceil(length / (hop * window_size))``. Codes past an item's count
            are padding.
        """
        x = self._as_batch(x)
        self._check_lengths(x_lengths)
        return self.generator.encode(x, x_lengths, self.window(window_size))

    def encode(
        self,
        x: torch.Tensor,
        x_lengths: Optional[torch.Tensor] = None,
        window_size: Optional[int] = None,
        **kwargs,
    ) -> torch.Tensor:
        """Codes (n_q, B, N); see ``encode_with_lengths``."""
        refuse_unknown(kwargs, "encode")
        return self.encode_with_lengths(x, x_lengths, window_size)[0]

    def decode(
        self,
        codes: torch.Tensor,
        window_size: Optional[int] = None,
        code_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> torch.Tensor:
        """Waveforms (B, 1, N * hop * window_size) of codes (n_q, B, N).

        The window must be the one the codes were encoded with.
        """
        refuse_unknown(kwargs, "decode")
        return self.generator.decode(
            codes.long(), self.window(window_size), code_lengths
        )

    def inference(
        self, x: torch.Tensor, window_size: Optional[int] = None, **kwargs
    ) -> Dict[str, torch.Tensor]:
        """Encode and decode one clip.

        Args:
            x: Audio (T,) or (1, T).

        Returns:
            ``wav`` with the input's shape and length, and ``codec`` (n_q, 1, N).
        """
        refuse_unknown(kwargs, "inference")
        codes = self.encode(x, window_size=window_size)
        wav = self.decode(codes, window_size=window_size)[..., : x.size(-1)]
        return {"wav": wav.reshape(x.shape), "codec": codes}

    def chunk_samples(
        self, chunk_seconds: float, window_size: Optional[int] = None
    ) -> int:
        """Samples per chunk for chunked coding at a window.

        Args:
            chunk_seconds: Wanted chunk length; ``0`` means no chunking.
            window_size: Frames per token (default: the inference window).

        Returns:
            ``chunk_seconds`` rounded down to whole tokens (``hop * window_size``
            samples each), so that chunk boundaries fall on token boundaries;
            at least one token. ``0`` for no chunking.
        """
        return chunk_samples(
            chunk_seconds, self.fs, self.generator.hop * self.window(window_size)
        )

    def _chunk(self, chunk_seconds: Optional[float]) -> float:
        return self.chunk_seconds if chunk_seconds is None else chunk_seconds

    def encode_chunked(
        self,
        x: torch.Tensor,
        x_lengths: Optional[torch.Tensor] = None,
        window_size: Optional[int] = None,
        chunk_seconds: Optional[float] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch chunk by chunk, with memory bounded by the chunk.

        Each chunk of ``chunk_samples(chunk_seconds)`` samples is encoded on its
        own, so its tokens never depend on the audio after it (nor before it).
        A chunk is a whole number of tokens: an item gets the same number of
        tokens as from ``encode_with_lengths``.

        Args:
            x: Audio (T,), (B, T) or (B, 1, T), zero-padded past each length.
            x_lengths: (B,) valid samples per item (default: all).
            window_size: Frames per token (default: the inference window).
            chunk_seconds: Chunk length (see ``chunk_samples``; default: the
                codec's ``chunk_seconds``); ``0`` encodes the whole input at
                once, as ``encode_with_lengths``.

        Returns:
            Codes (n_q, B, N) and the valid tokens per item (B,), as
            ``encode_with_lengths``.
        """
        w = self.window(window_size)
        size = self.chunk_samples(self._chunk(chunk_seconds), w)
        x = self._as_batch(x)
        if size == 0 or x.size(-1) <= size:  # one chunk: the whole input
            return self.encode_with_lengths(x, x_lengths, w)
        self._check_lengths(x_lengths)
        if x_lengths is None:
            x_lengths = torch.full((x.size(0),), x.size(-1))
        lengths = x_lengths.to(x.device).long()
        tokens = size // (self.generator.hop * w)
        n_tokens = -(-lengths // (self.generator.hop * w))
        codes = None
        for k, start in enumerate(range(0, int(lengths.max()), size)):
            left = (lengths - start).clamp(0, size)
            items = (left > 0).nonzero()[:, 0]
            c, _ = self.generator.encode(
                x[items, :, start : start + size], left[items], w
            )
            if codes is None:
                codes = c.new_zeros(c.size(0), x.size(0), int(n_tokens.max()))
            codes[:, items, k * tokens : k * tokens + c.size(2)] = c
        return codes, n_tokens

    def decode_chunked(
        self,
        codes: torch.Tensor,
        window_size: Optional[int] = None,
        code_lengths: Optional[torch.Tensor] = None,
        chunk_seconds: Optional[float] = None,
    ) -> torch.Tensor:
        """Decode codes chunk by chunk, with memory bounded by the chunk.

        The chunks are those of ``encode_chunked`` at the same window and
        ``chunk_seconds``; each is decoded on its own, so decoding chunked codes
        gives what decoding each chunk alone gives.

        Args:
            codes: (n_q, B, N) codes.
            window_size: The window the codes were encoded with.
            code_lengths: (B,) valid tokens per item (default: all N).
            chunk_seconds: Chunk length (see ``chunk_samples``; default: the
                codec's ``chunk_seconds``); ``0`` decodes all tokens at once, as
                ``decode``.

        Returns:
            Waveforms (B, 1, N * hop * window_size), as ``decode``.
        """
        w = self.window(window_size)
        unit = self.generator.hop * w
        tokens = self.chunk_samples(self._chunk(chunk_seconds), w) // unit
        if tokens == 0 or codes.size(2) <= tokens:  # one chunk: all tokens
            return self.decode(codes, w, code_lengths)
        if code_lengths is None:
            code_lengths = torch.full((codes.size(1),), codes.size(2))
        lengths = code_lengths.to(codes.device).long()
        wav = None
        for start in range(0, int(lengths.max()), tokens):
            left = (lengths - start).clamp(0, tokens)
            items = (left > 0).nonzero()[:, 0]
            part = self.decode(codes[:, items, start : start + tokens], w, left[items])
            if wav is None:
                wav = part.new_zeros(codes.size(1), 1, codes.size(2) * unit)
            wav[items, :, start * unit : start * unit + part.size(-1)] = part
        return wav
