#!/usr/bin/env python3
"""How much of a codec's encoder output depends on its input. Writes JSON.

A codec whose encoder output is nearly the same for every input can only learn
one sound; that is how every early model here failed (README, "Training
health"), and how ESPnet's SoundStream and DAC collapsed in the small16k
benchmark. For each config, with its model's own init or, with ``--he``, also
after ``init_variance_preserving`` on the encoder (the init this project's codecs
use), or from a trained ``--model_file`` (with the run's ``config.yaml`` as
``--config``), reports on ``--clips`` clips of
``--wav_scp`` at the codec's rate, cut to ``--seconds``:

- ``signal_share``: variance of the encoder frames over clips and time, as a
  share of their mean square (0: a constant output; 1: no constant part);
- ``louder_change``: relative change of the frames for a 10 % louder input.

Example, from the real-audio recipe (``egs2/pkgaudio/almtok1``; ``S`` is
``../../../local/encoder_signal_share.py``)::

    python3 $S --wav_scp dump/raw/test_en/wav.scp --he \\
        --config conf/baselines/tuning/train_soundstream_small16k.yaml \\
        --config conf/baselines/tuning/train_dac_small16k.yaml --out share.json
    python3 $S --wav_scp dump/raw/test_en/wav.scp \\
        --config exp/bench_small16k/almtok_dac/stage2/config.yaml \\
        --model_file exp/bench_small16k/almtok_dac/stage2/latest.pth --out dac.json
"""

import argparse
import json
from typing import Dict, Optional

import torch
import yaml

from espnet_almtok.eval.params import build_codec
from espnet_almtok.model.initialization import init_variance_preserving
from espnet_almtok.speechlm.dump import load_codec
from espnet_almtok.utils.audio import load_audio


def signal_share(encoder: torch.nn.Module, wav: torch.Tensor) -> Dict[str, float]:
    """``signal_share`` and ``louder_change`` of ``encoder`` on ``wav`` (B, 1, T)."""
    with torch.no_grad():
        z, z_louder = encoder(wav), encoder(wav * 1.1)
    centred = z - z.mean((0, 2), keepdim=True)
    return dict(
        signal_share=float(centred.pow(2).mean() / z.pow(2).mean()),
        louder_change=float((z_louder - z).norm() / z.norm()),
    )


def encoder_of(config: str, model_file: Optional[str], he: bool) -> torch.nn.Module:
    """The config's generator encoder: initialised with seed 0, or loaded from
    ``model_file`` as ESPnet loads a codec (``config``: the run's config.yaml)."""
    torch.manual_seed(0)
    codec = load_codec(config, model_file, "cpu") if model_file else build_codec(config)
    encoder = codec.generator.encoder
    return init_variance_preserving(encoder) if he else encoder


def clips(wav_scp: str, num: int, seconds: float, fs: int) -> torch.Tensor:
    """The first ``num`` clips of ``wav_scp`` at least ``seconds`` long, cut to
    it, as a batch (num, 1, seconds * fs)."""
    length, batch = int(seconds * fs), []
    for line in open(wav_scp).read().splitlines():
        wav = load_audio(line.split(maxsplit=1)[1], fs)
        if len(wav) >= length:
            batch.append(wav[:length])
        if len(batch) == num:
            break
    return torch.stack(batch)[:, None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument(
        "--model_file", default=None, help="trained weights (one config)"
    )
    parser.add_argument("--wav_scp", required=True)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--he", action="store_true", help="also with the He init")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.model_file and len(args.config) != 1:
        parser.error("--model_file goes with one --config")
    results = {}
    for config in args.config:
        fs = yaml.safe_load(open(config))["codec_conf"]["sampling_rate"]
        batch = clips(args.wav_scp, args.clips, args.seconds, fs)
        inits = {"trained" if args.model_file else "own": False}
        if args.he and not args.model_file:
            inits["he"] = True
        results[config] = {
            name: signal_share(encoder_of(config, args.model_file, he), batch)
            for name, he in inits.items()
        }
        print(config, json.dumps(results[config]))
    with open(args.out, "w") as f:
        json.dump(
            dict(clips=len(batch), seconds=args.seconds, results=results), f, indent=2
        )


if __name__ == "__main__":
    main()
