"""ALMTokenizer generator: patchify, query encoder, RVQ, query decoder, unpatchify.

``training_stage: 1`` builds the stage-1 autoencoder (patchify + unpatchify, plus
an MAE transformer on the patchify frames, and no quantizer); ``training_stage:
2`` builds the full tokenizer. Stage 2 loads patchify/unpatchify from stage 1
with ESPnet's ``--init_param`` and freezes patchify with ``--freeze_param``.

``compression: strided`` swaps the query encoder/decoder for strided pooling at
a fixed window (``strided.py``), an ablation of query-based compression.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.ar_predictor import ARPredictor
from espnet_almtok.model.mae import MAEDecoder
from espnet_almtok.model.patchify import build_patchify
from espnet_almtok.model.query_transformer import QueryDecoder, QueryEncoder
from espnet_almtok.model.semantic_distillation import SemanticDistillation
from espnet_almtok.model.semantic_encoder import SemanticEncoder
from espnet_almtok.model.semantic_input import SemanticInput
from espnet_almtok.model.semantic_prior import SemanticPriorRVQ
from espnet_almtok.model.strided import StridedDecoder, StridedEncoder
from espnet_almtok.model.transformer import TransformerStack, length_mask
from espnet_almtok.utils.config_check import build_checked

# Window encoder/decoder classes of each compression kind.
COMPRESSIONS = {
    "query": (QueryEncoder, QueryDecoder),
    "strided": (StridedEncoder, StridedDecoder),
}


def check_window(w: int, where: str) -> int:
    if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
        raise ValueError(f"{where}: window sizes must be positive integers, got {w!r}")
    return w


class ALMTokenizerGenerator(nn.Module):
    """Everything the generator optimizer trains, MAE and AR heads included.

    Args:
        training_stage: 1 (autoencoder + MAE, no quantizer) or 2 (full model).
        dim: Width of frames, tokens and transformers.
        patchify_kind: ``mel`` (log-mel and a patch embedding), ``conv``
            (SEANet) or ``linear``.
        patchify_params: Arguments of the patchify kind (see ``patchify.py``).
        unpatchify_kind: ``istft`` (Vocos decoder) or None (the decoder of
            ``patchify_kind``).
        unpatchify_params: Arguments of the ``istft`` decoder.
        encoder_params: Query (or strided) encoder settings (``num_layers``,
            ``num_heads``, ``ff_dim``, ``dropout``).
        decoder_params: Query (or strided) decoder settings, as
            ``encoder_params``.
        quantizer_params: ``SemanticPriorRVQ`` settings (``n_q``,
            ``codebook_size``, ``codebook_dim``, ``codebook_file``, ...).
        mae_params: ``MAEDecoder`` settings; ``null`` disables the MAE loss.
        stage1_mae_encoder_params: Transformer settings of the stage-1 MAE
            encoder (thrown away after stage 1).
        ar_params: ``ARPredictor`` settings; ``null`` disables the AR loss.
        semantic_teacher_params: ``SemanticEncoder`` settings (``kind``,
            ``checkpoint``, ``window_seconds``, ...; stage 2): a frozen teacher,
            for ``semantic_input_params`` and ``semantic_distillation_params``.
            Its weights never enter the model file.
        semantic_input_params: ``SemanticInput`` settings (``{}`` for the
            defaults): the teacher's frames are added to the query encoder's
            input (``semantic_input.py``), at inference too. ``null``: not.
        semantic_distillation_params: ``SemanticDistillation`` settings
            (``source``, ``target``, ``time_relation``, ``head``, ...): layer
            1's tokens learn to predict the teacher's frames averaged over each
            window, or their low frames in LoSATok's semantic bottleneck (the
            ``semantic`` loss), and/or to keep their time relations (the
            ``semantic_relation`` loss; ``semantic_distillation.py``). With
            ``target: teacher`` the teacher must give the features the codebook
            file's k-means ran on. ``null``: no such loss.
        window_sizes: Window sizes drawn from, one per training step.
        inference_window: Window size used when none is given at inference.
        compression: ``query`` (the method: query tokens over the whole
            context) or ``strided`` (ablation: a strided conv pools each window;
            needs ``window_sizes: [inference_window]``).
        sampling_rate: Audio sampling rate (the codec sets it).
    """

    # Children that only train (losses), not part of the codec path.
    TRAINING_ONLY = ("mae", "mae_encoder", "ar", "semantic_distillation")

    @typechecked
    def __init__(
        self,
        training_stage: int = 2,
        dim: int = 512,
        patchify_kind: str = "conv",
        patchify_params: Optional[Dict[str, Any]] = None,
        unpatchify_kind: Optional[str] = None,
        unpatchify_params: Optional[Dict[str, Any]] = None,
        encoder_params: Optional[Dict[str, Any]] = None,
        decoder_params: Optional[Dict[str, Any]] = None,
        quantizer_params: Optional[Dict[str, Any]] = None,
        mae_params: Optional[Dict[str, Any]] = {},
        stage1_mae_encoder_params: Optional[Dict[str, Any]] = None,
        ar_params: Optional[Dict[str, Any]] = {},
        semantic_teacher_params: Optional[Dict[str, Any]] = None,
        semantic_input_params: Optional[Dict[str, Any]] = None,
        semantic_distillation_params: Optional[Dict[str, Any]] = None,
        window_sizes: List[int] = [2, 3, 4, 6, 8],
        inference_window: int = 4,
        compression: str = "query",
        sampling_rate: int = 24000,
    ):
        super().__init__()
        if training_stage not in (1, 2):
            raise ValueError(f"training_stage must be 1 or 2, got {training_stage}")
        if not window_sizes:
            raise ValueError("window_sizes must not be empty")
        self.window_sizes = [check_window(w, "window_sizes") for w in window_sizes]
        self.inference_window = check_window(inference_window, "inference_window")
        self.training_stage = training_stage
        self.sampling_rate = sampling_rate
        if compression not in COMPRESSIONS:
            raise ValueError(
                f"unknown compression '{compression}'; expected one of "
                f"{', '.join(COMPRESSIONS)}"
            )
        self.compression = compression

        self.patchify, self.unpatchify = build_patchify(
            patchify_kind,
            dim,
            patchify_params,
            unpatchify_kind,
            unpatchify_params,
            sampling_rate,
        )
        self.hop = self.patchify.hop
        self.mae = None
        if mae_params is not None:
            self.mae = build_checked(MAEDecoder, mae_params, "mae_params", dim=dim)
        self.semantic_teacher = None
        self.semantic_input = None
        self.semantic_distillation = None
        # The teacher is not a module: its weights stay out of the state dict.
        self.semantic_teacher_params = semantic_teacher_params
        users = {
            "semantic_input_params": semantic_input_params,
            "semantic_distillation_params": semantic_distillation_params,
        }
        if training_stage == 1 and semantic_teacher_params is not None:
            raise ValueError(
                "semantic_teacher_params is a stage-2 setting: stage 1 has no "
                "query encoder and no quantizer"
            )
        if semantic_teacher_params is None:
            for name, params in users.items():
                if params is not None:
                    raise ValueError(f"{name} needs semantic_teacher_params")
        elif all(params is None for params in users.values()):
            raise ValueError(
                "semantic_teacher_params is set but nothing uses the teacher: give "
                "semantic_input_params and/or semantic_distillation_params"
            )
        if training_stage == 1:
            if self.mae is not None:
                self.mae_encoder = build_checked(
                    TransformerStack,
                    stage1_mae_encoder_params,
                    "stage1_mae_encoder_params",
                    dim=dim,
                )
            return

        encoder_cls, decoder_cls = COMPRESSIONS[compression]
        fixed = {"dim": dim}
        if compression == "strided":
            if set(self.window_sizes) != {self.inference_window}:
                raise ValueError(
                    "compression: strided pools a fixed window: window_sizes must "
                    f"be [inference_window] = [{self.inference_window}], "
                    f"got {self.window_sizes}"
                )
            fixed["window"] = self.inference_window
        # Attribute names follow the kind (query_encoder, strided_encoder, ...):
        # a model file of one kind never loads silently into the other.
        setattr(
            self,
            f"{compression}_encoder",
            build_checked(encoder_cls, encoder_params, "encoder_params", **fixed),
        )
        self.quantizer = build_checked(
            SemanticPriorRVQ, quantizer_params, "quantizer_params", dim=dim
        )
        setattr(
            self,
            f"{compression}_decoder",
            build_checked(decoder_cls, decoder_params, "decoder_params", **fixed),
        )
        if semantic_input_params is not None:
            # Coding needs the teacher (and its width) from the start.
            self.semantic_input = build_checked(
                SemanticInput,
                semantic_input_params,
                "semantic_input_params",
                teacher_dim=self.teacher().dim,
                dim=dim,
            )
        if semantic_distillation_params is not None:
            # The teacher is built here only when its width is needed.
            wide = SemanticDistillation.needs_teacher_dim(semantic_distillation_params)
            self.semantic_distillation = build_checked(
                SemanticDistillation,
                semantic_distillation_params,
                "semantic_distillation_params",
                dim=self.quantizer.codebooks.size(-1),
                teacher_dim=self.teacher().dim if wide else None,
            )
        self.ar = None
        if ar_params is not None:
            self.ar = build_checked(
                ARPredictor,
                ar_params,
                "ar_params",
                codebook_dim=self.quantizer.codebooks.size(-1),
                n_q=self.quantizer.n_q,
            )

    @property
    def window_encoder(self) -> nn.Module:
        """Frames (B, N * w, dim) to one vector per window (B, N, dim)."""
        return getattr(self, f"{self.compression}_encoder")

    @property
    def window_decoder(self) -> nn.Module:
        """One vector per window (B, N, dim) to frames (B, N * w, dim)."""
        return getattr(self, f"{self.compression}_decoder")

    def draw_window(self) -> int:
        """Draw this step's window size from the configured set."""
        i = torch.randint(len(self.window_sizes), ()).item()
        return self.window_sizes[i]

    def pad(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor], w: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Zero everything past each item's length and pad to whole windows.

        Args:
            x: (B, 1, L) waveforms.
            lengths: (B,) valid samples per item (None: all L).
            w: Window size.

        Returns:
            The padded waveforms (B, 1, N * w * hop) and the number of
            windows of each item, ``ceil(length / (hop * w))``.
        """
        if lengths is None:
            lengths = torch.full((x.size(0),), x.size(-1), device=x.device)
        lengths = lengths.to(x.device).long()
        unit = self.hop * w
        num_windows = (lengths + unit - 1) // unit
        total = int(num_windows.max()) * unit
        x = x[..., :total] * ~length_mask(lengths, min(total, x.size(-1)))[:, None]
        return F.pad(x, (0, total - x.size(-1))), num_windows

    def _require_quantizer(self):
        if self.training_stage == 1:
            raise RuntimeError(
                "this is a stage-1 autoencoder: it has no quantizer and no tokens; "
                "train stage 2 (training_stage: 2) to encode or decode"
            )

    def encode(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor], w: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Codes (n_q, B, N) and tokens per item (B,) of (B, 1, L) waveforms."""
        self._require_quantizer()
        x, num_windows = self.pad(x, lengths, w)
        e = self.patchify(x, num_windows * w)
        teacher = None if self.semantic_input is None else self.teacher()(x, lengths)
        e = self.encoder_input(self.to_units(e), teacher)
        h, _ = self.window_encoder(e, num_windows, w)
        return self.quantizer.encode(h), num_windows

    def decode(
        self, codes: torch.Tensor, w: int, code_lengths: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Waveforms (B, 1, N * w * hop) of codes (n_q, B, N)."""
        self._require_quantizer()
        if code_lengths is None:
            code_lengths = torch.full((codes.size(1),), codes.size(2))
        code_lengths = code_lengths.to(codes.device)
        z = self.quantizer.decode(codes)
        frames = self.from_units(self.window_decoder(z, code_lengths, w))
        return self.unpatchify(frames, code_lengths * w)

    def to_units(self, e: torch.Tensor) -> torch.Tensor:
        """Patchify frames in the transformers' units (see ``FrameRMS``)."""
        return e / self.patchify.frame_rms.scale()

    def from_units(self, frames: torch.Tensor) -> torch.Tensor:
        """Transformer outputs back at the scale UnPatchify was trained on."""
        return frames * self.patchify.frame_rms.scale()

    def teacher(self) -> SemanticEncoder:
        """The frozen semantic teacher, built at its first use."""
        if self.semantic_teacher is None:
            self.semantic_teacher = build_checked(
                SemanticEncoder,
                self.semantic_teacher_params,
                "semantic_teacher_params",
                sampling_rate=self.sampling_rate,
                hop=self.hop,
            )
        return self.semantic_teacher

    def encoder_input(
        self, e: torch.Tensor, teacher: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Patchify frames (B, T, dim, in the transformers' units) as the window
        encoder reads them: with semantic input, plus the teacher's frames
        (B, T, teacher dim)."""
        return e if self.semantic_input is None else e + self.semantic_input(teacher)

    def to_search_space(self, frames: torch.Tensor) -> torch.Tensor:
        """Teacher frames (..., dim) in the codebooks' search space."""
        prior = self.quantizer.prior_weight
        if prior is not None and prior.size(0) != frames.size(-1):
            raise ValueError(
                f"semantic_teacher_params: the teacher gives {frames.size(-1)}-dim "
                f"frames, the codebook file holds {prior.size(0)}-dim centres: "
                "the teacher must give the features the k-means stage ran on"
            )
        return self.quantizer.to_search_space(frames)

    def _mae_loss(
        self,
        e: torch.Tensor,
        num_windows: torch.Tensor,
        w: int,
        inputs: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Mask frames of the encoder's input (default: ``e``), encode them
        (window encoder, or stage 1's own), predict ``e``."""
        frame_lengths = num_windows * w
        masked_e, masked = self.mae.mask_frames(
            e if inputs is None else inputs, frame_lengths
        )
        if self.training_stage == 1:
            encoded = self.mae_encoder(masked_e, length_mask(frame_lengths, e.size(1)))
        else:
            encoded = self.window_encoder(masked_e, num_windows, w)[1]
        return self.mae.loss(encoded, e, masked, frame_lengths)

    def forward(
        self, x: torch.Tensor, w: int
    ) -> Tuple[torch.Tensor, Dict, Optional[torch.Tensor]]:
        """Training pass on equal-length (B, 1, L) waveforms.

        Returns:
            The reconstruction (B, 1, L), a dict of auxiliary losses
            (``commit``, ``semantic``, ``mae``, ``ar``; those that apply) and the codes
            (n_q, B, N) (None in stage 1).
        """
        length = x.size(-1)
        if self.training_stage == 1:
            w = 1
        x, num_windows = self.pad(x, None, w)
        frame_lengths = num_windows * w
        e = self.patchify(x, frame_lengths)
        losses = {}
        if self.training_stage == 1:
            audio_hat = self.unpatchify(e, frame_lengths)
            if self.mae is not None:
                losses["mae"] = self._mae_loss(self.to_units(e), num_windows, w)
            return audio_hat[..., :length], losses, None

        teacher = None
        if self.semantic_teacher_params is not None:
            # Distillation alone lets short chunks share the teacher's windows
            # (see SemanticEncoder); semantic input codes each clip alone.
            # The true length, as encode gives it: padding is no audio.
            lengths = torch.full((x.size(0),), length)
            teacher = self.teacher()(x, lengths, pack=self.semantic_input is None)
        e = self.to_units(e)
        inputs = self.encoder_input(e, teacher)
        h, _ = self.window_encoder(inputs, num_windows, w)
        valid = ~length_mask(num_windows, h.size(1))
        z_q, codes, layers, losses["commit"], residuals = self.quantizer(h, valid)
        distill = self.semantic_distillation
        if distill is not None:
            # The teacher's frames averaged over each token's window.
            per_token = teacher.reshape(teacher.size(0), -1, w, teacher.size(-1))
            per_token = per_token.mean(2)
            tokens = {"quantized": layers[0], "input": residuals[0]}[distill.source]
            if distill.target is not None:
                target = distill.targets(per_token, self.to_search_space)
                losses["semantic"] = distill(tokens, target, valid)
            if distill.time_relation:
                losses["semantic_relation"] = distill.relation(tokens, per_token, valid)
        frames = self.from_units(self.window_decoder(z_q, num_windows, w))
        audio_hat = self.unpatchify(frames, frame_lengths)
        if self.mae is not None:
            losses["mae"] = self._mae_loss(e, num_windows, w, inputs)
        if self.ar is not None:
            losses["ar"] = self.ar(layers, valid)
        return audio_hat[..., :length], losses, codes
