"""LoSATok: its losses fall and each is a switch, the frozen semantic bottleneck
stays frozen, and the latent has the stated shape and rate on unseen speech.

The teacher is Whisper tiny.en (the ``[eval]`` extra), as in the configs.
"""

import math
import shutil

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, codec_conf, flite, train_generator

from espnet_almtok.model.losatok import LoSATok, kl_divergence
from espnet_almtok.model.semantic_bottleneck import (
    cosine_reconstruction_loss,
    time_relation_loss,
)

pytest.importorskip("ctranslate2", reason="the Whisper teacher: the [eval] extra")
pytestmark = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite is needed (tools/setup.sh)"
)

TINY = {s: ROOT / f"conf/tuning/train_losatok_tiny_stage{s}.yaml" for s in (1, 2)}
CHUNK = {s: yaml.safe_load(TINY[s].read_text())["chunk_length"] for s in (1, 2)}
SENTENCES = [  # Harvard sentences, none of them in the recipes' corpora
    "the stale smell of old beer lingers",
    "a cup of sugar makes sweet fudge",
    "the wide road shimmered in the hot sun",
    "we talked of the side show in the circus",
    "the young girl gave no clear response",
]
STAGE2_LOSSES = ("semantic_high", "semantic_low", "kl")


def build(stage: int, **codec_overrides) -> LoSATok:
    torch.manual_seed(0)
    return LoSATok(**{**codec_conf(TINY[stage]), **codec_overrides})


def drop(history, key: str, n: int = 5) -> float:
    """Mean of a stat over the last n steps over its mean over the first n."""
    values = [h[key] for h in history]
    return np.mean(values[-n:]) / np.mean(values[:n])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clips")
    train = [flite(tmp, v, s, "float32") for v in ("slt", "rms") for s in SENTENCES[:4]]
    return train, flite(tmp, "awb", SENTENCES[4], "float32")


@pytest.fixture(scope="module")
def sembo(clips):
    codec = build(1)
    history = train_generator(codec, clips[0], TINY[1], 40, CHUNK[1])
    return codec, history


@pytest.fixture(scope="module")
def tokenizer(sembo, clips):
    codec = build(2)
    # Stage 2 as the recipe runs it: the bottleneck from stage 1 (--init_param).
    codec.generator.semantic_bottleneck.load_state_dict(
        sembo[0].generator.semantic_bottleneck.state_dict()
    )
    before = {
        k: v.clone()
        for k, v in codec.generator.semantic_bottleneck.state_dict().items()
    }
    history = train_generator(codec, clips[0], TINY[2], 60, CHUNK[2])
    return codec, history, before


def test_semantic_bottleneck_losses_fall(sembo):
    _, history = sembo
    print({k: drop(history, f"{k}_loss") for k in ("sembo_cos", "sembo_relation")})
    assert drop(history, "sembo_cos_loss") < 0.8
    assert drop(history, "sembo_relation_loss") < 0.6


def test_tokenizer_learns_and_the_bottleneck_stays_frozen(tokenizer):
    codec, history, before = tokenizer
    for k, v in codec.generator.semantic_bottleneck.state_dict().items():
        assert torch.equal(v, before[k]), f"frozen bottleneck changed: {k}"
    assert int(codec.generator.semantic_bottleneck.trained_steps) > 0
    print({k: drop(history, f"{k}_loss") for k in ("mel", "semantic_high")})
    assert drop(history, "mel_loss") < 0.5
    assert drop(history, "semantic_high_loss") < 0.9


def test_stage2_refuses_an_untrained_bottleneck(clips):
    codec = build(2)
    codec.train()
    x = torch.from_numpy(clips[0][0][: CHUNK[2]])[None]
    with pytest.raises(RuntimeError, match="never trained.*--init_param"):
        codec(x, forward_generator=True)


def trained_parts(codec: LoSATok, x: torch.Tensor) -> set:
    """The generator's children (the bottleneck's halves) that one generator
    turn gives a gradient."""
    codec.zero_grad()
    codec(x, forward_generator=True)["loss"].backward()
    depth = lambda name: 2 if name.startswith("semantic_bottleneck") else 1  # noqa
    return {
        ".".join(name.split(".")[: depth(name)])
        for name, p in codec.generator.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }


@pytest.mark.parametrize(
    "loss,parts",
    [
        # The time-relation loss reads the low frames only.
        ("sembo_cos", {"semantic_bottleneck.down", "semantic_bottleneck.up"}),
        ("sembo_relation", {"semantic_bottleneck.down"}),
        ("semantic_high", {"acoustic", "acoustic_norm"}),
        ("semantic_low", {"acoustic", "acoustic_norm", "acoustic_to_low"}),
        (
            "kl",
            {"acoustic", "acoustic_norm", "acoustic_to_low", "to_mu", "to_logvar"},
        ),
        (
            "mel",
            {
                "acoustic",
                "acoustic_norm",
                "acoustic_to_low",
                "to_mu",
                "to_logvar",
                "upsample",
                "vocoder",
            },
        ),
    ],
)
def test_each_loss_is_a_switch(loss, parts, sembo, clips):
    """With one loss weighted and the others at 0, exactly what that loss
    reaches trains; the stage-1 losses reach only the bottleneck."""
    stage = 1 if loss.startswith("sembo") else 2
    names = ("sembo_cos", "sembo_relation") if stage == 1 else STAGE2_LOSSES + ("mel",)
    codec = build(stage, **{f"lambda_{k}": float(k == loss) for k in names})
    if stage == 2:
        codec.generator.semantic_bottleneck.load_state_dict(
            sembo[0].generator.semantic_bottleneck.state_dict()
        )
    codec.train()
    x = torch.from_numpy(np.stack([c[: CHUNK[stage]] for c in clips[0][:2]]))
    assert trained_parts(codec, x) == parts


def test_semantic_bottleneck_losses_measure_what_they_say():
    torch.manual_seed(0)
    high = torch.randn(2, 12, 8)
    # Scale does not count, direction does.
    assert cosine_reconstruction_loss(3 * high, high) < 1e-12
    assert cosine_reconstruction_loss(torch.randn(2, 12, 8), high) > 0.1
    # Frame similarities survive a rotation (and a scale), not a shuffle in time.
    rotation, _ = torch.linalg.qr(torch.randn(8, 8))
    assert time_relation_loss(2 * high @ rotation, high) < 1e-10
    assert time_relation_loss(high[:, torch.randperm(12)], high) > 0.01
    # Padding is no time: pairs with a padded frame do not count.
    valid = torch.arange(12) < 9
    noisy = torch.cat([2 * high[:, :9] @ rotation, torch.randn(2, 3, 8)], 1)
    assert time_relation_loss(noisy, high, valid.expand(2, 12)) < 1e-10
    assert time_relation_loss(noisy, high) > 0.01


def test_kl_and_its_floor():
    mu, logvar = torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)
    assert kl_divergence(mu, logvar) == 0
    # Per dimension: 0.5 * mu^2 for unit variance.
    assert kl_divergence(mu + 1, logvar) == pytest.approx(4 * 0.5)
    # Free bits: dimensions below the floor count as the floor.
    assert kl_divergence(mu, logvar, floor=0.1) == pytest.approx(4 * 0.1)
    assert kl_divergence(mu + 1, logvar, floor=0.1) == pytest.approx(4 * 0.5)


def test_logvar_is_clamped(tokenizer, clips):
    codec = tokenizer[0]
    gen = codec.generator
    x = torch.from_numpy(clips[1][: CHUNK[2]])[None, None]
    with torch.no_grad():
        gen.to_logvar.bias.add_(1e4)
        try:
            _, logvar = gen.posterior(gen.branches(x))
        finally:
            gen.to_logvar.bias.sub_(1e4)
    assert torch.all(logvar == gen.logvar_range[1])


def test_latent_shape_rate_and_length_on_unseen_speech(tokenizer, clips):
    codec = tokenizer[0].eval()
    x = torch.from_numpy(clips[1])
    meta = codec.meta_info()
    assert meta["fs"] / meta["frame_shift"] == 25.0 and meta["latent_dim"] == 16
    with torch.no_grad():
        z = codec.encode(x)
        assert z.shape == (1, math.ceil(len(x) / 640), 16)
        assert torch.equal(z, codec.encode(x))  # deterministic: the mean
        wav = codec.decode(z)
        assert wav.shape == (1, 1, z.size(1) * 640)
        out = codec.inference(x)
        assert out["wav"].shape == x.shape and torch.equal(out["latent"], z)
        # A padded batch: each item's latent is the one it gets alone.
        short = x[: len(x) // 2]
        batch = torch.stack([x, torch.cat([short, torch.zeros(len(x) - len(short))])])
        zb, n = codec.encode_with_lengths(batch, torch.tensor([len(x), len(short)]))
        assert n.tolist() == [z.size(1), math.ceil(len(short) / 640)]
        assert torch.allclose(zb[0], z[0], atol=1e-5)
        assert torch.allclose(zb[1, : n[1]], codec.encode(short)[0], atol=1e-5)
        # ESPnet's continuous interface, in its (B, D, N) layout.
        assert torch.allclose(codec.generator.encoder(x[None, None]), z.transpose(1, 2))


def test_bad_inputs_are_refused(sembo, tokenizer):
    stage1, codec = sembo[0], tokenizer[0]
    with pytest.raises(RuntimeError, match="stage-1 semantic bottleneck"):
        stage1.encode(torch.zeros(16000))
    with pytest.raises(ValueError, match=r"expected latents \(B, N, 16\)"):
        codec.decode(torch.zeros(1, 10, 8))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(torch.full((16000,), float("nan")))
    with pytest.raises(TypeError, match="lengths: did you mean x_lengths"):
        codec.encode(torch.zeros(16000), lengths=torch.tensor([100]))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\]"):
        LoSATok(generator_params=dict(training_stage=1, depth=3))
    with pytest.raises(ValueError, match="whole multiples"):
        LoSATok(generator_params=dict(training_stage=1, hop=480))
    with pytest.raises(ValueError, match="upsample .* must divide hop"):
        LoSATok(generator_params=dict(upsample=3))


@pytest.mark.parametrize(
    "config", sorted(ROOT.glob("conf/**/train_losatok_*.yaml")), ids=lambda p: p.stem
)
def test_configs_build_through_espnets_task(config):
    from espnet2.tasks.gan_codec import GANCodecTask

    from espnet_almtok import registration

    registration.install()
    args = GANCodecTask.get_parser().parse_args([])
    vars(args).update(yaml.safe_load(config.read_text()))
    gen_conf = args.codec_conf["generator_params"]
    gen_conf["semantic_encoder_params"]["device"] = "cpu"  # GPU configs here
    gen = GANCodecTask.build_model(args).codec.generator
    assert args.codec_conf["sampling_rate"] / gen.hop == 25
    assert args.chunk_length % gen.hop == 0
    assert hasattr(gen, "vocoder") == (gen_conf["training_stage"] == 2)


def test_parameter_counts_give_a_latent_no_bitrate():
    """The benchmark's report counts LoSATok's parameters: a continuous latent
    has a frame rate, not a bitrate."""
    from espnet_almtok.eval.params import codec_counts

    codec = build(2)
    counts = codec_counts(codec)
    assert counts["bitrate"] is None
    assert counts["tokens_per_second"] == codec.fs / codec.generator.hop
    assert counts["codec_path"] == counts["generator"] > 0
