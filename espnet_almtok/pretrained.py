"""Trained models: loading one with ESPnet, packaging one, resynthesizing a file.

A packaged model is a directory ``<name>/`` with ``config.yaml`` (the training
config), ``model.pth`` (the generator's weights and the codebooks: the
discriminator and the training-only heads are left out) and ``README.md`` (the
model card). The repository ships one under ``pretrained/`` (``DEFAULT_MODEL``).
"""

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import soundfile as sf
import torch
import yaml
from torch import nn

from espnet_almtok.model.generator import ALMTokenizerGenerator
from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.audio import load_audio

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
DEFAULT_MODEL = PRETRAINED / "almtok_small16k_pkgaudio"
MODEL_FILE = "model.pth"
# State-dict prefixes that only training needs.
TRAINING_ONLY = ("codec.discriminator.", "codec.mel_loss.") + tuple(
    f"codec.generator.{child}." for child in ALMTokenizerGenerator.TRAINING_ONLY
)
# Codec settings that only training needs: the content loss would load Whisper
# (and need the [eval] extra) wherever the packaged model is used.
TRAINING_ONLY_CONF = ("content_loss_params",)

PathLike = Union[str, Path]


def load_codec(train_config: Optional[PathLike], device: str, **kwargs) -> nn.Module:
    """The codec of a trained model, loaded by ESPnet's ``AudioCoding``.

    Args:
        train_config: The model's ``config.yaml``.
        device: Torch device.
        **kwargs: More ``AudioCoding.from_pretrained`` arguments (``model_file``,
            ``model_tag``, ``dtype``, ...).
    """
    from espnet2.bin.gan_codec_inference import AudioCoding

    from espnet_almtok import registration

    registration.install()
    coder = AudioCoding.from_pretrained(
        train_config=None if train_config is None else str(train_config),
        device=device,
        **kwargs,
    )
    return coder.codec


def model_paths(model_dir: PathLike) -> Tuple[Path, Path]:
    """``config.yaml`` and ``model.pth`` of a packaged model, checked to exist."""
    model_dir = Path(model_dir)
    paths = model_dir / "config.yaml", model_dir / MODEL_FILE
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{model_dir} is not a packaged model: no {' or '.join(missing)}"
        )
    return paths


def package(train_config: PathLike, model_file: PathLike, out_dir: PathLike) -> Path:
    """Write ``config.yaml`` (without ``TRAINING_ONLY_CONF``; codebooks from the
    model file) and ``model.pth`` (inference weights only) to ``out_dir``; the
    model card is written by hand.

    Returns:
        The written model file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(Path(train_config).read_text(encoding="utf-8"))
    for key in TRAINING_ONLY_CONF:
        if config.get("codec_conf", {}).pop(key, None) is not None:
            logging.info(f"left out codec_conf.{key}: training only")
    quantizer = (
        config.get("codec_conf", {}).get("generator_params", {}).get("quantizer_params")
    )
    if quantizer is not None:
        # The model file carries the codebooks: not the k-means file, nor a
        # random init that the log would report.
        for key in ("codebook_file", "random_codebooks_for_debugging"):
            quantizer.pop(key, None)
        quantizer["codebook_init"] = "model_file"
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    kept = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY)}
    logging.info(f"kept {len(kept)} of {len(state)} tensors of {model_file}")
    with atomic_path(out_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        torch.save(kept, tmp)
    return out_dir / MODEL_FILE


def resynthesize(
    in_path: PathLike,
    out_path: PathLike,
    model_dir: PathLike = DEFAULT_MODEL,
    window_size: Optional[int] = None,
    device: str = "cpu",
) -> Dict[str, Any]:
    """Encode an audio file to tokens and decode them to ``out_path`` (wav).

    The input is read as codec inference reads it (mono, resampled to the
    model's rate, with a warning naming the file; unreadable, empty or NaN
    audio is refused). The output has the input's length at the model's rate.

    Returns:
        ``fs``, ``seconds``, ``tokens`` (token steps) and ``bitrate`` (bit/s).
    """
    from espnet_almtok.coding import ChunkedCoder

    config, model_file = model_paths(model_dir)
    codec = load_codec(config, device, model_file=str(model_file)).eval()
    coder = ChunkedCoder(codec, window_size)
    fs = coder.meta["fs"]
    wav = load_audio(in_path, fs, warn=True)
    lengths = torch.tensor([wav.numel()])
    with torch.no_grad():
        audio = wav[None].to(device)
        codes, tokens = coder.encode(audio, lengths)
        out = coder.decode(codes, tokens) / coder.input_gains(audio, lengths)
        out = out[0, 0, : wav.numel()].cpu().numpy()
    with atomic_path(out_path) as tmp:
        sf.write(tmp, out, fs, format="WAV")
    bits = sum(s.bit_length() - 1 for s in coder.meta["code_size_per_stream"])
    return dict(
        fs=fs,
        seconds=wav.numel() / fs,
        tokens=int(tokens[0]),
        bitrate=bits * fs / coder.unit,
    )
