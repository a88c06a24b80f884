"""Codec tokens in ESPnet SpeechLM's layout.

ESPnet's SpeechLM (``CodecTokenizer``) stores the ``n_q`` codes of a token step
time-major in one sequence, each shifted into its own range:
``token = code + layer * code_size``, so the codec vocabulary has
``n_q * code_size`` entries and layer ``l`` owns ``[l * code_size, (l+1) * code_size)``.
These functions map between that layout and codes, and check token files against
the codec that will decode them (``codec_info.json``, written next to the tokens).
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np

from espnet_almtok.utils.atomic import atomic_path

INFO_KEYS = ("fs", "num_streams", "code_size", "frame_shift", "window_size")


def flatten(codes: np.ndarray, code_size: int) -> np.ndarray:
    """Codes (T, n_q) to SpeechLM tokens (T * n_q,) with per-layer offsets."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (T, n_q), got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= code_size):
        raise ValueError(
            f"codes out of range [0, {code_size}): min {codes.min()}, max {codes.max()}"
        )
    offsets = np.arange(codes.shape[1], dtype=np.int64) * code_size
    return (codes.astype(np.int64) + offsets).reshape(-1).astype(np.int32)


def unflatten(
    tokens: np.ndarray, num_streams: int, code_size: int, name: str = "tokens"
) -> np.ndarray:
    """SpeechLM tokens (T * n_q,) back to codes (T, n_q), checking every layer.

    Raises:
        ValueError: naming ``name``, if the length is not a multiple of
            ``num_streams`` or a token lies outside its layer's range (tokens of a
            codec with another codebook size or number of layers).
    """
    tokens = np.asarray(tokens).reshape(-1)
    if tokens.size % num_streams:
        raise ValueError(
            f"{name}: {tokens.size} tokens is not a multiple of the codec's "
            f"{num_streams} streams (tokens of a codec with another number of layers?)"
        )
    steps = tokens.reshape(-1, num_streams).astype(np.int64)
    codes = steps - np.arange(num_streams) * code_size
    bad = (codes < 0) | (codes >= code_size)
    if bad.any():
        t, layer = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: token {steps[t, layer]} at step {t} is outside layer {layer}'s "
            f"range [{layer * code_size}, {(layer + 1) * code_size}) "
            f"({num_streams} streams x {code_size} codes; tokens of another codec?)"
        )
    return codes


def token_list(num_streams: int, code_size: int) -> List[str]:
    """The codec vocabulary, one name per flattened token id."""
    return [
        f"<codec_layer{layer}_code{code}>"
        for layer in range(num_streams)
        for code in range(code_size)
    ]


def codec_info(meta: Dict[str, Any], window_size: int, model_file: str) -> dict:
    """What a token file depends on, from the codec's ``meta_info(window_size)``."""
    sizes = set(meta["code_size_per_stream"])
    if len(sizes) != 1:
        raise ValueError(f"SpeechLM needs one codebook size, got {sorted(sizes)}")
    return {
        "fs": int(meta["fs"]),
        "num_streams": int(meta["num_streams"]),
        "code_size": sizes.pop(),
        "frame_shift": int(meta["frame_shift"]),
        "window_size": int(window_size),
        "model_file": str(model_file),
    }


def write_info(path: Union[str, Path], info: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2) + "\n")


def read_info(path: Union[str, Path]) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: codec tokens must come with the codec_info.json "
            "written by espnet_almtok.bin.speechlm_dump"
        )
    info = json.loads(path.read_text())
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    return info


def check_info(info: dict, expected: dict, where: str) -> None:
    """Refuse tokens made by a codec that differs from ``expected``.

    Raises:
        ValueError: naming ``where`` and every differing field (sample rate,
            streams, codebook size, frame shift, window).
    """
    diff = [
        f"{k} {info[k]} != {expected[k]}"
        for k in INFO_KEYS
        if int(info[k]) != int(expected[k])
    ]
    if diff:
        raise ValueError(
            f"{where}: the tokens were made by another codec setup than the one "
            f"given ({'; '.join(diff)})"
        )
