"""codec_inference with ESPnet's own codecs: a tiny SoundStream model file."""

import json
import logging
import math

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import ROOT
from test_long_input import listing, run_cli, write_scp

from espnet_almtok.eval.scoring import DECODE_KEYS
from espnet_almtok.utils.audio import load_audio

CONFIG = ROOT / "conf/baselines/tuning/train_soundstream_tiny.yaml"
FS = 16000
HOP = 1280  # samples per token of the tiny SoundStream
N_Q = 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An ESPnet config.yaml and model file of the tiny SoundStream."""
    from espnet2.tasks.gan_codec import GANCodecTask

    from espnet_almtok import registration

    registration.install()
    path = tmp_path_factory.mktemp("soundstream")
    args = GANCodecTask.get_parser().parse_args(["--config", str(CONFIG)])
    # k-means init leaves the codebooks all zero until a training step; random
    # ones make every test below see more than one token value.
    args.codec_conf["generator_params"]["quantizer_kmeans_init"] = False
    torch.manual_seed(0)
    torch.save(GANCodecTask.build_model(args).state_dict(), path / "model.pth")
    (path / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    return path


@pytest.fixture(scope="module")
def codec(model_dir):
    from espnet2.bin.gan_codec_inference import AudioCoding

    return AudioCoding(model_dir / "config.yaml", model_dir / "model.pth").codec


def read_codes(out):
    """(n_q, T) codes of each key of a codec_inference output dir."""
    return {
        k: v.reshape(-1, N_Q).T
        for k, v in kaldiio.load_scp(str(out / "codec/codec.scp")).items()
    }


def encode(codec, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return codec.encode(x[None, None])[:, 0].numpy()


def test_soundstream_codes_good_files_and_lists_bad_ones(
    model_dir, codec, tmp_path, caplog, speechlike
):
    assert type(codec).__name__ == "SoundStream"
    files = {k: tmp_path / f"{k}.wav" for k in ("mono", "stereo", "empty", "missing")}
    sf.write(files["mono"], speechlike(5000).numpy(), FS)
    x = speechlike(7000, seed=1).numpy()
    sf.write(files["stereo"], np.stack([x, 0.5 * x], 1), 22050)
    sf.write(files["empty"], np.zeros(0), FS)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        message = run_cli(
            model_dir, write_scp(tmp_path / "wav.scp", files), out, "--batch_size", "4"
        )
    assert message.startswith("2 of 4 inputs failed")
    warnings = [r.getMessage() for r in caplog.records]
    assert f"{files['stereo']}: 2 channels, downmixed to mono" in warnings
    assert f"{files['stereo']}: 22050 Hz, resampled to {FS} Hz" in warnings
    assert listing(out / "failed.txt") == ["empty", "missing"]
    assert listing(out / "codec/codec.scp") == ["mono", "stereo"]
    wavs = dict(line.split() for line in (out / "wav/wav.scp").read_text().splitlines())
    codes = read_codes(out)
    for key in ("mono", "stereo"):
        x = load_audio(files[key], FS)
        assert codes[key].shape == (N_Q, math.ceil(len(x) / HOP))
        assert len(np.unique(codes[key])) > 1
        # Coded in a batch of two as the whole file alone (one 30 s chunk).
        assert np.array_equal(codes[key], encode(codec, x))
        assert sf.info(wavs[key]).frames == len(x)
        assert sf.info(wavs[key]).samplerate == FS
    stats = json.loads((out / "decode_stats.json").read_text())
    assert set(DECODE_KEYS) <= set(stats)
    assert stats["window_size"] is None
    assert stats["num_utts"] == 2 and stats["num_failed"] == 2
    assert stats["bitrate"] == 3 * 6 * FS / HOP  # 3 streams x 6 bit x 12.5 Hz
    assert stats["token_rate"] == FS / HOP

    # The same file alone codes as in the batch.
    alone = tmp_path / "alone"
    scp = write_scp(tmp_path / "alone.scp", {"stereo": files["stereo"]})
    assert run_cli(model_dir, scp, alone) is None
    assert np.array_equal(read_codes(alone)["stereo"], codes["stereo"])


def test_soundstream_chunks_are_coded_alone(model_dir, codec, tmp_path, speechlike):
    x = speechlike(10000)
    sf.write(tmp_path / "a.wav", x.numpy(), FS)
    scp = write_scp(tmp_path / "wav.scp", {"a": tmp_path / "a.wav"})
    out = tmp_path / "out"
    # 0.25 s rounds down to 3 tokens (3840 samples): chunks of 3, 3 and 2 tokens.
    assert run_cli(model_dir, scp, out, "--chunk_seconds", "0.25") is None
    codes = read_codes(out)["a"]
    assert codes.shape == (N_Q, math.ceil(10000 / HOP))
    assert np.array_equal(codes[:, :3], encode(codec, x[: 3 * HOP]))
    assert np.array_equal(codes[:, 6:], encode(codec, x[6 * HOP :]))
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["chunk_seconds"] == 3 * HOP / FS
    wav, fs = sf.read(out / "wav/a.wav")
    assert fs == FS and len(wav) == 10000


def test_window_size_is_for_almtokenizer_only(model_dir, tmp_path, speechlike):
    sf.write(tmp_path / "a.wav", speechlike(3000).numpy(), FS)
    scp = write_scp(tmp_path / "wav.scp", {"a": tmp_path / "a.wav"})
    with pytest.raises(ValueError, match="SoundStream has one token rate"):
        run_cli(model_dir, scp, tmp_path / "out", "--window_size", "4")
    assert not (tmp_path / "out/decode_stats.json").exists()


def test_chunk_quality_refuses_other_codecs(model_dir, tmp_path):
    from espnet_almtok.bin import chunk_quality

    with pytest.raises(ValueError, match="'SoundStream' model"):
        chunk_quality.main(
            [
                *("--train_config", str(model_dir / "config.yaml")),
                *("--model_file", str(model_dir / "model.pth")),
                *("--wav_scp", str(tmp_path / "wav.scp")),
                *("--out", str(tmp_path / "quality.json")),
            ]
        )
