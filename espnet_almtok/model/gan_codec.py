"""What our codecs share as ESPnet GAN codecs: losses, turns, input checks.

``ALMTokenizer`` and ``LoSATok`` differ in their generators and auxiliary
losses. Both train with ESPnet's GAN trainer against its multi-period and
multi-band STFT discriminators (as DAC), with ESPnet's mel, adversarial and
feature-matching losses, an optional mel-only warm-up, and dither.
"""

from abc import abstractmethod
from typing import Any, Dict, List, Optional, Tuple

import torch
from espnet2.gan_codec.abs_gan_codec import AbsGANCodec
from espnet2.gan_codec.shared.loss.freq_loss import MultiScaleMelSpectrogramLoss
from espnet2.gan_tts.hifigan.loss import (
    DiscriminatorAdversarialLoss,
    FeatureMatchLoss,
    GeneratorAdversarialLoss,
)
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_almtok.model.content_loss import ContentLoss
from espnet_almtok.model.discriminator import MultiPeriodMultiBandDiscriminator
from espnet_almtok.utils.config_check import build_checked

ADV_LOSS_DEFAULTS = {"average_by_discriminators": False, "loss_type": "mse"}
FEAT_MATCH_DEFAULTS = {
    "average_by_discriminators": False,
    "average_by_layers": False,
    "include_final_outputs": True,
}
MEL_LOSS_DEFAULTS = {
    "range_start": 6,
    "range_end": 11,
    "window": "hann",
    "n_mels": 80,
    "fmin": 0,
    "fmax": None,
    "log_base": None,
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
        f"{where}() got unknown keyword arguments "
        f"{', '.join(sorted(kwargs))}{''.join(hints)}"
    )


def as_mono_batch(x: torch.Tensor) -> torch.Tensor:
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


def check_lengths(x_lengths: Optional[torch.Tensor]) -> None:
    if x_lengths is not None and (x_lengths <= 0).any():
        raise ValueError(f"cannot encode empty audio (lengths {x_lengths.tolist()})")


def check_range(name: str, bounds: Optional[List[float]], low=None, high=None):
    """Refuse a ``[low, high]`` option that is not an ordered pair in bounds."""
    if bounds is None:
        return
    if (
        len(bounds) != 2
        or bounds[0] > bounds[1]
        or (low is not None and bounds[0] <= low)
        or (high is not None and bounds[1] > high)
    ):
        within = "" if low is None else f" within ({low}, {high}]"
        raise ValueError(
            f"{name} must be [low, high] with low <= high{within}, got {bounds}"
        )


def lowpass(x: torch.Tensor, cutoff_hz: torch.Tensor, fs: int) -> torch.Tensor:
    """Waveforms (B, 1, L), each with its band above its cutoff (B,) removed.

    A brick-wall filter in the frequency domain of the whole clip: zero phase,
    and nothing of the stop band left for the codec to read.
    """
    spec = torch.fft.rfft(x, dim=-1)
    freqs = torch.fft.rfftfreq(x.size(-1), 1 / fs).to(x.device)
    spec = spec * (freqs <= cutoff_hz[:, None, None])
    return torch.fft.irfft(spec, n=x.size(-1), dim=-1)


class GANCodec(AbsGANCodec):
    """A generator trained by ESPnet's GAN trainer with a mel-only warm-up.

    Subclasses build ``self.generator`` and implement ``run_generator``.

    Args:
        sampling_rate: Audio sampling rate.
        discriminator_params: Arguments of ESPnet's
            ``MultiScaleMultiPeriodMultiBandDiscriminator`` (MPD + multi-band
            STFT, as DAC), whose band discriminators here honour their
            ``channel`` and ``hop_factor`` (``discriminator.py``); its
            ``sample_rate`` follows ``sampling_rate``.
        generator_adv_loss_params: ESPnet ``GeneratorAdversarialLoss`` arguments.
        discriminator_adv_loss_params: ESPnet ``DiscriminatorAdversarialLoss``
            arguments.
        feat_match_loss_params: ESPnet ``FeatureMatchLoss`` arguments.
        mel_loss_params: ESPnet ``MultiScaleMelSpectrogramLoss`` arguments;
            its ``fs`` follows ``sampling_rate``.
        lambdas: Weight of each loss, by the name the generator turn reports
            it under (``mel``, ``adv``, ``feat_match`` and the generator's own).
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
        random_gain_db: ``[low, high]``: each training clip is first scaled
            by a gain drawn uniformly from this range in dB, so the codec
            sees quiet and loud recordings alike. On the small16k model 3
            epochs of [-20, 4] raised STOI 10 dB below the held-out prompts'
            level (0.709 to 0.720) but not Whisper's capped dWER (0.627, 0.568
            at their own level); coding at one level (``ALMTokenizer``'s
            ``input_level_dbfs``) did that. None: off.
        random_lowpass_hz: ``[low, high]``: a share of the training clips
            (``random_lowpass_share``) is low-passed at a cutoff drawn
            uniformly from this range (Hz), input and target alike, so the
            codec meets band-limited recordings (telephone, 11025 Hz, G.722)
            as well as full-band ones. Trained at full band only, the small16k
            model lost 0.21 capped Whisper dWER on held-out prompts low-passed
            at 5.5 kHz (Codec2 450: 0.01): it read consonants from a band that
            real recordings often lack. Fine-tuned 3-4 epochs with [3400, 7000]
            on half the clips, it still lost 0.14-0.18. None: off.
        random_lowpass_share: The share of training clips low-passed.
        content_loss_params: ``ContentLoss`` arguments: with them the
            generator also learns from the distance between Whisper's encoder
            frames of its output and of its input (``content``, weighted by
            ``lambdas["content"]``); None: no content loss.
    """

    def __init__(
        self,
        sampling_rate: int,
        discriminator_params: Dict[str, Any],
        generator_adv_loss_params: Dict[str, Any],
        discriminator_adv_loss_params: Dict[str, Any],
        feat_match_loss_params: Dict[str, Any],
        mel_loss_params: Dict[str, Any],
        lambdas: Dict[str, float],
        cache_generator_outputs: bool,
        adversarial_start_step: int,
        dither: float,
        content_loss_params: Optional[Dict[str, Any]] = None,
        random_gain_db: Optional[List[float]] = None,
        random_lowpass_hz: Optional[List[float]] = None,
        random_lowpass_share: float = 0.5,
    ):
        super().__init__()
        check_range("random_gain_db", random_gain_db)
        check_range("random_lowpass_hz", random_lowpass_hz, 0, sampling_rate / 2)
        if not 0 <= random_lowpass_share <= 1:
            raise ValueError(
                f"random_lowpass_share must be in [0, 1], got {random_lowpass_share}"
            )
        if adversarial_start_step < 0:
            raise ValueError(
                f"adversarial_start_step must be >= 0, got {adversarial_start_step}"
            )
        if dither < 0:
            raise ValueError(f"dither must be >= 0, got {dither}")
        self.fs = sampling_rate
        self.discriminator = build_checked(
            MultiPeriodMultiBandDiscriminator,
            discriminator_params,
            "codec_conf.discriminator_params",
            sample_rate=sampling_rate,
        )
        self.generator_adv_loss = GeneratorAdversarialLoss(**generator_adv_loss_params)
        self.discriminator_adv_loss = DiscriminatorAdversarialLoss(
            **discriminator_adv_loss_params
        )
        self.feat_match_loss = FeatureMatchLoss(**feat_match_loss_params)
        self.mel_loss = MultiScaleMelSpectrogramLoss(
            **{**mel_loss_params, "fs": sampling_rate}
        )
        self.lambdas = dict(lambdas)
        self.content_loss = None
        if content_loss_params is not None:
            self.content_loss = build_checked(
                ContentLoss,
                content_loss_params,
                "codec_conf.content_loss_params",
                sampling_rate=sampling_rate,
            )
        self.cache_generator_outputs = cache_generator_outputs
        self._cache = None
        self.adversarial_start_step = adversarial_start_step
        self.dither = dither
        self.random_gain_db = random_gain_db
        self.random_lowpass_hz = random_lowpass_hz
        self.random_lowpass_share = random_lowpass_share
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))

    @property
    def adversarial(self) -> bool:
        """Whether the adversarial losses and the discriminator are on yet."""
        return int(self.generator_steps) >= self.adversarial_start_step

    @abstractmethod
    def run_generator(
        self, x: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor], Any]:
        """One training or validation pass of the generator.

        Args:
            x: (B, 1, L) waveforms (dithered in training).

        Returns:
            The reconstruction (B, 1, L), or None for a generator stage that
            does not decode (then only the auxiliary losses train); the
            auxiliary losses by name; and the codes (n_q, B, N) to count, or
            None.
        """

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
            x = audio.unsqueeze(1)
            if self.training:
                x = self.augment(x)
            audio_hat, aux, codes = self.run_generator(x)
            # One decision for both turns; nothing to discriminate without audio.
            adversarial = self.adversarial and audio_hat is not None
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

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Training audio (B, 1, L) at a random gain and band per clip, then
        dithered."""
        if self.random_gain_db is not None:
            db = torch.empty(x.size(0), 1, 1, device=x.device, dtype=x.dtype)
            x = x * 10 ** (db.uniform_(*self.random_gain_db) / 20)
        if self.random_lowpass_hz is not None:
            cutoff = torch.empty(x.size(0), device=x.device)
            cutoff.uniform_(*self.random_lowpass_hz)
            limited = torch.rand(x.size(0), device=x.device) < self.random_lowpass_share
            if limited.any():  # MKL's FFT refuses an empty batch
                # Out of place: without a gain, x is still the caller's batch.
                low = lowpass(x[limited], cutoff[limited], self.fs)
                x = x.index_put((limited,), low)
        if self.dither > 0:
            x = x + self.dither * torch.randn_like(x)
        return x

    def _generator_turn(self, x, audio_hat, aux, codes, adversarial) -> Dict[str, Any]:
        losses = {}
        if audio_hat is not None:
            losses["mel"] = self.mel_loss(audio_hat, x)
            if self.content_loss is not None:
                losses["content"] = self.content_loss(audio_hat, x)
        losses.update(aux)
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
