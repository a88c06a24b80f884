"""ALMTokenizer as an ESPnet GAN codec (``codec: almtokenizer``)."""

from typing import Any, Dict, List, Optional, Tuple

import torch
from typeguard import typechecked

from espnet_almtok.model.gan_codec import (
    ADV_LOSS_DEFAULTS,
    FEAT_MATCH_DEFAULTS,
    MEL_LOSS_DEFAULTS,
    GANCodec,
    as_mono_batch,
    check_lengths,
    refuse_unknown,
)
from espnet_almtok.model.generator import ALMTokenizerGenerator, check_window
from espnet_almtok.utils.config_check import build_checked
from espnet_almtok.utils.rates import chunk_samples

# Long inputs are coded in chunks of this many seconds by default: attention
# spans the whole input, so the chunk bounds memory. Typical utterances fit in
# one chunk and are coded exactly as whole files.
DEFAULT_CHUNK_SECONDS = 30.0


class ALMTokenizer(GANCodec):
    """Query-based, semantically rich low-bitrate audio codec.

    Args:
        sampling_rate: Audio sampling rate.
        generator_params: ``ALMTokenizerGenerator`` arguments.
        discriminator_params, generator_adv_loss_params,
        discriminator_adv_loss_params, feat_match_loss_params,
        mel_loss_params, cache_generator_outputs, adversarial_start_step,
        dither, content_loss_params, random_gain_db, random_lowpass_hz,
        random_lowpass_share: See ``GANCodec``.
        lambda_adv, lambda_feat_match, lambda_mel, lambda_commit,
        lambda_semantic, lambda_semantic_relation, lambda_mae, lambda_ar,
        lambda_content: Loss weights (``semantic`` and ``semantic_relation``
            apply with ``generator_params.semantic_distillation_params``,
            ``content`` with ``content_loss_params``).
        chunk_seconds: The chunk length of ``encode_chunked`` and
            ``decode_chunked`` (and so of codec inference) unless they are
            given one; 0: whole inputs. The query transformers' absolute
            positions reach only as far as the training chunks: a small16k
            model trained on 0.8 s chunks coded whole clips at 3.8 times the
            training scale in the quantizer (STOI 0.522 against 0.557 in 0.8 s
            chunks).
        chunk_context_seconds: Audio (for encoding) and tokens (for
            decoding) that each chunk sees on either side of the part it keeps,
            rounded down to whole tokens: chunks overlap, each token is still
            coded once (the bitrate is unchanged), and decoded chunks are
            cross-faded over twice this. 0: chunks side by side, each coded
            on its own.
        input_level_dbfs: Encoding first scales each input so that its RMS
            over its valid samples is this level (dBFS), one the model was
            trained at. The tokens carry no level, so decoding gives speech
            at this level; ``inference`` and codec inference's resynthesis
            scale it back to the input's (``input_gains``). None: code inputs
            at their own level. Coded at their own level, held-out prompts
            10 dB below their recorded level lost more of their words (capped
            Whisper dWER 0.627 against 0.568 on 551 clips); at -18 dBFS,
            0.560.
        max_input_gain_db: The largest gain that ``input_level_dbfs`` may
            apply, so that near-silent inputs are not raised to speech level.
    """

    @typechecked
    def __init__(
        self,
        sampling_rate: int = 24000,
        generator_params: Dict[str, Any] = {},
        discriminator_params: Dict[str, Any] = {},
        generator_adv_loss_params: Dict[str, Any] = ADV_LOSS_DEFAULTS,
        discriminator_adv_loss_params: Dict[str, Any] = ADV_LOSS_DEFAULTS,
        feat_match_loss_params: Dict[str, Any] = FEAT_MATCH_DEFAULTS,
        mel_loss_params: Dict[str, Any] = MEL_LOSS_DEFAULTS,
        lambda_adv: float = 1.0,
        lambda_feat_match: float = 2.0,
        lambda_mel: float = 45.0,
        lambda_commit: float = 1.0,
        lambda_semantic: float = 1.0,
        lambda_semantic_relation: float = 1.0,
        lambda_mae: float = 1.0,
        lambda_ar: float = 1.0,
        lambda_content: float = 1.0,
        cache_generator_outputs: bool = True,
        adversarial_start_step: int = 0,
        dither: float = 0.0,
        content_loss_params: Optional[Dict[str, Any]] = None,
        random_gain_db: Optional[List[float]] = None,
        random_lowpass_hz: Optional[List[float]] = None,
        random_lowpass_share: float = 0.5,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        chunk_context_seconds: float = 0.0,
        input_level_dbfs: Optional[float] = None,
        max_input_gain_db: float = 30.0,
    ):
        super().__init__(
            sampling_rate,
            discriminator_params,
            generator_adv_loss_params,
            discriminator_adv_loss_params,
            feat_match_loss_params,
            mel_loss_params,
            dict(
                adv=lambda_adv,
                feat_match=lambda_feat_match,
                mel=lambda_mel,
                commit=lambda_commit,
                semantic=lambda_semantic,
                semantic_relation=lambda_semantic_relation,
                mae=lambda_mae,
                ar=lambda_ar,
                content=lambda_content,
            ),
            cache_generator_outputs,
            adversarial_start_step,
            dither,
            content_loss_params,
            random_gain_db,
            random_lowpass_hz,
            random_lowpass_share,
        )
        if chunk_seconds < 0:
            raise ValueError(f"chunk_seconds must be >= 0, got {chunk_seconds}")
        self.chunk_seconds = chunk_seconds
        if chunk_context_seconds < 0:
            raise ValueError(
                f"chunk_context_seconds must be >= 0, got {chunk_context_seconds}"
            )
        self.chunk_context_seconds = chunk_context_seconds
        self.input_level_dbfs = input_level_dbfs
        self.max_input_gain_db = max_input_gain_db
        self.generator = build_checked(
            ALMTokenizerGenerator,
            generator_params,
            "codec_conf.generator_params",
            sampling_rate=sampling_rate,
        )

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

    def run_generator(self, x: torch.Tensor):
        """Code at a window drawn for this step, or at the inference window in
        validation, so that validation losses compare across steps."""
        w = self.generator.draw_window() if self.training else self.window()
        return self.generator(x, w)

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
        x = as_mono_batch(x)
        check_lengths(x_lengths)
        x = x * self.input_gains(x, x_lengths)[:, None, None]
        return self.generator.encode(x, x_lengths, self.window(window_size))

    def input_gains(
        self, x: torch.Tensor, x_lengths: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """The gain (B,) by which encoding scales each input: to
        ``input_level_dbfs`` (at most ``max_input_gain_db``), or 1 without it.

        Args:
            x: Audio (T,), (B, T) or (B, 1, T), zero-padded past each length.
            x_lengths: (B,) valid samples per item (default: all).
        """
        x = as_mono_batch(x)
        if self.input_level_dbfs is None:
            return x.new_ones(x.size(0))
        if x_lengths is None:
            x_lengths = torch.full((x.size(0),), x.size(-1), device=x.device)
        # Padding is zeros: the sum over all samples is the sum over valid ones.
        power = x.pow(2).sum((1, 2)) / x_lengths.to(x.device).clamp(min=1)
        gain = 10 ** (self.input_level_dbfs / 20) / power.sqrt()
        return gain.clamp(max=10 ** (self.max_input_gain_db / 20))

    def encode(
        self,
        x: torch.Tensor,
        x_lengths: Optional[torch.Tensor] = None,
        window_size: Optional[int] = None,
        **kwargs,
    ) -> torch.Tensor:
        """Codes (n_q, B, N); see ``encode_with_lengths``."""
        refuse_unknown(kwargs, "ALMTokenizer.encode")
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
        refuse_unknown(kwargs, "ALMTokenizer.decode")
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
        refuse_unknown(kwargs, "ALMTokenizer.inference")
        codes = self.encode(x, window_size=window_size)
        wav = self.decode(codes, window_size=window_size)[..., : x.size(-1)]
        wav = wav / self.input_gains(x)[:, None, None]
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

    def chunk_tokens(self, chunk_seconds: float, w: int) -> Tuple[int, int]:
        """Tokens per chunk and of context on either side of what it keeps.

        Raises:
            ValueError: If the context is more than a quarter of the chunk.
        """
        unit = self.generator.hop * w
        tokens = self.chunk_samples(chunk_seconds, w) // unit
        context = self.chunk_samples(self.chunk_context_seconds, w) // unit
        if 4 * context > tokens:
            raise ValueError(
                f"chunk_context_seconds {self.chunk_context_seconds} is more than a "
                f"quarter of the {chunk_seconds} s chunks ({tokens} tokens)"
            )
        return tokens, context

    def chunk_windows(self, n: int, chunk_seconds: float, w: int):
        """The chunks of ``n`` tokens: (kept, seen) token ranges.

        Each chunk keeps the tokens of ``kept`` and sees those of ``seen``:
        ``chunk_context_seconds`` of tokens on either side of ``kept`` where the
        input has them, ``chunk_samples(chunk_seconds)`` in all at most. Without
        context the two are the same, chunks side by side.
        """
        tokens, context = self.chunk_tokens(chunk_seconds, w)
        step = tokens - 2 * context
        for start in range(0, n, step):
            seen = max(0, start - context)
            yield range(start, min(start + step, n)), range(seen, min(seen + tokens, n))

    def encode_chunked(
        self,
        x: torch.Tensor,
        x_lengths: Optional[torch.Tensor] = None,
        window_size: Optional[int] = None,
        chunk_seconds: Optional[float] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch chunk by chunk, with memory bounded by the chunk.

        Each chunk of ``chunk_samples(chunk_seconds)`` samples is encoded on its
        own (see ``chunk_windows``), so its tokens never depend on the audio more
        than ``chunk_context_seconds`` after it (nor before it), but for the one
        gain of ``input_level_dbfs``, set by the whole input. A chunk is a whole
        number of tokens: an item gets the same number of tokens as from
        ``encode_with_lengths``.

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
        chunk_seconds = self._chunk(chunk_seconds)
        size = self.chunk_samples(chunk_seconds, w)
        x = as_mono_batch(x)
        if size == 0 or x.size(-1) <= size:  # one chunk: the whole input
            return self.encode_with_lengths(x, x_lengths, w)
        check_lengths(x_lengths)
        # One gain for the whole input, as without chunks.
        x = x * self.input_gains(x, x_lengths)[:, None, None]
        if x_lengths is None:
            x_lengths = torch.full((x.size(0),), x.size(-1))
        lengths = x_lengths.to(x.device).long()
        unit = self.generator.hop * w
        n_tokens = -(-lengths // unit)
        tokens = size // unit
        codes = None
        for kept, seen in self.chunk_windows(int(n_tokens.max()), chunk_seconds, w):
            # An item no longer than a chunk is one chunk, as if coded alone.
            first = kept.start == 0
            items = (n_tokens > (0 if first else max(kept.start, tokens))).nonzero()
            items = items[:, 0]
            left = (lengths[items] - seen.start * unit).clamp(max=len(seen) * unit)
            c, _ = self.generator.encode(
                x[items, :, seen.start * unit : seen.stop * unit], left, w
            )
            if codes is None:
                codes = c.new_zeros(c.size(0), x.size(0), int(n_tokens.max()))
            if not first:  # the first chunk's later tokens are overwritten
                c = c[:, :, kept.start - seen.start : kept.stop - seen.start]
            codes[:, items, kept.start : kept.start + c.size(2)] = c
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
        ``chunk_seconds``. Without ``chunk_context_seconds`` each is decoded on
        its own, so decoding chunked codes gives what decoding each chunk alone
        gives; with it, each chunk's tokens are decoded with their context and
        neighbouring chunks are cross-faded (linearly) over twice the context
        around the point where one's kept tokens end and the next's begin.

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
        chunk_seconds = self._chunk(chunk_seconds)
        unit = self.generator.hop * w
        tokens = self.chunk_samples(chunk_seconds, w) // unit
        if tokens == 0 or codes.size(2) <= tokens:  # one chunk: all tokens
            return self.decode(codes, w, code_lengths)
        if code_lengths is None:
            code_lengths = torch.full((codes.size(1),), codes.size(2))
        lengths = code_lengths.to(codes.device).long()
        n = int(lengths.max())
        fade = self.chunk_tokens(chunk_seconds, w)[1] * unit
        whole = lengths <= tokens
        wav = None
        for kept, seen in self.chunk_windows(n, chunk_seconds, w):
            # The samples this chunk gives to: its kept tokens and, but at the
            # input's ends, the cross-fades into its neighbours. An item no
            # longer than a chunk is one chunk, as if decoded alone.
            first = kept.start == 0
            head = kept.start * unit - (0 if first else fade)
            tail = min(kept.stop * unit + fade, n * unit)
            items = ((lengths * unit > head) & (first | ~whole)).nonzero()[:, 0]
            left = (lengths[items] - seen.start).clamp(max=len(seen))
            part = self.decode(codes[:, items, seen.start : seen.stop], w, left)
            if wav is None:
                wav = part.new_zeros(codes.size(1), 1, codes.size(2) * unit)
            if first:
                wav[items[whole[items]], :, : part.size(-1)] = part[whole[items]]
                items, part = items[~whole[items]], part[~whole[items]]
            part = part[..., head - seen.start * unit : tail - seen.start * unit]
            if fade:
                t = torch.arange(head, tail, device=part.device) + 0.5
                if not first:
                    part = part * ((t - head) / (2 * fade)).clamp(max=1)
                if kept.stop < n:
                    fall = (kept.stop * unit + fade - t) / (2 * fade)
                    part = part * fall.clamp(max=1)
            wav[items, :, head:tail] += part
        return wav
