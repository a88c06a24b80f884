"""Tiny stage-1 and stage-2 training and inference through ESPnet's stock CLIs."""

import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from conftest import ROOT, TINY
from espnet2.fileio.npy_scp import NpyScpReader

from espnet_almtok.kmeans import residual_kmeans
from espnet_almtok.semantic_prior import save_codebooks

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "flite"], capture_output=True).returncode != 0
    or subprocess.run(["which", "sox"], capture_output=True).returncode != 0,
    reason="flite and sox are needed (tools/setup.sh installs them)",
)


def make_data(cwd: Path):
    """The recipe's offline corpus, formatted to 16 kHz mono Kaldi dirs."""
    local = ROOT / "local"
    espnet(
        str(local / "synth_corpus.py"),
        "--out_dir",
        "raw",
        "--wav_dir",
        "raw/wav",
        "--num_train_sentences",
        "4",
        "--num_sounds_per_kind",
        "3",
        cwd=cwd,
    )
    for split in ("train", "dev", "test_speech"):
        espnet(
            str(local / "format_data.py"),
            f"raw/{split}",
            f"data/{split}",
            "--fs",
            "16000",
            cwd=cwd,
        )


def espnet(module: str, *args: str, cwd: Path):
    cmd = [sys.executable, *(["-m", module] if "/" not in module else [module]), *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}"
    return proc


def train(stage: int, cwd: Path, *extra: str):
    return espnet(
        "espnet2.bin.gan_codec_train",
        "--config",
        str(TINY[stage]),
        "--train_data_path_and_name_and_type",
        "data/train/wav.scp,audio,sound",
        "--valid_data_path_and_name_and_type",
        "data/dev/wav.scp,audio,sound",
        "--train_shape_file",
        "data/train/audio_shape",
        "--valid_shape_file",
        "data/dev/audio_shape",
        "--output_dir",
        f"exp/stage{stage}",
        "--ngpu",
        "0",
        *extra,
        cwd=cwd,
    )


def logmel_codebooks(cwd: Path) -> np.ndarray:
    """The offline fallback prior: residual k-means of 40-bin log-mel frames."""
    mel = torchaudio.transforms.MelSpectrogram(
        16000, n_fft=1024, hop_length=320, n_mels=40
    )
    feats = []
    for line in (cwd / "data/train/wav.scp").read_text().splitlines():
        x, _ = sf.read(line.split()[1], dtype="float32")
        feats.append(torch.log(mel(torch.from_numpy(x)) + 1e-5).T.numpy())
    books = residual_kmeans(np.concatenate(feats), None, n_q=3, codebook_size=64)
    (cwd / "dump/kmeans").mkdir(parents=True)
    save_codebooks(cwd / "dump/kmeans/codebooks.npz", books, "logmel-fallback", 64)
    return books


def test_two_stage_training_and_stock_inference(tmp_path, monkeypatch):
    make_data(tmp_path)
    books = logmel_codebooks(tmp_path)
    train(1, tmp_path)
    stage1 = "exp/stage1/valid.mel_loss.best.pth"
    train(
        2,
        tmp_path,
        "--init_param",
        f"{stage1}:codec.generator.patchify:codec.generator.patchify",
        f"{stage1}:codec.generator.unpatchify:codec.generator.unpatchify",
        "--freeze_param",
        "codec.generator.patchify",
    )
    s1 = torch.load(tmp_path / "exp/stage1/latest.pth", map_location="cpu")
    s2 = torch.load(tmp_path / "exp/stage2/latest.pth", map_location="cpu")
    patchify = [k for k in s1 if k.startswith("codec.generator.patchify.")]
    assert patchify and all(torch.equal(s1[k], s2[k]) for k in patchify)
    assert torch.equal(
        s2["codec.generator.quantizer.codebooks"], torch.from_numpy(books)
    )
    # The stage-1 MAE encoder is not part of the stage-2 model.
    assert not any(k.startswith("codec.generator.mae_encoder") for k in s2)

    model = [
        "--train_config",
        "exp/stage2/config.yaml",
        "--model_file",
        "exp/stage2/latest.pth",
    ]
    data = ["--data_path_and_name_and_type", "data/test/wav.scp,audio,sound"]
    espnet(
        "espnet2.bin.gan_codec_inference",
        *model,
        *data,
        "--output_dir",
        "out",
        cwd=tmp_path,
    )
    espnet(
        "espnet_almtok.bin.codec_inference",
        *model,
        *data,
        "--output_dir",
        "out_w2",
        "--window_size",
        "2",
        cwd=tmp_path,
    )
    lengths = dict(
        line.split()
        for line in (tmp_path / "data/test/audio_shape").read_text().splitlines()
    )
    monkeypatch.chdir(tmp_path)  # the scp lists paths relative to the run dir
    for out, w in (("out", 4), ("out_w2", 2)):
        codes = NpyScpReader(f"{out}/codec/codec.scp")
        assert sorted(codes.keys()) == sorted(lengths)
        for utt, n in lengths.items():
            tokens = -(-int(n) // (320 * w))
            assert codes[utt].shape == (3, 1, tokens)
            wav, fs = sf.read(f"{out}/wav/{utt}.wav")
            assert fs == 16000 and len(wav) == tokens * 320 * w
