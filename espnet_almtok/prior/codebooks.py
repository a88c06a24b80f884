"""Learn the frozen semantic-prior RVQ codebooks by residual k-means.

Reads the features written by ``espnet_almtok.bin.extract_features`` (speech,
and optionally general sound), learns ``n_q`` residual codebooks of
``codebook_size`` entries (``num_speech`` from speech features, the rest from
sound features; see ``espnet_almtok.prior.kmeans``) and writes:

* ``--out`` (``.npz``, see ``espnet_almtok.model.semantic_prior``): ``codebooks``
  ``(n_q, codebook_size, dim)``, ``source`` and ``num_speech``. ``source`` names
  the feature kinds from the ``info.json`` next to each scp, e.g.
  ``wav2vec2+beats``, or ``logmel-fallback`` for the offline fallback;
* ``<out stem>_stats.json``: per layer, the entries used, the largest and
  smallest cluster sizes and the perplexity of the code distribution, over
  all training frames quantized residually.

Both are written atomically, the codebook file last. Memory: k-means assigns
all frames to all entries at once, about ``3 x frames x codebook_size x 4``
bytes; ``--max_frames`` bounds it.

Example::

    python -m espnet_almtok.bin.learn_kmeans --speech_feats exp/feats/w2v/feats.scp \\
        --sound_feats exp/feats/beats/feats.scp --n_q 3 --codebook_size 2048 \\
        --max_frames 200000 --out exp/kmeans/codebooks.npz
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Dict, List

import kaldiio
import numpy as np

from espnet_almtok.model.semantic_prior import save_codebooks
from espnet_almtok.prior.kmeans import default_num_speech, residual_kmeans
from espnet_almtok.utils.atomic import atomic_path


def load_feats(scp: str, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    """All frames (N, dim) of a feats.scp, randomly subsampled to ``max_frames``."""
    arrays = [np.asarray(m, np.float32) for _, m in kaldiio.load_scp_sequential(scp)]
    if not arrays:
        raise ValueError(f"{scp} lists no features")
    feats = np.concatenate(arrays)
    if 0 < max_frames < len(feats):
        feats = feats[np.sort(rng.choice(len(feats), max_frames, replace=False))]
    logging.info(f"{scp}: {len(feats)} frames of dim {feats.shape[1]}")
    return feats


def feature_source(scps: List[str]) -> str:
    """``kind[-fallback]`` of each scp's ``info.json``, joined by ``+``."""
    names = []
    for scp in scps:
        info_path = Path(scp).parent / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(
                f"{info_path} does not exist: {scp} is not a complete output of "
                "espnet_almtok.bin.extract_features (or give --source)"
            )
        info = json.loads(info_path.read_text())
        name = info["kind"] + ("-fallback" if info["fallback"] else "")
        if name not in names:
            names.append(name)
    return "+".join(names)


def codebook_stats(usages: List[np.ndarray]) -> List[Dict]:
    """Per-layer statistics of how many frames each codebook entry took."""
    stats = []
    for k, sizes in enumerate(usages):
        p = sizes[sizes > 0] / sizes.sum()
        stats.append(
            {
                "layer": k + 1,
                "used": int((sizes > 0).sum()),
                "size": len(sizes),
                "max_cluster_size": int(sizes.max()),
                "min_cluster_size": int(sizes.min()),
                "perplexity": float(np.exp(-(p * np.log(p)).sum())),
            }
        )
    return stats


def learn(args: argparse.Namespace) -> None:
    """Learn the residual k-means codebooks and write them with their usage statistics.

    Args:
        args: The options of ``espnet_almtok.bin.learn_kmeans``.
    """
    if args.n_q < 1 or args.codebook_size < 1 or args.max_frames < 0:
        raise ValueError("--n_q and --codebook_size must be >= 1, --max_frames >= 0")
    scps = [args.speech_feats] + ([args.sound_feats] if args.sound_feats else [])
    source = args.source or feature_source(scps)
    if args.num_speech is None:
        args.num_speech = default_num_speech(args.codebook_size, bool(args.sound_feats))
    if not 1 <= args.num_speech <= args.codebook_size:
        raise ValueError(
            f"--num_speech must lie in [1, {args.codebook_size}], got {args.num_speech}"
        )

    rng = np.random.default_rng(args.seed)
    speech = load_feats(args.speech_feats, args.max_frames, rng)
    sound = (
        load_feats(args.sound_feats, args.max_frames, rng) if args.sound_feats else None
    )
    if sound is not None and sound.shape[1] != speech.shape[1]:
        raise ValueError(
            f"feature dims differ: {args.speech_feats} has dim {speech.shape[1]}, "
            f"{args.sound_feats} has dim {sound.shape[1]}; the codebook needs one"
        )
    if "fallback" in source:
        logging.warning(
            f"features are '{source}': the codebooks carry NO semantic prior"
        )
    books, usages = residual_kmeans(
        speech,
        sound,
        args.n_q,
        args.codebook_size,
        num_speech=args.num_speech,
        seed=args.seed,
        max_iter=args.max_iter,
    )
    stats = codebook_stats(usages)
    for s in stats:
        logging.info(
            f"layer {s['layer']}: {s['used']}/{s['size']} entries used, cluster "
            f"sizes {s['min_cluster_size']}..{s['max_cluster_size']}, "
            f"perplexity {s['perplexity']:.1f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats_json = {
        "source": source,
        "n_q": args.n_q,
        "codebook_size": args.codebook_size,
        "num_speech": args.num_speech,
        "dim": int(speech.shape[1]),
        "speech_frames": len(speech),
        "sound_frames": 0 if sound is None else len(sound),
        "layers": stats,
    }
    with atomic_path(out.with_name(out.stem + "_stats.json")) as tmp:
        tmp.write_text(json.dumps(stats_json, indent=2) + "\n")
    save_codebooks(out, books, source, args.num_speech)  # last: marks completion
    logging.info(f"wrote {out} ({source}, {books.shape})")
