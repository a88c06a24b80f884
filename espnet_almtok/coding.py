"""Chunked coding of padded batches with any ESPnet GAN codec.

ALMTokenizer codes a padded batch at once (``encode_chunked``/``decode_chunked``).
ESPnet's other codecs (SoundStream, DAC, ...) take no lengths, so each item is
coded alone: padding never changes an item's tokens. So is LoSATok, whose
continuous latents (B, N, D) travel here in the codes' layout (D, B, N). Either
way a long input is coded in chunks of whole tokens, each on its own, so memory
is bounded by the chunk and a chunk's tokens never depend on the audio after it.
"""

from typing import Optional, Tuple

import torch
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.codec import DEFAULT_CHUNK_SECONDS, ALMTokenizer
from espnet_almtok.utils.rates import chunk_samples


class ChunkedCoder:
    """Encode and decode padded batches in chunks with one ESPnet codec.

    Args:
        codec: An ESPnet GAN codec (``AudioCoding(...).codec``), in eval mode.
        window_size: ALMTokenizer frames per token (default: its inference
            window). Other codecs have one fixed rate and refuse a window.
        chunk_seconds: Chunk length, rounded down to whole tokens; ``0`` codes
            each input whole (default: an ALMTokenizer's own ``chunk_seconds``,
            ``DEFAULT_CHUNK_SECONDS`` for other codecs).
    """

    @typechecked
    def __init__(
        self,
        codec: nn.Module,
        window_size: Optional[int] = None,
        chunk_seconds: Optional[float] = None,
    ):
        self.codec = codec
        self.native = isinstance(codec, ALMTokenizer)
        if self.native:
            self.window = codec.window(window_size)
            self.meta = codec.meta_info(self.window)
        elif window_size is not None:
            raise ValueError(
                f"{type(codec).__name__} has one token rate; --window_size is "
                "for ALMTokenizer models"
            )
        else:
            self.window = None
            self.meta = codec.meta_info()
        self.unit = self.meta["frame_shift"]
        self.continuous = bool(self.meta.get("continuous"))
        if chunk_seconds is None:
            chunk_seconds = (
                codec.chunk_seconds if self.native else DEFAULT_CHUNK_SECONDS
            )
        self.chunk_seconds = chunk_seconds
        self.chunk = chunk_samples(chunk_seconds, self.meta["fs"], self.unit)

    def encode(
        self, audio: torch.Tensor, lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Codes (n_q, B, N) of zero-padded audio (B, T), and tokens per item (B,).

        Latents of a continuous codec come as (D, B, N) floats.
        """
        if self.native:
            return self.codec.encode_chunked(
                audio, lengths, self.window, self.chunk_seconds
            )
        n_tokens = -(-lengths.long() // self.unit)
        items = [
            torch.cat([self._encode(x[None, None, s : s + size]) for s in starts], 2)
            for x, starts, size in self._chunks(audio, lengths)
        ]
        codes = items[0].new_zeros(items[0].size(0), len(items), int(n_tokens.max()))
        for i, c in enumerate(items):
            codes[:, i, : c.size(2)] = c[:, 0]
        return codes, n_tokens

    def input_gains(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The gain (B,) by which ``encode`` scales each item
        (``ALMTokenizer.input_gains``; 1 for other codecs): divide decoded
        audio by it to give it its input's level back."""
        if self.native:
            return self.codec.input_gains(audio, lengths)
        return audio.new_ones(audio.size(0))

    def decode(self, codes: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, 1, N * frame_shift) of codes (n_q, B, N)."""
        if self.native:
            return self.codec.decode_chunked(
                codes, self.window, n_tokens, self.chunk_seconds
            )
        wav = None
        tokens = self.chunk // self.unit or codes.size(2)
        for i, n in enumerate(n_tokens.tolist()):
            parts = [
                self._decode(codes[:, i : i + 1, s : min(s + tokens, n)])
                for s in range(0, n, tokens)
            ]
            item = torch.cat(parts, -1).reshape(-1)
            if wav is None:
                wav = item.new_zeros(codes.size(1), 1, codes.size(2) * self.unit)
            wav[i, 0, : item.numel()] = item
        return wav

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (n_q, 1, N) of one chunk (1, 1, L); latents as (D, 1, N)."""
        codes = self.codec.encode(x)
        return codes.permute(2, 0, 1) if self.continuous else codes

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        if self.continuous:
            codes = codes.permute(1, 2, 0)
        return self.codec.decode(codes)

    def _chunks(self, audio: torch.Tensor, lengths: torch.Tensor):
        """Each item's valid samples, its chunk starts and the chunk size."""
        for x, length in zip(audio, lengths.tolist()):
            size = self.chunk or length
            yield x[:length], range(0, length, size), size
