"""Parameter counts and nominal bitrate of codec training configs.

Builds each config's model with ESPnet's ``GANCodecTask`` (any registered codec:
``almtokenizer``, ``soundstream``, ``dac``, ...) and reports, per config:

* ``generator``, ``discriminator``: parameters (``nn.Parameter`` elements; the
  frozen semantic-prior codebooks and ESPnet's EMA codebooks are buffers and
  not counted) of the two networks the two optimizers train;
* ``training_only``: generator parts that only feed training losses (the
  ALMTokenizer MAE decoder, stage-1 MAE encoder and AR predictor, from the
  generator's ``TRAINING_ONLY``), by name;
* ``codec_path``: ``generator`` minus ``training_only``, the parameters used to
  encode and decode (frozen patchify included). Compare codecs on this count;
* ``meta_info``, ``bitrate`` (bit/s, ``espnet_almtok.utils.rates``) and
  ``tokens_per_second`` per stream, or ``null`` for a model without tokens
  (ALMTokenizer stage 1);
* with ``--reference``: ``codec_path_ratio`` to the reference config's
  ``codec_path`` and ``matched`` (ratio within ``1 +- --tolerance``).

A missing codebook file is no obstacle (see ``espnet_almtok.model.semantic_prior``).
The exit status is 1 when a config is not ``matched``.

Example::

    python -m espnet_almtok.bin.count_params \\
        --config conf/baselines/train_soundstream.yaml conf/baselines/train_dac.yaml \\
        --reference conf/train_almtok_stage2.yaml --out exp/params.json
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from torch import nn

from espnet_almtok import registration
from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.rates import bitrate


def build_codec(config: str, **overrides) -> nn.Module:
    """The codec of a config, built as ESPnet's trainer builds it.

    Takes training configs and the ``config.yaml`` a training run writes (whose
    extra keys the trainer's parser would refuse): the config's values replace
    the parser's defaults, as ``--config`` does, and ``overrides`` replace the
    config's, as command-line options do (e.g. ``codec="soundstream_he"``).
    """
    registration.install()
    from espnet2.tasks.gan_codec import GANCodecTask

    args = GANCodecTask.get_parser().parse_args([])
    vars(args).update({**yaml.safe_load(Path(config).read_text()), **overrides})
    return GANCodecTask.build_model(args).codec


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def codec_counts(codec: nn.Module) -> Dict[str, Any]:
    """Parameter counts and rates of a built codec (see the module docstring)."""
    gen = codec.generator
    training_only = {
        name: num_params(getattr(gen, name))
        for name in getattr(gen, "TRAINING_ONLY", ())
        if getattr(gen, name, None) is not None
    }
    try:
        meta = codec.meta_info()
    except RuntimeError:  # a stage-1 ALMTokenizer has no tokens
        meta = None
    return {
        "codec": type(codec).__name__,
        "generator": num_params(gen),
        "discriminator": num_params(codec.discriminator),
        "training_only": training_only,
        "codec_path": num_params(gen) - sum(training_only.values()),
        "meta_info": meta,
        # A continuous latent (LoSATok) has no bitrate.
        "bitrate": None if meta is None or meta.get("continuous") else bitrate(meta),
        "tokens_per_second": None if meta is None else meta["fs"] / meta["frame_shift"],
    }


def count_configs(
    configs: List[str], reference: Optional[str] = None, tolerance: float = 0.2
) -> Dict[str, Dict[str, Any]]:
    """``codec_counts`` of each config, compared with ``reference`` if given."""
    results = {c: codec_counts(build_codec(c)) for c in configs}
    if reference is not None:
        ref = results.get(reference) or codec_counts(build_codec(reference))
        for counts in results.values():
            ratio = counts["codec_path"] / ref["codec_path"]
            counts["codec_path_ratio"] = ratio
            counts["matched"] = abs(ratio - 1) <= tolerance
    return results


def report(args: argparse.Namespace) -> None:
    """Count the configs' parameters, print and write them; exit 1 on a mismatch.

    Args:
        args: The options of ``espnet_almtok.bin.count_params``.
    """
    results = count_configs(args.config, args.reference, args.tolerance)
    text = json.dumps(results, indent=2) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    if not all(c.get("matched", True) for c in results.values()):
        sys.exit(1)
