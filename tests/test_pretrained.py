"""Packaged models: packaging, loading from anywhere, resynthesis, and the
shipped model's quality on held-out real speech (the regression guard)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import TINY, codec_conf

from espnet_almtok.bin.resynth import main as resynth_main
from espnet_almtok.pretrained import (
    MODEL_FILE,
    load_codec,
    model_paths,
    package,
    resynthesize,
)

HELD_OUT = Path(__file__).parent / "data" / "held_out"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An ESPnet config.yaml and full model file (discriminator included)."""
    from espnet2.tasks.gan_codec import GANCodecTask

    from espnet_almtok import registration

    registration.install()
    path = tmp_path_factory.mktemp("trained")
    args = GANCodecTask.get_parser().parse_args([])
    vars(args).update(yaml.safe_load(TINY[2].read_text()))
    args.codec_conf = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    torch.manual_seed(0)
    torch.save(GANCodecTask.build_model(args).state_dict(), path / "model.pth")
    (path / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    return path


def test_package_keeps_what_inference_needs(trained, tmp_path, speechlike):
    out = tmp_path / "pkg"
    model = package(trained / "config.yaml", trained / "model.pth", out)
    full = torch.load(trained / "model.pth")
    kept = torch.load(model)
    assert any(k.startswith("codec.discriminator.") for k in full)
    assert not any(
        k.startswith(("codec.discriminator.", "codec.mel_loss.")) for k in kept
    )
    assert not any(".generator.mae" in k or ".generator.ar." in k for k in kept)
    assert model.stat().st_size < (trained / "model.pth").stat().st_size
    # Loaded from another directory, the packaged model codes as the full one.
    x = speechlike(16000)[None]
    codecs = [
        load_codec(d / "config.yaml", "cpu", model_file=str(d / f)).eval()
        for d, f in ((trained, "model.pth"), (out, MODEL_FILE))
    ]
    with torch.no_grad():
        codes = [c.encode(x) for c in codecs]
        assert torch.equal(codes[0], codes[1])
        assert torch.equal(codecs[0].decode(codes[0]), codecs[1].decode(codes[1]))


def test_resynth_cli_writes_the_input_length(trained, tmp_path, speechlike):
    out = tmp_path / "pkg"
    package(trained / "config.yaml", trained / "model.pth", out)
    # Stereo at 22.05 kHz: downmixed and resampled to the model's 16 kHz.
    wav = np.stack([speechlike(22050).numpy()] * 2, 1)
    sf.write(tmp_path / "in.wav", wav, 22050)
    resynth_main(
        [str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]
        + ["--model_dir", str(out)]
    )
    y, fs = sf.read(tmp_path / "out.wav")
    assert fs == 16000 and len(y) == 16000 and np.abs(y).max() > 0


def test_bad_model_dir_and_bad_input_are_named(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.yaml or model.pth"):
        model_paths(tmp_path)
    out = tmp_path / "pkg"
    package(trained / "config.yaml", trained / "model.pth", out)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.wav"):
        resynthesize(tmp_path / "empty.wav", tmp_path / "o.wav", out)
    assert not (tmp_path / "o.wav").exists()
