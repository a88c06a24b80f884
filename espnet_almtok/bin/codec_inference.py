"""Encode/decode with ALMTokenizer through ESPnet's codec inference.

Same arguments as ``python -m espnet2.bin.gan_codec_inference``, plus
``--window_size``: the frames per token (the bitrate) to code at. The stock CLI
always codes at the window of the training config; here the window is written
into a copy of that config, so ESPnet's own loaders build the model.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from espnet_almtok import registration


def config_with_window(train_config: str, window_size: int, out_dir: str) -> str:
    """Copy ``train_config`` with ``inference_window`` set; return the copy's path."""
    with open(train_config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if config.get("codec") != registration.NAME:
        raise ValueError(
            f"{train_config}: --window_size applies to codec "
            f"'{registration.NAME}', not '{config.get('codec')}'"
        )
    gen = config.setdefault("codec_conf", {}).setdefault("generator_params", {})
    gen["inference_window"] = window_size
    path = Path(out_dir) / "config.yaml"
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    return str(path)


def main(cmd=None):
    registration.install()
    from espnet2.bin.gan_codec_inference import main as espnet_main

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--window_size", type=int, default=None)
    parser.add_argument("--train_config", type=str, default=None)
    args, rest = parser.parse_known_args(sys.argv[1:] if cmd is None else cmd)
    if args.window_size is None or args.train_config is None:
        if args.train_config is not None:
            rest += ["--train_config", args.train_config]
        return espnet_main(rest)
    with tempfile.TemporaryDirectory() as tmp:
        config = config_with_window(args.train_config, args.window_size, tmp)
        espnet_main(rest + ["--train_config", config])


if __name__ == "__main__":
    main()
