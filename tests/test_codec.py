import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, build_tiny, codec_conf

from espnet_almtok.model.codec import ALMTokenizer
from espnet_almtok.model.semantic_prior import save_codebooks
from espnet_almtok.registration import check_chunk_length
from espnet_almtok.utils.rates import bitrate


def test_default_config_is_412_5_bits_per_second(tmp_path):
    conf = codec_conf(ROOT / "conf/train_almtok_stage2.yaml")
    q = conf["generator_params"]["quantizer_params"]
    path = tmp_path / "codebooks.npz"
    books = np.zeros((q["n_q"], q["codebook_size"], q["codebook_dim"]), np.float32)
    save_codebooks(path, books, "test", q["codebook_size"] // 2)
    q["codebook_file"] = str(path)
    model = ALMTokenizer(**conf)
    meta = model.meta_info()
    assert meta["fs"] == 24000 and meta["num_streams"] == 3
    assert bitrate(meta) == pytest.approx(412.5)
    # The same model at other windows: the rate scales with 1 / window.
    assert bitrate(model.meta_info(window_size=2)) == pytest.approx(825.0)
    # Tokens actually produced per second agree with meta_info.
    model.eval()
    with torch.no_grad():
        codes = model.encode(torch.zeros(48000))
    assert codes.shape == (3, 1, 2 * 24000 / meta["frame_shift"])


@pytest.mark.parametrize("w", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("length", [1, 319, 320, 1000, 5121])
def test_token_count_is_ceil_frames_over_window(tiny, speechlike, w, length):
    tiny.eval()
    hop = tiny.generator.hop
    frames = math.ceil(length / hop)
    with torch.no_grad():
        codes = tiny.encode(speechlike(length), window_size=w)
    assert codes.shape == (3, 1, math.ceil(frames / w))
    assert codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < 64


def test_encode_is_deterministic_in_eval(tiny, speechlike):
    tiny.eval()
    x = speechlike(4000)
    with torch.no_grad():
        assert torch.equal(tiny.encode(x), tiny.encode(x))


def test_batched_codes_equal_single_item_codes(tiny, speechlike):
    tiny.eval()
    lengths = [5000, 333, 2560, 4001]  # one shorter than a window (1280 samples)
    items = [speechlike(n, seed=i) for i, n in enumerate(lengths)]
    batch = torch.zeros(len(items), max(lengths))
    for i, x in enumerate(items):
        batch[i, : len(x)] = x
    batch[1, 333:] = 0.5  # garbage past an item's length must not matter
    with torch.no_grad():
        for w in (2, 4):
            codes, n = tiny.encode_with_lengths(batch, torch.tensor(lengths), w)
            for i, x in enumerate(items):
                single = tiny.encode(x, window_size=w)
                assert n[i] == single.size(2)
                assert torch.equal(codes[:, i, : n[i]], single[:, 0])


def test_one_checkpoint_decodes_at_several_windows(tiny, speechlike, tmp_path):
    torch.save(tiny.state_dict(), tmp_path / "model.pth")
    model = build_tiny()
    model.load_state_dict(torch.load(tmp_path / "model.pth"))
    model.eval()
    x = speechlike(3000)
    with torch.no_grad():
        for w in (2, 3, 4, 8):
            codes = model.encode(x, window_size=w)
            wav = model.decode(codes, window_size=w)
            assert wav.shape == (1, 1, codes.size(2) * w * model.generator.hop)
            assert torch.isfinite(wav).all()
            out = model.inference(x, window_size=w)
            assert out["wav"].shape == x.shape
            assert torch.equal(out["codec"], codes)


def adversarial_tiny(**overrides) -> ALMTokenizer:
    """The tiny codec with the GAN on from the first step."""
    torch.manual_seed(0)
    conf = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    return ALMTokenizer(**{**conf, "adversarial_start_step": 0, **overrides})


def test_losses_and_gradients_reach_every_trainable_part(speechlike):
    tiny = adversarial_tiny()
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    out = tiny(x, forward_generator=True)
    stats = out["stats"]
    for k in ("mae_loss", "ar_loss", "commit_loss", "mel_loss", "adv_loss"):
        assert math.isfinite(stats[k]) and stats[k] > 0, k
    # Codebook usage is logged per layer: distinct entries in the batch.
    n_q, size = tiny.generator.quantizer.n_q, tiny.generator.quantizer.codebook_size
    used = [stats[f"codes_used_{k}"].item() for k in range(1, n_q + 1)]
    assert all(1 <= u <= size and u == int(u) for u in used), used
    out["loss"].backward()
    missing = [
        n
        for n, p in tiny.generator.named_parameters()
        if p.grad is None or p.grad.abs().sum() == 0
    ]
    assert missing == []
    d_out = tiny(x, forward_generator=False)
    assert d_out["optim_idx"] == 1 and set(d_out["stats"]).isdisjoint(stats)
    d_out["loss"].backward()
    assert all(p.grad is not None for p in tiny.discriminator.parameters())


def test_warm_up_trains_without_the_discriminator(speechlike, tmp_path):
    tiny = adversarial_tiny(adversarial_start_step=2)
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    disc = {k: v.clone() for k, v in tiny.discriminator.state_dict().items()}
    opt = torch.optim.Adam(tiny.discriminator.parameters(), lr=1e-2)
    for step in range(3):
        adversarial = step >= 2
        g_out = tiny(x, forward_generator=True)
        assert (g_out["stats"]["adv_loss"] is not None) == adversarial
        assert (g_out["stats"]["feat_match_loss"] is not None) == adversarial
        d_out = tiny(x, forward_generator=False)
        d_out["loss"].sum().backward()  # what ESPnet's trainer does every turn
        opt.step()
        opt.zero_grad()
        unchanged = all(
            torch.equal(v, disc[k]) for k, v in tiny.discriminator.state_dict().items()
        )
        assert unchanged != adversarial, step
    # The step count is saved: a resumed run stays past its warm-up.
    torch.save(tiny.state_dict(), tmp_path / "model.pth")
    resumed = adversarial_tiny(adversarial_start_step=2)
    assert not resumed.adversarial
    resumed.load_state_dict(torch.load(tmp_path / "model.pth"))
    assert resumed.adversarial and int(resumed.generator_steps) == 3


def test_dither_is_training_noise_shared_by_both_turns(speechlike, monkeypatch):
    tiny = adversarial_tiny(dither=1e-3)
    x = torch.zeros(2, 6400)  # digital silence
    mel_targets, disc_inputs = [], []
    mel, disc = tiny.mel_loss.forward, tiny.discriminator.forward
    monkeypatch.setattr(
        tiny.mel_loss,
        "forward",
        lambda y_hat, y: mel_targets.append(y) or mel(y_hat, y),
    )
    monkeypatch.setattr(
        tiny.discriminator, "forward", lambda y: disc_inputs.append(y) or disc(y)
    )
    tiny(x, forward_generator=True)
    tiny(x, forward_generator=False)
    (real,) = mel_targets
    assert real.std().item() == pytest.approx(1e-3, rel=0.05)
    # The discriminator turn saw the same dithered audio (its last input).
    assert torch.equal(disc_inputs[-1], real)
    tiny.eval()
    with torch.no_grad():
        tiny(x, forward_generator=True)
    assert torch.equal(mel_targets[1], x.unsqueeze(1))  # no dither in validation


def record_training_audio(tiny: ALMTokenizer, monkeypatch):
    """Lists that collect what the generator codes and what the mel loss targets."""
    inputs, targets = [], []
    mel, run = tiny.mel_loss.forward, tiny.run_generator
    monkeypatch.setattr(
        tiny.mel_loss, "forward", lambda y_hat, y: targets.append(y) or mel(y_hat, y)
    )
    monkeypatch.setattr(tiny, "run_generator", lambda y: inputs.append(y) or run(y))
    return inputs, targets


def test_random_gain_scales_each_training_clip_within_its_range(
    speechlike, monkeypatch
):
    tiny = adversarial_tiny(random_gain_db=[-20.0, 4.0], dither=0.0)
    clip = speechlike(6400)
    x = clip.expand(8, -1).clone()
    inputs, targets = record_training_audio(tiny, monkeypatch)
    tiny(x, forward_generator=True)
    (real,) = targets
    # The reconstruction's target is what the generator coded: the scaled clip.
    assert torch.equal(inputs[0], real)
    gains = real[:, 0] @ clip / clip.dot(clip)
    assert torch.allclose(real[:, 0], gains[:, None] * clip, atol=1e-5)
    db = 20 * gains.log10()
    assert db.min() >= -20 and db.max() <= 4 and db.std() > 3
    tiny.eval()
    with torch.no_grad():
        tiny(x, forward_generator=True)
    assert torch.equal(targets[1], x.unsqueeze(1))  # validation codes it as it is
    with pytest.raises(ValueError, match="random_gain_db"):
        adversarial_tiny(random_gain_db=[4.0, -20.0])


def test_random_lowpass_band_limits_a_share_of_training_clips(monkeypatch):
    tiny = adversarial_tiny(
        random_lowpass_hz=[2000.0, 6000.0], random_lowpass_share=0.5, dither=0.0
    )
    torch.manual_seed(1)
    x = torch.randn(32, 6400)
    inputs, targets = record_training_audio(tiny, monkeypatch)
    tiny(x, forward_generator=True)
    (real,) = targets
    assert torch.equal(inputs[0], real)  # input and target alike
    power = torch.fft.rfft(real[:, 0]).abs() ** 2
    freqs = torch.fft.rfftfreq(6400, 1 / tiny.fs)
    # Each clip's cutoff: the highest frequency it still has power at.
    top = torch.stack([freqs[(p > 1e-6 * p.max()).nonzero().max()] for p in power])
    limited = top < tiny.fs / 2 - 100
    assert 8 <= limited.sum() <= 24, top
    cut = top[limited]
    assert cut.min() >= 2000 - 10 and cut.max() <= 6000 and cut.std() > 500
    # Below its cutoff a clip is untouched; the others are untouched throughout.
    spec, ref = torch.fft.rfft(real[:, 0]), torch.fft.rfft(x)
    below = freqs[None] <= top[:, None]
    assert torch.allclose(spec[below], ref[below], atol=1e-3)
    assert torch.equal(real[~limited, 0], x[~limited])
    none = adversarial_tiny(
        random_lowpass_hz=[2000.0, 6000.0], random_lowpass_share=0.0, dither=0.0
    )
    assert torch.equal(none.augment(x.unsqueeze(1)), x.unsqueeze(1))
    tiny.eval()
    with torch.no_grad():
        tiny(x, forward_generator=True)
    assert torch.equal(targets[1], x.unsqueeze(1))  # validation codes it as it is
    for bad in ([6000.0, 2000.0], [0.0, 4000.0], [2000.0, 9000.0]):
        with pytest.raises(ValueError, match="random_lowpass_hz"):
            adversarial_tiny(random_lowpass_hz=bad)
    with pytest.raises(ValueError, match="random_lowpass_share"):
        adversarial_tiny(random_lowpass_hz=[2000.0, 6000.0], random_lowpass_share=2.0)


def test_input_level_codes_every_level_alike_and_round_trips_keep_it(speechlike):
    from espnet_almtok.coding import ChunkedCoder

    tiny = adversarial_tiny(input_level_dbfs=-20.0, max_input_gain_db=30.0).eval()
    loud = torch.stack([speechlike(12800, seed=s) for s in range(2)])
    quiet = loud * torch.tensor([[0.1], [0.3]])
    lengths = torch.tensor([12800, 9000])
    quiet[1, 9000:] = loud[1, 9000:] = 0
    with torch.no_grad():
        gains = tiny.input_gains(quiet, lengths)
        level = (quiet * gains[:, None]).pow(2).sum(1) / lengths
        assert torch.allclose(10 * level.log10(), torch.tensor(-20.0), atol=1e-3)
        # The same codes at every level, whole and chunked.
        for chunk in (0.0, 0.2):
            coder = ChunkedCoder(tiny, chunk_seconds=chunk)
            codes, n = coder.encode(quiet, lengths)
            assert torch.equal(codes, coder.encode(loud, lengths)[0])
            # Decoding gives the model's level; the round trip, the input's.
            wav = coder.decode(codes, n)
            for x, scale in ((quiet, torch.tensor([0.1, 0.3])), (loud, 1)):
                back = wav / coder.input_gains(x, lengths)[:, None, None]
                level = back[:, 0].pow(2).sum(1).sqrt() / wav[:, 0].pow(2).sum(1).sqrt()
                assert torch.allclose(level, scale / tiny.input_gains(loud, lengths))
        one = tiny.inference(quiet[0])["wav"]
        assert torch.allclose(one * 10, tiny.inference(loud[0])["wav"], atol=1e-5)
        # Silence is not raised to speech level.
        silence = torch.full((1, 12800), 1e-6)
        assert tiny.input_gains(silence).item() == pytest.approx(10**1.5)
    plain = adversarial_tiny().eval()
    assert torch.equal(plain.input_gains(quiet), torch.ones(2))


def test_frozen_codebooks_and_patchify_do_not_change(tiny, speechlike):
    for p in tiny.generator.patchify.parameters():
        p.requires_grad_(False)  # what ESPnet's --freeze_param does
    frozen = {
        k: v.clone()
        for k, v in tiny.state_dict().items()
        if k.startswith(("generator.patchify", "generator.quantizer.codebooks"))
    }
    trained = tiny.generator.query_encoder.token.detach().clone()
    opt = torch.optim.AdamW(tiny.generator.parameters(), lr=1e-3, weight_decay=0.1)
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    for _ in range(3):
        opt.zero_grad()
        tiny(x, forward_generator=True)["loss"].backward()
        opt.step()
    state = tiny.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert not torch.equal(tiny.generator.query_encoder.token, trained)


def train_steps(model, x, stat: str, steps: int = 25, history=None) -> list:
    """A logged loss over generator steps of Adam on one batch (``history``:
    a dict that collects every logged value too)."""
    opt = torch.optim.Adam(model.generator.parameters(), lr=2e-3)
    values = []
    for _ in range(steps):
        opt.zero_grad()
        out = model(x, forward_generator=True)
        out["loss"].backward()
        opt.step()
        values.append(out["stats"][stat].item())
        for key, value in (history if history is not None else {}).items():
            value.append(out["stats"][key].item())
    return values


def test_training_loss_falls(speechlike):
    torch.manual_seed(0)
    model = build_tiny(window_sizes=[4])
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    mel = train_steps(model, x, "mel_loss")
    assert np.mean(mel[-5:]) < 0.8 * np.mean(mel[:5])


def test_window_is_drawn_from_the_configured_set():
    model = build_tiny(window_sizes=[2, 3])
    torch.manual_seed(0)
    assert {model.generator.draw_window() for _ in range(50)} == {2, 3}


def test_stage1_is_an_autoencoder_without_tokens(speechlike):
    model = build_tiny(stage=1)
    assert not hasattr(model.generator, "quantizer")
    out = model(speechlike(6400)[None], forward_generator=True)
    assert out["stats"]["mae_loss"] > 0 and "commit_loss" not in out["stats"]
    assert not any(k.startswith("codes_used") for k in out["stats"])
    with pytest.raises(RuntimeError, match="stage-1"):
        model.encode(speechlike(1000))


@pytest.mark.parametrize("windows", [[2, 0], [-1], []])
def test_bad_window_sets_are_refused(windows):
    with pytest.raises(ValueError, match="window"):
        build_tiny(window_sizes=windows)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="unknown patchify kind 'wavelet'"):
        build_tiny(patchify_kind="wavelet")
    with pytest.raises(
        ValueError, match=r"unknown key\(s\) \['num_layer'\] in encoder_params"
    ):
        build_tiny(encoder_params={"num_layer": 2})
    with pytest.raises(ValueError, match="target_layer"):
        build_tiny(ar_params={"target_layer": 4})
    conf = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    conf["generator_params"]["hop"] = 320
    with pytest.raises(ValueError, match=r"\['hop'\] in codec_conf.generator_params"):
        ALMTokenizer(**conf)


def test_chunk_length_must_be_a_multiple_of_the_hop(tiny):
    check_chunk_length(SimpleNamespace(iterator_type="chunk", chunk_length=6400), tiny)
    check_chunk_length(
        SimpleNamespace(iterator_type="sequence", chunk_length=6401), tiny
    )
    for bad in (6401, "6400,6500"):
        with pytest.raises(ValueError, match="not a multiple of the codec's hop 320"):
            check_chunk_length(
                SimpleNamespace(iterator_type="chunk", chunk_length=bad), tiny
            )


def test_bad_audio_is_refused(tiny):
    tiny.eval()
    with pytest.raises(ValueError, match="empty"):
        tiny.encode(torch.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        tiny.encode(torch.tensor([0.0, float("nan")] * 400))
    with pytest.raises(ValueError, match="mono"):
        tiny.encode(torch.zeros(1, 2, 800))
    with pytest.raises(ValueError, match="empty"):
        tiny.encode_with_lengths(torch.zeros(2, 800), torch.tensor([800, 0]))


def test_unknown_keyword_arguments_are_refused_not_ignored(tiny):
    """``AbsGANCodec`` takes ``**kwargs``: ``lengths=`` (for ``x_lengths``) was
    once ignored, and the padding was coded as audio."""
    tiny.eval()
    x = torch.zeros(2, 1600)
    with pytest.raises(TypeError, match="lengths.*did you mean x_lengths"):
        tiny.encode(x, lengths=torch.tensor([1600, 800]))
    codes = tiny.encode(x)
    with pytest.raises(TypeError, match="decode.*target_bw"):
        tiny.decode(codes, target_bw=0.4)
    with pytest.raises(TypeError, match="inference.*window.*window_size"):
        tiny.inference(x[0], window=2)


@pytest.mark.parametrize("stage", [1, 2])
def test_gpu_configs_build_and_train_one_step(tmp_path, stage):
    conf = codec_conf(ROOT / f"conf/train_almtok_stage{stage}.yaml")
    q = conf["generator_params"].get("quantizer_params")
    if q is not None:
        q.pop("codebook_file")
        q["random_codebooks_for_debugging"] = True
    model = ALMTokenizer(**conf)
    assert model.generator.hop == 480
    out = model(torch.randn(1, 480 * 24) * 0.1, forward_generator=True)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize(
    "override,where",
    [
        (
            {
                "patchify_params": {
                    "n_filters": 8,
                    "ratios": [8, 5, 4, 2],
                    "nfilters": 8,
                }
            },
            "patchify_params",
        ),
        (
            {"patchify_kind": "linear", "patchify_params": {"hop": 320, "layers": 2}},
            "patchify_params",
        ),
        ({"mae_params": {"dim": 32}}, "mae_params"),
        ({"encoder_params": {"dim": 32}}, "encoder_params"),
    ],
)
def test_misplaced_keys_are_named(override, where):
    with pytest.raises(ValueError, match=f"unknown key.*in .*{where}"):
        build_tiny(**override)


def test_validation_codes_at_the_inference_window(tiny, speechlike, monkeypatch):
    tiny.eval()
    seen = []
    forward = tiny.generator.forward
    monkeypatch.setattr(
        tiny.generator, "forward", lambda x, w: seen.append(w) or forward(x, w)
    )
    x = speechlike(6400)[None]
    with torch.no_grad():
        tiny(x, forward_generator=True)
        tiny(x, forward_generator=False)  # reuses the generator pass of the same batch
    assert seen == [tiny.generator.inference_window]


def teacher_tiny(tmp_path, speechlike, gen=None, **teacher):
    """The tiny codec with the log-mel teacher and codebooks of its frames,
    distilled into layer 1 (``gen``: other generator settings)."""
    from espnet_almtok.model.semantic_encoder import SemanticEncoder

    teacher = {"kind": "logmel", "n_mels": 40, **teacher}
    frames = SemanticEncoder(16000, 320, kind="logmel")(speechlike(64000)[None, None])
    g = np.random.default_rng(0)
    books = np.concatenate(  # layer 1: teacher frames; then small residuals
        [frames[0, g.permutation(200)[:64]][None], g.normal(0, 0.1, (2, 64, 40))]
    )
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "codebooks.npz"
    save_codebooks(path, books.astype(np.float32), "logmel-fallback", 64)
    conf = codec_conf(TINY[2], codebook_file=str(path), running_stats=True)
    conf["generator_params"].update(
        window_sizes=[4],
        semantic_teacher_params=teacher,
        semantic_distillation_params={},
    )
    conf["generator_params"].update(gen or {})
    conf["lambda_semantic"] = 10.0
    torch.manual_seed(0)
    return ALMTokenizer(**conf), path


def test_semantic_teacher_trains_layer1_and_stays_out_of_the_model(
    tmp_path, speechlike
):
    codec, path = teacher_tiny(tmp_path, speechlike)
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    semantic = train_steps(codec, x, "semantic_loss")
    assert np.mean(semantic[-5:]) < 0.9 * np.mean(semantic[:5]), semantic
    state = codec.state_dict()
    assert not any("teacher" in k or "prior_" in k for k in state)
    # The head is training-only: packaging drops it like the MAE and AR heads.
    assert any(k.startswith("generator.semantic_distillation.") for k in state)
    assert "semantic_distillation" in codec.generator.TRAINING_ONLY
    # Coding needs neither the teacher nor the k-means file.
    path.unlink()
    coder, _ = teacher_tiny(tmp_path / "elsewhere", speechlike)
    (tmp_path / "elsewhere/codebooks.npz").unlink()
    coder.load_state_dict(state)
    codes, n = coder.encode_with_lengths(x)
    assert coder.generator.semantic_teacher is None
    assert torch.equal(codes, codec.encode_with_lengths(x)[0])


def test_losatok_losses_train_layer1_against_a_frozen_bottleneck(tmp_path, speechlike):
    """Issue 13's item 4: LoSATok's low-level supervision (layer 1 predicts the
    semantic bottleneck's low frames) and time-relation loss, on ALMTokenizer;
    each falls on its own."""
    sembo = dict(
        source="input",
        target="bottleneck",
        bottleneck_params=dict(low_dim=8, hidden_dim=16),
    )
    codec, _ = teacher_tiny(
        tmp_path, speechlike, gen=dict(semantic_distillation_params=sembo)
    )
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    with pytest.raises(RuntimeError, match="never trained.*--init_param"):
        codec(x, forward_generator=True)
    bottleneck = codec.generator.semantic_distillation.bottleneck
    bottleneck.trained_steps += 1  # as a LoSATok stage-1 model leaves it
    frozen = {k: v.clone() for k, v in bottleneck.state_dict().items()}
    semantic = train_steps(codec, x, "semantic_loss")
    assert np.mean(semantic[-5:]) < 0.9 * np.mean(semantic[:5]), semantic
    for k, v in bottleneck.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    # The bottleneck's low frames are the targets: 8 of them per token.
    assert codec.generator.semantic_distillation.head.out_features == 8

    # The time-relation loss alone: no head, no codebook space; statistics of
    # the teacher's frames only.
    alone, _ = teacher_tiny(
        tmp_path / "alone",
        speechlike,
        gen=dict(
            semantic_distillation_params=dict(
                source="input", target=None, time_relation=True
            )
        ),
    )
    alone.lambdas["semantic_relation"] = 1000.0  # above the mel term
    history = {"semantic_relation_loss": []}
    train_steps(alone, x, "mel_loss", history=history)
    relation = history["semantic_relation_loss"]
    assert np.mean(relation[-5:]) < 0.7 * np.mean(relation[:5]), relation
    assert "semantic_loss" not in alone(x, forward_generator=True)["stats"]
    assert set(alone.generator.semantic_distillation.state_dict()) == {
        f"frame_norm.{k}" for k in ("mean", "var", "seen")
    }


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(target=None), "needs time_relation: true"),
        (dict(target="bottleneck"), "bottleneck_params go with target: bottleneck"),
        (dict(bottleneck_params={}), "bottleneck_params go with target: bottleneck"),
        (dict(target="sembo"), "target must be one of"),
        (
            dict(target="bottleneck", bottleneck_params=dict(low_dim=8), head=False),
            "head: false needs targets of the tokens' width",
        ),
    ],
)
def test_distillation_settings_are_checked(tmp_path, speechlike, params, match):
    with pytest.raises(ValueError, match=match):
        teacher_tiny(
            tmp_path, speechlike, gen=dict(semantic_distillation_params=params)
        )


def test_semantic_teacher_must_give_the_codebooks_features(tmp_path, speechlike):
    x = speechlike(6400)[None]
    with pytest.raises(ValueError, match="unknown key.*nmels.*semantic_teacher_para"):
        teacher_tiny(tmp_path / "a", speechlike, nmels=40)[0](x)
    with pytest.raises(ValueError, match="80-dim frames.*40-dim centres"):
        teacher_tiny(tmp_path / "b", speechlike, n_mels=80)[0](x)
    with pytest.raises(ValueError, match="stage-2 setting"):
        build_tiny(1, semantic_teacher_params=dict(kind="logmel"))
    for user in ("semantic_distillation_params", "semantic_input_params"):
        with pytest.raises(ValueError, match=f"{user} needs semantic_teacher_par"):
            build_tiny(**{user: {}})
    with pytest.raises(ValueError, match="nothing uses the teacher"):
        build_tiny(semantic_teacher_params=dict(kind="logmel"))


def test_semantic_input_codes_each_clip_alone_and_ships_no_teacher(
    tmp_path, speechlike
):
    codec, _ = teacher_tiny(tmp_path, speechlike, gen=dict(semantic_input_params={}))
    x = torch.stack([speechlike(6400, seed=s) for s in range(2)])
    mel = train_steps(codec, x, "mel_loss")
    assert np.mean(mel[-5:]) < 0.8 * np.mean(mel[:5]), mel
    codec.eval()
    # The teacher's frames reach the codes, and the teacher built for the
    # projection's width is not in the model file.
    state = {k: v.clone() for k, v in codec.state_dict().items()}
    assert any(k.startswith("generator.semantic_input.") for k in state)
    assert not any("teacher" in k for k in state)
    codes = codec.encode(x)
    with torch.no_grad():
        codec.generator.semantic_input.proj.weight.zero_()
    assert not torch.equal(codec.encode(x), codes)
    codec.load_state_dict(state)
    # A clip's codes do not depend on the rest of its batch.
    assert torch.equal(codec.encode(x[:1]), codes[:, :1])
    # Chunked coding runs the teacher per chunk, as training did.
    chunked, n = codec.encode_chunked(x, chunk_seconds=0.2)
    assert chunked.shape == codes.shape and torch.equal(n, torch.full((2,), 5))
