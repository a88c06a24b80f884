"""Objective metrics between a reference waveform and its reconstruction.

:class:`Scorer` takes two 1-D float arrays at one sample rate and returns, in the
order of ``METRICS``:

- ``mel_distance`` (lower is better): mean absolute difference of log10 mel
  magnitudes, ESPnet's ``MelSpectrogramLoss`` with ``MEL_PARAMS`` (1024-point FFT,
  Hann window of 1024, hop 256, 80 mel bands from 0 Hz to fs/2, magnitudes
  floored at 1e-10, so silence sits at -10).
- ``mrstft_distance`` (lower is better): spectral convergence plus mean absolute
  log-magnitude difference, averaged over the ``STFT_RESOLUTIONS`` of Parallel
  WaveGAN's multi-resolution STFT loss.
- ``si_snr`` (dB, higher is better): scale-invariant SNR of zero-mean signals.
- ``pesq`` (about 1.0 to 4.64, higher is better): wide-band PESQ (ITU-T P.862.2,
  package ``pesq``) on both signals resampled to 16 kHz.
- ``stoi`` (0 to 1, higher is better): classic STOI (package ``pystoi``).

A metric that is undefined for an utterance (a silent reference, too little
speech for PESQ or STOI, a clip shorter than the mel window) is NaN, with a
warning that names the utterance; it never stops a scoring run.
"""

import logging
import math
import warnings
from typing import Dict, Sequence, Tuple

import numpy as np
import pesq as pesq_lib
import pystoi
import torch
import torch.nn.functional as F
import torchaudio
from espnet2.gan_tts.hifigan.loss import MelSpectrogramLoss
from typeguard import typechecked

METRICS = ("mel_distance", "mrstft_distance", "si_snr", "pesq", "stoi")

MEL_PARAMS = dict(
    n_fft=1024,
    hop_length=256,
    win_length=1024,
    window="hann",
    n_mels=80,
    fmin=0,
    fmax=None,
    log_base=10.0,
)

# (n_fft, hop, window length), as Parallel WaveGAN's multi-resolution STFT loss.
STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))

PESQ_FS = 16000

# pystoi needs 30 frames of 25.6 ms every 12.8 ms (0.397 s) of speech, and
# crashes, rather than warns, on less than one frame.
STOI_MIN_SECONDS = 0.4


def _undefined(utt_id: str, metric: str, reason: str) -> float:
    logging.warning(f"{utt_id}: {metric} is NaN ({reason})")
    return math.nan


def resample(x: np.ndarray, orig_fs: int, new_fs: int) -> np.ndarray:
    """Resample a 1-D signal with torchaudio (returned as is when rates match)."""
    if orig_fs == new_fs:
        return x
    y = torchaudio.functional.resample(torch.from_numpy(x), orig_fs, new_fs)
    return y.numpy()


def read_mono(reader, utt_id: str, scp: str) -> Tuple[int, np.ndarray]:
    """(rate, 1-D samples) of ``utt_id`` from an ESPnet ``SoundScpReader``."""
    fs, wav = reader[utt_id]
    if wav.ndim != 1:
        raise ValueError(f"{scp}: {utt_id} has shape {wav.shape}; expected mono")
    return fs, wav


def match_length(ref: np.ndarray, hyp: np.ndarray, utt_id: str = "") -> np.ndarray:
    """Trim or zero-pad ``hyp`` to the length of ``ref``.

    Codecs decode whole windows, so a longer reconstruction is expected and
    trimmed silently; a shorter one means samples were lost, hence the warning.
    """
    if len(hyp) < len(ref):
        logging.warning(
            f"{utt_id}: reconstruction is {len(ref) - len(hyp)} samples shorter "
            "than the reference; zero-padding it"
        )
        return np.pad(hyp, (0, len(ref) - len(hyp)))
    return hyp[: len(ref)]


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """(freq, frames) STFT magnitude of a 1-D signal, Hann window, floored.

    The floor (power 1e-7, as Parallel WaveGAN) keeps logs of silence finite;
    zero padding at the edges (not reflection) accepts clips of any length.
    """
    spec = torch.stft(
        x,
        n_fft,
        hop_length=hop,
        win_length=win,
        window=torch.hann_window(win, dtype=x.dtype),
        pad_mode="constant",
        return_complex=True,
    )
    return spec.abs().pow(2).clamp(min=1e-7).sqrt()


class MultiResolutionSTFTDistance(torch.nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over resolutions."""

    @typechecked
    def __init__(self, resolutions: Sequence[Tuple[int, int, int]] = STFT_RESOLUTIONS):
        """Initialize the distance.

        Args:
            resolutions: ``(n_fft, hop, window length)`` per resolution.
        """
        super().__init__()
        self.resolutions = tuple(resolutions)

    def forward(self, hyp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Distance between 1-D signals of equal length (a scalar tensor)."""
        total = 0.0
        for n_fft, hop, win in self.resolutions:
            h = stft_magnitude(hyp, n_fft, hop, win)
            r = stft_magnitude(ref, n_fft, hop, win)
            convergence = torch.linalg.norm(r - h) / torch.linalg.norm(r)
            total = total + convergence + F.l1_loss(h.log(), r.log())
        return total / len(self.resolutions)


def si_snr(ref: np.ndarray, hyp: np.ndarray, utt_id: str = "") -> float:
    """Scale-invariant SNR in dB of zero-mean signals of equal length."""
    ref = ref - ref.mean()
    hyp = hyp - hyp.mean()
    energy = np.dot(ref, ref)
    if energy == 0:
        return _undefined(utt_id, "si_snr", "silent reference")
    target = np.dot(hyp, ref) / energy * ref
    noise = hyp - target
    # eps keeps identical signals finite (very high) instead of +inf.
    eps = np.finfo(np.float64).eps
    return float(
        10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps))
    )


def pesq_wb(ref: np.ndarray, hyp: np.ndarray, fs: int, utt_id: str = "") -> float:
    """Wide-band PESQ of signals of equal length, resampled to 16 kHz."""
    ref, hyp = resample(ref, fs, PESQ_FS), resample(hyp, fs, PESQ_FS)
    try:
        # pesq normalises by the peak, which divides by zero on silence.
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(pesq_lib.pesq(PESQ_FS, ref, hyp, "wb"))
    except (pesq_lib.PesqError, ValueError) as e:
        # PesqError: no utterance found or under 1/4 s; ValueError: silent
        # reconstruction (pesq's C code then sees NaN).
        reason = e.args[0] if e.args else type(e).__name__
        if isinstance(reason, bytes):  # pesq's own errors carry C strings
            reason = reason.decode(errors="replace")
        return _undefined(utt_id, "pesq", f"pesq failed: {reason}")


def stoi(ref: np.ndarray, hyp: np.ndarray, fs: int, utt_id: str = "") -> float:
    """Classic STOI of signals of equal length."""
    if not np.any(ref):
        return _undefined(utt_id, "stoi", "silent reference")
    if len(ref) < STOI_MIN_SECONDS * fs:
        return _undefined(utt_id, "stoi", f"shorter than {STOI_MIN_SECONDS} s")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = pystoi.stoi(ref, hyp, fs)
    # pystoi warns and returns 1e-5 when fewer than 30 frames are not silent;
    # any other numeric warning makes the value just as suspect.
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            return _undefined(utt_id, "stoi", str(w.message))
    return float(value)


class Scorer:
    """All ``METRICS`` of a reconstruction against its reference at one rate."""

    @typechecked
    def __init__(self, fs: int):
        """Initialize the scorer.

        Args:
            fs: Sample rate of the signals it will score.
        """
        self.fs = fs
        self.mel = MelSpectrogramLoss(fs=fs, **MEL_PARAMS)
        self.mrstft = MultiResolutionSTFTDistance()
        # ESPnet's Stft pads by reflection, which needs more than n_fft / 2 samples.
        self.min_mel_samples = MEL_PARAMS["n_fft"] // 2 + 1

    @torch.no_grad()
    def __call__(
        self, ref: np.ndarray, hyp: np.ndarray, utt_id: str = ""
    ) -> Dict[str, float]:
        """Score ``hyp`` against ``ref`` (1-D, at ``fs``); see ``METRICS``.

        ``hyp`` is trimmed or zero-padded to the length of ``ref`` first.
        """
        ref = np.asarray(ref, dtype=np.float64)
        hyp = match_length(ref, np.asarray(hyp, dtype=np.float64), utt_id)
        r, h = torch.from_numpy(ref).float(), torch.from_numpy(hyp).float()
        if len(ref) < self.min_mel_samples:
            reason = f"shorter than {self.min_mel_samples} samples"
            mel = _undefined(utt_id, "mel_distance", reason)
        else:
            mel = float(self.mel(h[None, None], r[None, None]))
        return dict(
            mel_distance=mel,
            mrstft_distance=float(self.mrstft(h, r)),
            si_snr=si_snr(ref, hyp, utt_id),
            pesq=pesq_wb(ref, hyp, self.fs, utt_id),
            stoi=stoi(ref, hyp, self.fs, utt_id),
        )
