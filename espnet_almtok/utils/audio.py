"""Reading audio files: mono float32 at a chosen rate, bad files refused by name."""

import logging
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16000


def load_audio(
    path: Union[str, Path], fs: int = SAMPLE_RATE, warn: bool = False
) -> torch.Tensor:
    """Read an audio file as a mono float32 waveform (samples,) at ``fs``.

    Multi-channel audio is averaged to mono (logged); other rates are resampled.

    Args:
        path: Audio file (anything soundfile reads).
        fs: Sample rate to return.
        warn: Log downmixing and resampling as warnings that name the file, for
            callers that expect mono input at ``fs`` (codec inference). Else
            only downmixing is logged, at info level: the data and feature
            tools convert rates on purpose.

    Raises:
        ValueError: The file cannot be read, holds no samples, or holds NaN or
            infinite samples.
    """
    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:  # soundfile's errors are RuntimeErrors
        raise ValueError(f"cannot read audio file {path}: {e}") from e
    if wav.size == 0:
        raise ValueError(f"audio file {path} is empty")
    if not np.isfinite(wav).all():
        raise ValueError(f"audio file {path} contains NaN or infinite samples")
    level = logging.WARNING if warn else logging.INFO
    if wav.shape[1] > 1:
        logging.log(level, f"{path}: {wav.shape[1]} channels, downmixed to mono")
    x = torch.from_numpy(wav.mean(1))
    if rate != fs:
        if warn:
            logging.warning(f"{path}: {rate} Hz, resampled to {fs} Hz")
        x = torchaudio.functional.resample(x, rate, fs)
    return x
