"""Residual VQ whose frozen codebooks come from k-means of SSL features.

Codebook file format (written by the k-means stage, read here): a NumPy ``.npz``
archive with

* ``codebooks``: float32 array ``(n_q, codebook_size, codebook_dim)``; layer
  ``k`` holds the k-means centres of the residuals left by layers ``< k``;
* ``source`` (optional): a string naming the features, e.g.
  ``"wav2vec2+beats"`` or ``"logmel-fallback"``;
* ``num_speech`` (optional): how many entries of each layer come from speech
  features (the rest from general-sound features).

The codebooks are buffers: saved in the model file, never seen by an optimizer.
Learnable linear layers map the encoder space into the codebook space and back.
Since those maps absorb any per-dimension shift and scale, the file's centres
are used in standardized coordinates (``standardize``): raw SSL or log-mel
centres sit far from the origin at a scale unrelated to the encoder's, where
every vector the encoder can produce at first is nearest to one entry.

The projected encoder vectors are standardized too, per dimension over the
batch's valid tokens in training (batch normalization without affine terms;
running statistics in evaluation and whenever codes are asked for), so they
keep layer 1's unit spread whatever the encoder does. Without it the
commitment loss is cheapest when every token sits on one entry: a tiny stage 2
trained with ESPnet let its encoder's spread across tokens fall to a fifth and
used 1-2 codes per layer from then on.

Per-dimension standardization does not decorrelate: stage-1 frames keep 61 %
of their variance in one direction and 98 % in four (loudness, mostly), and so
did the projected vectors, which then reached 11-16 of 2048 entries of layer 1
on held-out speech. ``whiten_input`` whitens the encoder vectors (running ZCA,
like the standardization above) before ``in_proj``, so every direction the
encoder varies in counts in the nearest-entry search.

Eleven bits per layer cannot describe a vector that varies in many directions
at once: a Gaussian in d dimensions keeps a share 2^(-22/d) of its variance
after the nearest of 2048 entries, 0.89 for d = 128. So it went: with 384-dim
codebooks and a whitened 128-dim encoder, each layer removed 7 % of what was
left, and the decoder saw a fifth of the encoder's variance (the commitment
loss stayed at 0.9). ``pca_dim`` keeps the codebooks' top principal directions
(of layer 1's centres, so the semantic prior's main structure stays): in 16
dimensions one layer leaves 0.39 and three layers 0.06.

Frozen codebooks fix where the prior's units lie, not which unit a token
lands on. ``to_search_space`` maps the features the centres came from into the
search space as the centres were mapped (``prior_space``), for the semantic
distillation loss (``semantic_distillation.py``).

For ablations the codebooks can instead be trainable parameters
(``trainable_codebooks: true``), initialised from the file or at random
(``codebook_init: random``); they then learn through a VQ-VAE codebook loss.
That loss moves only the entries tokens land on: of layer 1's 2048 entries,
held-out English reached 742 (perplexity 151). ``dead_code_threshold`` moves
the others, as EnCodec and ESPnet's own quantizers do: an entry whose running
count of uses per batch falls below the threshold is replaced by a residual
the layer quantized in this batch, so it sits where the encoder's vectors are.

Greedy residual search (each layer takes the entry nearest what the layers
before it left) does not find the codes whose sum is nearest the vector.
``beam_size`` keeps that many partial code paths per vector from layer to
layer (``residual_search``): the same bits, less distortion. On the shipped
small16k model, 16 paths cut the share of variance lost from 8.8 % to 7.4 %.
"""

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from espnet_almtok.model.initialization import init_variance_preserving
from espnet_almtok.utils.atomic import atomic_path


@typechecked
def save_codebooks(
    path: Union[str, Path],
    codebooks: np.ndarray,
    source: str,
    num_speech: int,
):
    """Write a codebook file (atomically: a partial file never has the name)."""
    path = Path(path)
    if codebooks.ndim != 3:
        raise ValueError(f"codebooks must be (n_q, size, dim), got {codebooks.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            codebooks=codebooks.astype(np.float32),
            source=np.array(source),
            num_speech=np.array(num_speech),
        )


@typechecked
def load_codebooks(
    path: Union[str, Path], n_q: int, codebook_size: int, codebook_dim: int
) -> Tuple[torch.Tensor, Dict[str, str]]:
    """Read and validate a codebook file.

    Returns:
        The codebooks (n_q, codebook_size, codebook_dim) and the file's metadata.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is unreadable or its shape does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codebook file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:
        raise ValueError(f"codebook file {path} is not a readable .npz: {e}") from e
    if "codebooks" not in arrays:
        raise ValueError(f"codebook file {path} has no 'codebooks' array")
    books = arrays["codebooks"]
    expected = (n_q, codebook_size, codebook_dim)
    if books.shape != expected:
        raise ValueError(
            f"codebook file {path} holds codebooks of shape {tuple(books.shape)}, "
            f"but the config asks for (n_q, codebook_size, codebook_dim) = {expected}"
        )
    if not np.isfinite(books).all():
        raise ValueError(f"codebook file {path} contains NaN or infinite values")
    meta = {k: str(v) for k, v in arrays.items() if k != "codebooks"}
    return torch.from_numpy(books.astype(np.float32)), meta


def prior_space(
    layer1: torch.Tensor, pca_dim: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The affine map ``x @ weight + bias`` of feature vectors into the search
    space that ``layer1``'s centres (size, dim) define.

    Per-dimension standardization by the centres' statistics, then, with
    ``pca_dim``, their top principal directions, standardized again: layer 1
    becomes white there. Residual centres take the linear part alone (see
    ``to_prior_space``).
    """
    std = layer1.std(0).clamp(min=1e-5)
    weight, bias = torch.diag(1 / std), -layer1.mean(0) / std
    if pca_dim is not None:
        z = layer1 @ weight + bias
        basis = torch.linalg.svd(z - z.mean(0), full_matrices=False)[2][:pca_dim].t()
        weight, bias = weight @ basis, bias @ basis
        y = layer1 @ weight + bias
        scale = y.std(0).clamp(min=1e-5)
        weight, bias = weight / scale, (bias - y.mean(0)) / scale
    return weight, bias


def to_prior_space(
    books: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Residual codebooks (n_q, size, dim) in a ``prior_space``: layer 1 holds
    centres of the features (the whole map), deeper layers centres of residuals
    (already near zero: the linear part only, so they keep their scale relative
    to layer 1)."""
    out = books @ weight
    out[0] += bias
    return out


def standardize(books: torch.Tensor) -> torch.Tensor:
    """Residual codebooks centred and scaled by their first layer's statistics:
    the same nearest-entry structure up to the learnable in/out projections, at
    the unit scale of the encoder's normalised output."""
    return to_prior_space(books, *prior_space(books[0]))


def fold_in(
    mean: torch.Tensor, spread: torch.Tensor, x: torch.Tensor, momentum: float
) -> None:
    """Fold the (n, d) vectors ``x`` into a running mean and variance (``spread``
    of shape (d,)) or covariance ((d, d)), in place.

    The batch's own spread plus its mean's distance from the running mean: a
    batch of chunks from few recordings varies less than the data (ESPnet's
    chunk iterator made held-out spreads 15 times the average batch's), and
    the running value must be the data's.
    """
    if x.size(0) < 2:
        return
    mean.lerp_(x.mean(0), momentum)
    centred = x - mean
    if spread.dim() == 1:
        spread.lerp_(centred.pow(2).mean(0), momentum)
    else:
        spread.lerp_(centred.t() @ centred / x.size(0), momentum)


CODEBOOK_INITS = ("kmeans", "random", "model_file")


def residual_search(
    x: torch.Tensor, books: torch.Tensor, beam_size: int
) -> torch.Tensor:
    """Residual VQ codes of vectors by beam search.

    Args:
        x: Vectors (M, dim).
        books: Codebooks (n_q, codebook_size, dim).
        beam_size: Partial code paths kept per vector after each layer; 1 is
            the greedy search (each layer's nearest entry).

    Returns:
        Codes (n_q, M): of the paths kept after the last layer, the one whose
        entries sum nearest the vector.
    """
    dim = x.size(-1)
    residual = x[:, None]  # (M, paths, dim)
    codes = x.new_zeros(x.size(0), 1, 0, dtype=torch.long)
    for book in books:
        # Squared distance to each entry: the squared norm of the residual
        # that choosing it leaves.
        dist = (
            residual.pow(2).sum(-1, keepdim=True)
            - 2 * residual @ book.t()
            + book.pow(2).sum(-1)
        )
        per_path = min(beam_size, book.size(0))
        dist, entry = dist.topk(per_path, dim=-1, largest=False)
        paths = min(beam_size, dist.size(1) * per_path)
        keep = dist.flatten(1).topk(paths, largest=False)[1]
        path, entry = keep // per_path, entry.flatten(1).gather(1, keep)
        residual = residual.gather(1, path[..., None].expand(-1, -1, dim)) - book[entry]
        codes = torch.cat(
            [
                codes.gather(1, path[..., None].expand(-1, -1, codes.size(2))),
                entry[..., None],
            ],
            dim=-1,
        )
    return codes[:, 0].t()  # topk sorts: path 0 is the nearest


class SemanticPriorRVQ(nn.Module):
    """Residual vector quantizer with frozen (by default) codebooks.

    Args:
        dim: Encoder width.
        n_q: Number of residual layers.
        codebook_size: Entries per layer.
        codebook_dim: Width of the codebook (SSL feature) space, as in the file.
        pca_dim: Keep only this many principal directions of the codebooks
            (see the module docstring); None keeps all ``codebook_dim``.
        codebook_file: Path of the k-means codebook file (see module docstring),
            read when ``codebook_init`` is ``kmeans``.
        codebook_init: ``kmeans`` (the semantic prior, from ``codebook_file``),
            ``random`` (standard-normal entries, no prior) or ``model_file``
            (a packaged model's: unset until its state dict fills them).
        trainable_codebooks: Make the codebooks parameters that learn through
            a VQ-VAE codebook loss (added to the commitment loss) instead of
            frozen buffers. An ablation: the method keeps the prior frozen.
        random_codebooks_for_debugging: Shorthand for ``codebook_init: random``
            with frozen codebooks. Only for tests and debugging: the result has
            no semantic prior.
        input_norm_momentum: Momentum of the running statistics that
            standardize projected encoder vectors at inference.
        whiten_input: Whiten the encoder vectors before ``in_proj`` by their
            running mean and covariance (see the module docstring).
        whiten_eps: Added to the covariance's eigenvalues, as a share of their
            median: directions with much less variance than most are damped,
            not blown up to unit scale.
        running_stats: Standardize by running statistics of the data in
            training too (each batch folded in first, see ``fold_in``), so
            training codes as inference does. Batch statistics assume batches
            that vary like the data; ESPnet's chunk iterator fills one with
            chunks of few recordings, and held-out vectors came out at 3.8
            times the training scale, off the entries training had used.
        dead_code_threshold: With trainable codebooks, replace an entry whose
            running count of uses per training batch falls below this by a
            residual of the current batch (0: never; see the module docstring).
        usage_decay: Decay of that running count per batch. Counts start at
            1, so a new or replaced entry is kept for at least
            log(threshold) / log(decay) batches.
        beam_size: Code paths kept per vector by the residual search, in
            training and coding (1: greedy; see ``residual_search``).
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        n_q: int = 3,
        codebook_size: int = 2048,
        codebook_dim: int = 768,
        codebook_file: Optional[str] = None,
        pca_dim: Optional[int] = None,
        codebook_init: str = "kmeans",
        trainable_codebooks: bool = False,
        random_codebooks_for_debugging: bool = False,
        input_norm_momentum: float = 0.01,
        whiten_input: bool = False,
        whiten_eps: float = 0.1,
        running_stats: bool = False,
        dead_code_threshold: float = 0.0,
        usage_decay: float = 0.99,
        beam_size: int = 1,
    ):
        super().__init__()
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.beam_size = beam_size
        if dead_code_threshold > 0 and not trainable_codebooks:
            raise ValueError(
                "dead_code_threshold moves codebook entries: it needs "
                "trainable_codebooks: true (frozen codebooks keep the prior)"
            )
        if not 0 < usage_decay < 1:
            raise ValueError(f"usage_decay must lie in (0, 1), got {usage_decay}")
        self.unset_codebooks = None
        # Width of the nearest-entry search (and of the stored codebooks).
        search_dim = pca_dim or codebook_dim
        prior_map = (None, None)
        if pca_dim is not None and not 0 < pca_dim <= codebook_dim:
            raise ValueError(
                f"pca_dim must lie in [1, codebook_dim = {codebook_dim}], got {pca_dim}"
            )
        if codebook_init not in CODEBOOK_INITS:
            raise ValueError(
                f"unknown codebook_init '{codebook_init}'; expected one of "
                f"{', '.join(CODEBOOK_INITS)}"
            )
        if codebook_file is not None and random_codebooks_for_debugging:
            raise ValueError(
                "give either codebook_file or random_codebooks_for_debugging"
            )
        if random_codebooks_for_debugging:
            codebook_init = "random"
        if codebook_init != "kmeans" and codebook_file is not None:
            raise ValueError(
                f"codebook_init: {codebook_init} takes no codebook_file; "
                "use codebook_init: kmeans to read it"
            )
        if codebook_init == "random":
            if trainable_codebooks:
                logging.info("Trainable codebooks, random init (no semantic prior)")
            else:
                logging.warning(
                    "Using RANDOM codebooks (debugging only, no semantic prior)"
                )
            books = torch.randn(n_q, codebook_size, search_dim)
        elif codebook_file is not None and Path(codebook_file).exists():
            books, meta = load_codebooks(
                codebook_file, n_q, codebook_size, codebook_dim
            )
            prior_map = prior_space(books[0], pca_dim)
            books = to_prior_space(books, *prior_map)
            logging.info(
                f"Loaded semantic-prior codebooks from {codebook_file}: {meta}"
            )
        elif codebook_file is not None or codebook_init == "model_file":
            # A trained model file carries the codebooks: building it elsewhere
            # (e.g. ESPnet's AudioCoding) must not need the k-means file. NaN
            # marks them unset until a state dict fills them; using them unset
            # is an error that says where they should have come from.
            books = torch.full((n_q, codebook_size, search_dim), float("nan"))
            self.unset_codebooks = (
                f"codebook file {codebook_file} does not exist and no model file"
                if codebook_file is not None
                else "codebook_init is model_file, but no model file"
            )
        else:
            raise ValueError(
                "the quantizer needs codebook_file (written by the k-means stage); "
                "codebook_init: random is an ablation, and "
                "random_codebooks_for_debugging: true exists for tests only"
            )
        # Same state-dict key either way, so model files stay interchangeable.
        if trainable_codebooks:
            self.codebooks = nn.Parameter(books)
        else:
            self.register_buffer("codebooks", books)
        # The file's feature space into the search space, for semantic
        # distillation; known only where the file was read, and never saved.
        self.register_buffer("prior_weight", prior_map[0], persistent=False)
        self.register_buffer("prior_bias", prior_map[1], persistent=False)
        self.trainable_codebooks = trainable_codebooks
        self.n_q = n_q
        self.codebook_size = codebook_size
        self.in_proj = init_variance_preserving(nn.Linear(dim, search_dim))
        self.input_norm = nn.BatchNorm1d(search_dim, affine=False)
        self.input_norm_momentum = input_norm_momentum
        self.out_proj = init_variance_preserving(nn.Linear(search_dim, dim))
        self.whiten_input = whiten_input
        self.running_stats = running_stats
        self.whiten_eps = whiten_eps
        if whiten_input:
            self.register_buffer("whiten_mean", torch.zeros(dim))
            self.register_buffer("whiten_cov", torch.eye(dim))
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay
        if dead_code_threshold > 0:
            # Only then: model files without replacement keep their keys.
            self.register_buffer("usage", torch.ones(n_q, codebook_size))

    def _check_loaded(self):
        # Checked until a state dict has filled the codebooks, then never again:
        # the NaN test syncs with the GPU, which a training step should not do.
        if self.unset_codebooks is None:
            return
        if torch.isnan(self.codebooks).any():
            raise FileNotFoundError(f"{self.unset_codebooks} supplied the codebooks")
        self.unset_codebooks = None

    def project(
        self, h: torch.Tensor, valid: torch.Tensor, batch_stats: bool
    ) -> torch.Tensor:
        """Encoder vectors (B, N, dim) in standardized codebook space.

        Args:
            h: Encoder vectors.
            valid: Bool (B, N), True at real (not padded) positions.
            batch_stats: Standardize by the valid positions' statistics and
                track them (training), or by the running statistics (coding).
        """
        norm = self.input_norm
        momentum = 0.0
        if batch_stats:
            norm.num_batches_tracked += 1
            # Plain averages over the first batches, exponential ones after:
            # the running statistics never keep their arbitrary initial values.
            seen = int(norm.num_batches_tracked)
            momentum = max(self.input_norm_momentum, 1.0 / seen)
        if self.whiten_input:
            h = self.whiten(h, valid, momentum)
        z = self.in_proj(h)
        out = torch.zeros_like(z)
        if self.running_stats and momentum > 0:
            with torch.no_grad():
                fold_in(norm.running_mean, norm.running_var, z[valid], momentum)
        # running_stats: the batch is already folded in; code by the running
        # statistics, as inference will.
        out[valid] = F.batch_norm(
            z[valid],
            norm.running_mean,
            norm.running_var,
            training=batch_stats and not self.running_stats,
            momentum=momentum,
            eps=norm.eps,
        )
        return out

    def whiten(
        self, h: torch.Tensor, valid: torch.Tensor, momentum: float
    ) -> torch.Tensor:
        """ZCA-whiten (B, N, dim) vectors by the running statistics, first
        folding the valid ones in with ``momentum`` (0: leave them as they are).

        The statistics carry no gradient: the encoder learns through the fixed
        transform of this step, as through an evaluation-mode batch norm.
        """
        if momentum > 0:
            with torch.no_grad():
                fold_in(self.whiten_mean, self.whiten_cov, h[valid], momentum)
        cov = self.whiten_cov
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp(min=0)
        # The median, not the mean: one loud direction must not set the floor.
        evals = evals + self.whiten_eps * evals.median() + 1e-12
        transform = (evecs * evals.rsqrt()) @ evecs.t()
        return (h - self.whiten_mean) @ transform

    def quantize(
        self,
        h: torch.Tensor,
        valid: Optional[torch.Tensor] = None,
        batch_stats: bool = False,
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Residual nearest-entry search.

        Args:
            h: Encoder vectors (B, N, dim).
            valid: Bool (B, N), True at real positions (default: all).
            batch_stats: See ``project``.

        Returns:
            Codes (n_q, B, N), and per layer the residual it quantized and the
            chosen entries (each (B, N, codebook_dim)).
        """
        self._check_loaded()
        if valid is None:
            valid = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        residual = self.project(h, valid, batch_stats)
        with torch.no_grad():
            codes = residual_search(
                residual.flatten(0, 1), self.codebooks, self.beam_size
            ).view(self.n_q, *residual.shape[:2])
        pairs = []
        for book, idx in zip(self.codebooks, codes):
            q = book[idx]
            pairs.append((residual, q))
            residual = residual - q.detach()
        return codes, pairs

    def forward(
        self, h: torch.Tensor, valid: torch.Tensor
    ) -> Tuple[
        torch.Tensor, torch.Tensor, List[torch.Tensor], torch.Tensor, List[torch.Tensor]
    ]:
        """Quantize with a straight-through estimator.

        Args:
            h: Encoder vectors (B, N, dim).
            valid: Bool (B, N), True at real (not padded) positions.

        Returns:
            quantized (B, N, dim) in encoder space, codes (n_q, B, N),
            per-layer quantized vectors in codebook space (n_q x (B, N, codebook_dim)),
            the commitment loss (mean over valid positions and layers), plus
            the codebook loss when the codebooks train, and the residual each
            layer quantized (n_q x (B, N, codebook_dim)).
        """
        codes, pairs = self.quantize(h, valid, batch_stats=self.training)
        residuals = [r for r, _ in pairs]
        if self.training and self.dead_code_threshold > 0:
            self.replace_dead_codes(codes, residuals, valid)
        weight = valid.unsqueeze(-1).to(h.dtype)
        denom = weight.sum().clamp(min=1) * self.codebooks.size(-1)
        commit = sum(((r - q.detach()).pow(2) * weight).sum() for r, q in pairs) / denom
        if self.trainable_codebooks:
            # VQ-VAE codebook loss: the only gradient the codebooks get (the
            # straight-through path below bypasses them).
            commit = (
                commit
                + sum(((r.detach() - q).pow(2) * weight).sum() for r, q in pairs)
                / denom
            )
        layers = [r + (q - r).detach() for r, q in pairs]
        z_q = torch.stack(layers).sum(0)
        return self.out_proj(z_q), codes, layers, commit / self.n_q, residuals

    @torch.no_grad()
    def replace_dead_codes(
        self, codes: torch.Tensor, residuals: List[torch.Tensor], valid: torch.Tensor
    ) -> None:
        """Count this batch's uses of each entry into ``usage`` and move the
        entries below ``dead_code_threshold`` onto residuals of the batch.

        Only entries the batch did not choose move, so its codes and codebook
        loss stay those of the entries they chose. With several processes,
        counts are summed over them and rank 0's replacements are broadcast,
        so the codebooks stay identical.
        """
        distributed = dist.is_available() and dist.is_initialized()
        for k in range(self.n_q):
            counts = torch.bincount(codes[k][valid], minlength=self.codebook_size)
            counts = counts.to(self.usage.dtype)
            if distributed:
                dist.all_reduce(counts)
            self.usage[k].mul_(self.usage_decay).add_(
                counts, alpha=1 - self.usage_decay
            )
            # Only entries this batch did not choose: its codes stay valid.
            dead = (self.usage[k] < self.dead_code_threshold) & (counts == 0)
            dead = dead.nonzero().squeeze(1)
            if dead.numel() == 0:  # the same on every rank: usage is summed
                continue
            samples = residuals[k][valid]
            # At most one entry per residual: no two entries start equal.
            dead = dead[torch.randperm(dead.numel(), device=dead.device)]
            dead = dead[: samples.size(0)]
            pick = torch.randperm(samples.size(0), device=samples.device)
            self.codebooks.data[k, dead] = samples[pick[: dead.numel()]].to(
                self.codebooks.dtype
            )
            self.usage[k, dead] = 1.0
            if distributed:
                dist.broadcast(self.codebooks.data[k], 0)
                dist.broadcast(self.usage[k], 0)

    def to_search_space(self, features: torch.Tensor) -> torch.Tensor:
        """Features in the codebook file's space (..., codebook_dim) mapped as
        its layer-1 centres were (see ``prior_space``)."""
        if self.prior_weight is None:
            raise ValueError(
                "semantic distillation needs the k-means codebook file's space: "
                "give quantizer_params.codebook_file (codebook_init: kmeans), "
                "readable when the model is built"
            )
        return features @ self.prior_weight + self.prior_bias

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Codes (n_q, B, N) of encoder vectors (B, N, dim).

        Coding always standardizes by the running statistics, in training mode
        too (ESPnet's CodecTokenizer, for one, never calls ``eval()``): each
        token's code depends on that token alone.
        """
        return self.quantize(h)[0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Encoder-space vectors (B, N, dim) of codes (n_q, B, N)."""
        if codes.dim() != 3 or codes.size(0) != self.n_q:
            raise ValueError(
                f"codes must have shape (n_q={self.n_q}, B, N), "
                f"got {tuple(codes.shape)}"
            )
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        self._check_loaded()
        z_q = sum(self.codebooks[k][codes[k]] for k in range(self.n_q))
        return self.out_proj(z_q)
