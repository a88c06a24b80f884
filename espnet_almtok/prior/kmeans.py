"""Residual k-means: the semantic-prior codebooks of every RVQ layer.

Layer 1 holds the k-means centres of the features; layer ``k`` those of the
residuals left after quantizing with layers ``< k``. Each layer has
``num_speech`` centres learned on speech features and the rest on
general-sound features, so both kinds of audio find nearby entries.
"""

import logging
from typing import List, Optional, Tuple

import numpy as np
from sklearn.cluster import MiniBatchKMeans


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    dist = (x**2).sum(1, keepdims=True) - 2 * x @ centres.T + (centres**2).sum(1)
    return dist.argmin(1)


def default_num_speech(codebook_size: int, with_sound: bool) -> int:
    """Speech entries per layer: half with sound features, else all."""
    return codebook_size // 2 if with_sound else codebook_size


def residual_kmeans(
    speech: np.ndarray,
    sound: Optional[np.ndarray],
    n_q: int,
    codebook_size: int,
    num_speech: Optional[int] = None,
    seed: int = 0,
    max_iter: int = 100,
) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Learn (n_q, codebook_size, dim) residual codebooks.

    Args:
        speech: (N_speech, dim) speech features.
        sound: (N_sound, dim) general-sound features, or None to use speech only.
        n_q: Residual layers.
        codebook_size: Entries per layer.
        num_speech: Speech entries per layer (default: half, or all without sound).
        seed: k-means seed.
        max_iter: k-means iterations.

    Returns:
        The codebooks, and per layer how many frames each entry took (size,).
    """
    if num_speech is None:
        num_speech = default_num_speech(codebook_size, sound is not None)
    parts = [(speech, num_speech)]
    if codebook_size - num_speech > 0:
        if sound is None:
            raise ValueError(
                "sound features are needed for the sound half of the codebook"
            )
        parts.append((sound, codebook_size - num_speech))
    for feats, k in parts:
        if len(feats) < k:
            raise ValueError(
                f"{len(feats)} feature frames cannot give {k} k-means centres"
            )
    residuals = [f.astype(np.float32) for f, _ in parts]
    books, usages = [], []
    for layer in range(n_q):
        centres = []
        for res, (_, k) in zip(residuals, parts):
            km = MiniBatchKMeans(
                n_clusters=k, random_state=seed + layer, max_iter=max_iter, n_init=3
            ).fit(res)
            centres.append(km.cluster_centers_.astype(np.float32))
        book = np.concatenate(centres)
        assign = [_nearest(res, book) for res in residuals]
        usage = np.bincount(np.concatenate(assign), minlength=len(book))
        logging.info(
            f"k-means layer {layer + 1}/{n_q}: {int((usage > 0).sum())} of "
            f"{len(book)} centres used, largest cluster {usage.max()} frames"
        )
        residuals = [res - book[a] for res, a in zip(residuals, assign)]
        books.append(book)
        usages.append(usage)
    return np.stack(books), usages
