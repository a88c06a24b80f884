"""Matched baselines (ESPnet's SoundStream, DAC) and ablation configs.

Every model is built as ESPnet's trainer builds it (``GANCodecTask``), compared
with the ALMTokenizer config it is matched to: bitrate from ``meta_info()``,
real token counts, codec-path parameters within +-20 %, equal training
settings, and for each ablation that the ablated part is really off.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, TINY, codec_conf

from espnet_almtok.bin.count_params import main
from espnet_almtok.eval.benchmark import read_config
from espnet_almtok.eval.params import build_codec, codec_counts
from espnet_almtok.model.codec import ALMTokenizer
from espnet_almtok.model.initialization import init_variance_preserving
from espnet_almtok.model.semantic_prior import (
    SemanticPriorRVQ,
    save_codebooks,
    standardize,
)

GPU_REF = ROOT / "conf/train_almtok_stage2.yaml"
SMALL16K_REF = ROOT / "conf/tuning/train_almtok_small16k_stage2.yaml"
TINY_REF = TINY[2]
BASELINES = ["soundstream", "dac"]
ABLATIONS = {
    # ablation -> generator_params keys it may change (all else must equal)
    "no_mae": {"mae_params"},
    "no_ar": {"ar_params"},
    "trainable_codebooks": {"quantizer_params"},
    "strided": {"window_sizes", "compression"},
    "single_stage": set(),
}
BASELINE_NAMES = [f"{b}_tiny" for b in BASELINES]
CONFIGS = {
    **{b: ROOT / f"conf/baselines/tuning/train_{b}.yaml" for b in BASELINE_NAMES},
    **{a: ROOT / f"conf/ablations/tuning/train_almtok_{a}.yaml" for a in ABLATIONS},
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def baseline_config(size: str, baseline: str) -> Path:
    """A baseline's config: GPU-sized at the top of conf/baselines, the
    CPU sizes under tuning/ with the size as suffix."""
    if size == "gpu":
        return ROOT / f"conf/baselines/train_{baseline}.yaml"
    return ROOT / f"conf/baselines/tuning/train_{baseline}_{size}.yaml"


def changed_keys(a, b):
    """Keys whose values differ between two dicts (a missing key as None)."""
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


def small16k_ablation(name):
    """A small16k ablation config as dotted leaves, and those that differ
    from the main job's stage-2 config."""
    ref = flat(load(ROOT / "conf/tuning/train_almtok_small16k_stage2.yaml"))
    conf = flat(load(ROOT / f"conf/ablations/tuning/train_almtok_small16k_{name}.yaml"))
    return conf, changed_keys(conf, ref)


def flat(tree, prefix=""):
    """Dotted paths of a nested config's leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {
        k: v
        for key, sub in tree.items()
        for k, v in flat(sub, f"{prefix}.{key}" if prefix else key).items()
    }


def nominal_bitrate(meta: dict) -> float:
    """log2(code size) * streams * token rate, as the issue defines it."""
    sizes = set(meta["code_size_per_stream"])
    assert len(sizes) == 1
    return (
        math.log2(sizes.pop()) * meta["num_streams"] * meta["fs"] / meta["frame_shift"]
    )


@pytest.fixture(scope="module")
def models():
    """Each tiny config's codec, built once, with codebooks loaded.

    The k-means file is absent here: random codebooks stand in for the model
    file that would fill them.
    """
    built = {}
    for name, path in {"reference": TINY_REF, **CONFIGS}.items():
        torch.manual_seed(0)
        codec = build_codec(path)
        quantizer = getattr(codec.generator, "quantizer", None)
        if getattr(quantizer, "unset_codebooks", None) is not None:
            quantizer.codebooks.data.normal_()
        built[name] = codec
    return built


@pytest.fixture(scope="module")
def reference(models):
    return codec_counts(models["reference"])


def batch(seed: int = 0, n: int = 1, length: int = 6400) -> torch.Tensor:
    return torch.randn(n, length, generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.fixture(scope="module")
def stepped(models):
    """One generator turn of every model (short batch), and one discriminator
    turn of the baselines (the ablations share the reference's discriminator).

    Returns, per model, the turns' outputs, the generator turn's stats and
    which generator parameters got a non-zero gradient.
    """
    x = batch(seed=1, length=2560)  # two tokens of the tiny models
    results = {}
    for name, codec in models.items():
        codec.train()
        codec.zero_grad()
        g_out = codec(x, forward_generator=True)
        g_out["loss"].backward()
        grads = {
            n: p.grad is not None and bool(p.grad.abs().sum() > 0)
            for n, p in codec.generator.named_parameters()
        }
        results[name] = dict(g=g_out, stats=g_out["stats"], grads=grads)
        if name in BASELINE_NAMES:
            results[name]["d"] = codec(x, forward_generator=False)
            results[name]["d"]["loss"].backward()
        codec.zero_grad()
    return results


@pytest.fixture(scope="module")
def reference_counts():
    """``codec_counts`` of the reference at each size, built once (the GPU one
    takes seconds)."""
    refs = {"gpu": GPU_REF, "small16k": SMALL16K_REF}
    return {size: codec_counts(build_codec(ref)) for size, ref in refs.items()}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tiny_configs_match_bitrate_and_size(models, reference, name):
    counts = codec_counts(models[name])
    meta = counts["meta_info"]
    assert nominal_bitrate(meta) == pytest.approx(reference["bitrate"])
    assert counts["bitrate"] == pytest.approx(225.0)  # 6 bit x 3 x 12.5 Hz
    assert meta["fs"] == 16000 and meta["num_streams"] == 3
    ratio = counts["codec_path"] / reference["codec_path"]
    assert abs(ratio - 1) <= 0.2, ratio


@pytest.mark.parametrize(
    "size, fs, tolerance", [("gpu", 24000, 0.2), ("small16k", 16000, 0.1)]
)
@pytest.mark.parametrize("baseline", BASELINES)
def test_baselines_match_bitrate_and_size(
    reference_counts, size, fs, tolerance, baseline
):
    ref = reference_counts[size]
    counts = codec_counts(build_codec(baseline_config(size, baseline)))
    assert ref["bitrate"] == counts["bitrate"] == pytest.approx(412.5)
    assert nominal_bitrate(counts["meta_info"]) == pytest.approx(412.5)
    assert counts["meta_info"]["fs"] == fs
    assert set(ref["training_only"]) == {"mae", "ar"}
    assert abs(counts["codec_path"] / ref["codec_path"] - 1) <= tolerance


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_real_token_count_equals_the_reference_at_its_window(models, name):
    codec, ref = models[name], models["reference"]
    codec.eval(), ref.eval()
    x = batch(length=6400)
    with torch.no_grad():
        codes = codec.encode(x.unsqueeze(1))
        ref_codes = ref.encode(x, window_size=ref.generator.inference_window)
    assert codes.shape == ref_codes.shape == (3, 1, 5)
    assert codes.shape[-1] == x.size(-1) / codec.meta_info()["frame_shift"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_one_training_step_of_each_model(stepped, name):
    step = stepped[name]
    assert torch.isfinite(step["g"]["loss"]) and step["g"]["optim_idx"] == 0
    assert step["stats"]["mel_loss"] > 0
    if name in BASELINE_NAMES:
        assert torch.isfinite(step["d"]["loss"]) and step["d"]["optim_idx"] == 1


@pytest.mark.parametrize(
    "bench, size, ref",
    [
        ("conf/benchmark.yaml", "gpu", "conf/train_almtok_stage2.yaml"),
        (
            "conf/tuning/benchmark_small16k.yaml",
            "small16k",
            str(SMALL16K_REF.relative_to(ROOT)),
        ),
    ],
)
def test_benchmarks_train_the_matched_baselines(bench, size, ref):
    """Each baseline's config, one-stage, as ESPnet ships it and again with our
    init (``--codec <name>_he``)."""
    conf = read_config(str(ROOT / bench))
    systems = conf["systems"]
    assert systems["almtok"].stage2_config == ref
    assert conf["baselines"] == BASELINES + [f"{b}_he" for b in BASELINES]
    for baseline in BASELINES:
        path = str(baseline_config(size, baseline).relative_to(ROOT))
        he = systems[f"{baseline}_he"]
        assert systems[baseline].stage2_config == he.stage2_config == path
        assert systems[baseline].train_args == ""
        assert he.train_args.split()[:2] == ["--codec", f"{baseline}_he"]
        assert not systems[baseline].two_stage and not he.two_stage


@pytest.mark.parametrize("size", ["gpu", "small16k", "tiny"])
@pytest.mark.parametrize("baseline", BASELINES)
def test_baselines_train_with_the_same_settings(size, baseline):
    ref = load({"gpu": GPU_REF, "small16k": SMALL16K_REF, "tiny": TINY_REF}[size])
    conf = load(baseline_config(size, baseline))
    hop = math.prod(conf["codec_conf"]["generator_params"]["encdec_ratios"])
    for c in (conf, ref):
        c.pop("codec"), c.pop("codec_conf")
    # The baselines need whole hops: the reference chunk, padded to whole
    # windows as ALMTokenizer pads it.
    assert conf.pop("chunk_length") == math.ceil(ref.pop("chunk_length") / hop) * hop
    assert conf == ref


@pytest.mark.parametrize("size", ["gpu", "tiny"])
@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_ablations_change_only_their_part(size, ablation):
    ref = load(GPU_REF if size == "gpu" else TINY_REF)
    sub = "" if size == "gpu" else "tuning/"
    conf = load(ROOT / f"conf/ablations/{sub}train_almtok_{ablation}.yaml")
    gen, ref_gen = (c["codec_conf"].pop("generator_params") for c in (conf, ref))
    assert conf == ref
    assert changed_keys(gen, ref_gen) == ABLATIONS[ablation]


def test_no_mae_has_no_mae_head_and_loss(models, stepped):
    assert models["no_mae"].generator.mae is None
    stats = stepped["no_mae"]["stats"]
    assert "mae_loss" not in stats and "ar_loss" in stats
    assert "mae_loss" in stepped["reference"]["stats"]


def test_no_ar_has_no_ar_head_and_loss(models, stepped):
    assert models["no_ar"].generator.ar is None
    stats = stepped["no_ar"]["stats"]
    assert "ar_loss" not in stats and "mae_loss" in stats
    assert "ar_loss" in stepped["reference"]["stats"]


def test_trainable_codebooks_learn_and_frozen_ones_do_not(models, stepped):
    trainable = models["trainable_codebooks"].generator.quantizer
    frozen = models["reference"].generator.quantizer
    assert isinstance(trainable.codebooks, torch.nn.Parameter)
    assert stepped["trainable_codebooks"]["grads"]["quantizer.codebooks"]
    # Buffers: no optimizer sees them, no gradient reaches them.
    assert "quantizer.codebooks" not in stepped["reference"]["grads"]
    assert frozen.codebooks.grad is None and not frozen.codebooks.requires_grad
    # Same state-dict key either way.
    assert "codebooks" in trainable.state_dict() and "codebooks" in frozen.state_dict()


def test_single_stage_trains_every_part(stepped):
    grads = stepped["single_stage"]["grads"]
    assert all(grads.values())
    assert any(n.startswith("patchify.") for n in grads)


def test_strided_model_has_no_queries_and_one_window(models):
    strided, query = models["strided"], models["reference"]
    gen = strided.generator
    assert not hasattr(gen, "query_encoder") and not hasattr(gen, "query_decoder")
    assert all("token" not in n for n, _ in gen.named_parameters())
    assert gen.window_sizes == [gen.inference_window] == [4]
    strided.eval(), query.eval()
    with torch.no_grad():
        for length in (1, 1279, 1280, 5000, 6401):
            x = batch(length=length)[:1]
            assert strided.encode(x).shape == query.encode(x, window_size=4).shape
        # Padded batches code as their items alone, as in the query model.
        x = batch(n=2, length=5000)
        codes, n = strided.encode_with_lengths(x, torch.tensor([5000, 2000]))
        alone = strided.encode(x[1, :2000])
        assert torch.equal(codes[:, 1, : n[1]], alone[:, 0])
        with pytest.raises(ValueError, match="built for window 4"):
            strided.encode(x[:1], window_size=2)


def test_strided_needs_one_window():
    conf = codec_conf(
        ROOT / "conf/ablations/tuning/train_almtok_strided.yaml",
        random_codebooks_for_debugging=True,
    )
    conf["generator_params"]["window_sizes"] = [2, 4]
    with pytest.raises(ValueError, match=r"window_sizes must be \[inference_window\]"):
        ALMTokenizer(**conf)
    conf["generator_params"]["compression"] = "pooled"
    with pytest.raises(ValueError, match="unknown compression 'pooled'"):
        ALMTokenizer(**conf)


def test_trainable_codebooks_from_a_file_or_random(tmp_path):
    path = tmp_path / "codebooks.npz"
    books = np.random.randn(3, 16, 8).astype(np.float32)
    save_codebooks(path, books, "test", 8)
    args = dict(n_q=3, codebook_size=16, codebook_dim=8, trainable_codebooks=True)
    from_file = SemanticPriorRVQ(4, codebook_file=str(path), **args)
    assert torch.allclose(
        from_file.codebooks.detach(), standardize(torch.from_numpy(books))
    )
    assert "codebooks" in dict(from_file.named_parameters())
    torch.manual_seed(0)
    rvq = SemanticPriorRVQ(4, codebook_init="random", **args)
    opt = torch.optim.SGD([rvq.codebooks], lr=0.5)
    h = torch.randn(2, 6, 4)
    valid = torch.ones(2, 6, dtype=torch.bool)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = rvq(h, valid)[3]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # the codebook loss moves entries to the data
    for init in ("random", "model_file"):
        with pytest.raises(ValueError, match=f"codebook_init: {init} takes no"):
            SemanticPriorRVQ(4, codebook_init=init, codebook_file=str(path))
    with pytest.raises(ValueError, match="unknown codebook_init 'kmean'"):
        SemanticPriorRVQ(4, codebook_init="kmean", codebook_file=str(path))


def test_count_params_cli(tmp_path, capsys):
    out = tmp_path / "params.json"
    soundstream = str(CONFIGS["soundstream_tiny"])
    main(["--config", soundstream, "--reference", str(TINY_REF), "--out", str(out)])
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    counts = result[soundstream]
    assert counts["matched"] and counts["bitrate"] == pytest.approx(225.0)
    assert counts["codec_path"] == counts["generator"]  # no training-only heads
    with pytest.raises(SystemExit) as e:
        main(
            [
                "--config",
                soundstream,
                "--reference",
                str(TINY_REF),
                "--tolerance",
                "0.01",
            ]
        )
    assert e.value.code == 1


@pytest.mark.parametrize(
    "name, changed",
    [
        ("distill", {"semantic_distillation_params"}),
        ("semantic_input", {"semantic_input_params"}),
        (
            "semantic_input_distill",
            {"semantic_input_params", "semantic_distillation_params"},
        ),
    ],
)
def test_small16k_semantic_ablations_change_only_the_teacher_keys(name, changed):
    ref = load(ROOT / "conf/tuning/train_almtok_small16k_stage2.yaml")
    conf = load(ROOT / f"conf/ablations/tuning/train_almtok_small16k_{name}.yaml")
    distilled = "semantic_distillation_params" in changed
    assert (conf["codec_conf"].pop("lambda_semantic", 0) > 0) == distilled
    gen, ref_gen = (c["codec_conf"].pop("generator_params") for c in (conf, ref))
    assert conf == ref
    assert changed_keys(gen, ref_gen) == changed | {"semantic_teacher_params"}
    # Whisper, as the codebooks of the recipe (--speech_prior whisper) were made.
    assert gen["semantic_teacher_params"]["kind"] == "whisper"


@pytest.mark.parametrize(
    "name, changed",
    [
        ("deep", {"encoder_params.num_layers", "decoder_params.num_layers"}),
        ("frozen_codebooks", {"quantizer_params.trainable_codebooks"}),
        ("window4", {"window_sizes"}),
        (
            "dead_codes",
            {"quantizer_params.dead_code_threshold", "quantizer_params.usage_decay"},
        ),
        ("no_mae", {"mae_params.num_layers", "mae_params.num_heads"}),
        (
            "no_ar",
            {
                f"ar_params.{k}"
                for k in ("target_layer", "dim", "num_layers", "num_heads")
            },
        ),
        ("strided", {"window_sizes", "compression"}),
        (
            "random_codebooks",
            {"quantizer_params.codebook_file", "quantizer_params.codebook_init"},
        ),
        ("single_stage", set()),
    ],
)
def test_small16k_ablations_change_one_thing(name, changed):
    _, diff = small16k_ablation(name)
    assert diff == {f"codec_conf.generator_params.{k}" for k in changed}


def test_small16k_stage2_content_adds_only_the_content_loss():
    conf, diff = small16k_ablation("stage2_content")
    # content_loss_params' one key is its default (null): not a change.
    assert diff == {"codec_conf.lambda_content"}
    assert conf["codec_conf.content_loss_params.checkpoint"] is None
    assert conf["codec_conf.lambda_content"] > 0


def test_small16k_gan_finetune_changes_only_the_gan_and_the_budget():
    conf, diff = small16k_ablation("gan_finetune")
    assert diff == {
        "max_epoch",
        "codec_conf.adversarial_start_step",
        "optim_conf.lr",
        "optim2_conf.lr",
        "scheduler",
        "scheduler_conf.gamma",
    }
    assert conf["codec_conf.adversarial_start_step"] == 0


FINETUNE = {
    "max_epoch",
    "optim_conf.lr",
    "scheduler",
    "scheduler_conf.gamma",
    "codec_conf.generator_params.quantizer_params.codebook_file",
    "codec_conf.generator_params.quantizer_params.codebook_init",
}


@pytest.mark.parametrize(
    "name, changed",
    [
        ("finetune", set()),
        (
            "finetune_time_relation",
            {
                "semantic_distillation_params.source",
                "semantic_distillation_params.time_relation",
                "lambda_semantic_relation",
            },
        ),
        (
            "finetune_sembo_low",
            {
                "semantic_distillation_params.source",
                "semantic_distillation_params.target",
                "semantic_distillation_params.bottleneck_params.low_dim",
                "semantic_distillation_params.bottleneck_params.hidden_dim",
                "lambda_semantic",
            },
        ),
    ],
)
def test_small16k_finetunes_differ_only_in_layer1_losses(name, changed):
    """Issue 13's item 4 at an equal budget: the fine-tunes from the shipped
    model differ from each other only in LoSATok's losses on layer 1."""
    conf, diff = small16k_ablation(name)
    teacher = (
        {
            "semantic_teacher_params.kind",
            "semantic_teacher_params.window_seconds",
        }
        if changed
        else set()
    )
    expected = FINETUNE | {
        k if k.startswith("lambda") else f"generator_params.{k}"
        for k in changed | teacher
    }
    assert diff == {k if k in FINETUNE else f"codec_conf.{k}" for k in expected}, diff
    if name == "finetune_time_relation":  # the loss alone: no target
        assert "codec_conf.generator_params.semantic_distillation_params.target" in conf
    # It builds without the k-means file: --init_param brings the entries.
    codec = load(ROOT / f"conf/ablations/tuning/train_almtok_small16k_{name}.yaml")
    ALMTokenizer(**codec["codec_conf"])


CONTEXT = {"chunk_length", "batch_size", "num_iters_per_epoch"}
LEVEL = (
    CONTEXT
    | {"max_epoch", "scheduler", "scheduler_conf.gamma"}
    | {
        f"codec_conf.generator_params.quantizer_params.{k}"
        for k in ("dead_code_threshold", "usage_decay", "beam_size")
    }
    | {"codec_conf.lambda_content", "codec_conf.random_gain_db"}
    | {"codec_conf.input_level_dbfs", "codec_conf.max_input_gain_db"}
)


@pytest.mark.parametrize(
    "name, changed",
    [
        ("finetune_context16", CONTEXT),
        ("finetune_context32", CONTEXT),
        (
            "finetune_context32_long",
            CONTEXT | {"max_epoch", "scheduler", "scheduler_conf.gamma"},
        ),
        (
            "finetune_context32_dead_codes",
            CONTEXT
            | {"max_epoch", "scheduler", "scheduler_conf.gamma"}
            | {
                f"codec_conf.generator_params.quantizer_params.{k}"
                for k in ("dead_code_threshold", "usage_decay")
            },
        ),
        (
            "finetune_context32_content",
            CONTEXT
            | {"max_epoch", "scheduler", "scheduler_conf.gamma"}
            | {
                f"codec_conf.generator_params.quantizer_params.{k}"
                for k in ("dead_code_threshold", "usage_decay")
            }
            # and content_loss_params, whose one key is its default (null)
            | {"codec_conf.lambda_content"},
        ),
        ("finetune_level", LEVEL),
        (
            "finetune_band",
            LEVEL
            | {"codec_conf.random_lowpass_hz", "codec_conf.random_lowpass_share"}
            | {"codec_conf.adversarial_start_step"},
        ),
    ],
)
def test_small16k_context_finetunes_change_only_the_chunks(name, changed):
    """Longer chunks at the reference fine-tune's audio per step, decoded in
    chunks of the training length, every window a whole number of tokens."""
    ref = flat(load(ROOT / "conf/ablations/tuning/train_almtok_small16k_finetune.yaml"))
    conf = flat(load(ROOT / f"conf/ablations/tuning/train_almtok_small16k_{name}.yaml"))
    assert changed_keys(conf, ref) == changed | {"codec_conf.chunk_seconds"}
    assert ("codec_conf.lambda_content" in changed) == (
        "codec_conf.content_loss_params.checkpoint" in conf
    )
    assert conf["batch_size"] * conf["chunk_length"] == (
        ref["batch_size"] * ref["chunk_length"]
    )
    fs = conf["codec_conf.sampling_rate"]
    assert conf["codec_conf.chunk_seconds"] * fs == conf["chunk_length"]
    hop = conf["codec_conf.generator_params.patchify_params.hop"]
    for w in conf["codec_conf.generator_params.window_sizes"]:
        assert conf["chunk_length"] % (hop * w) == 0


@pytest.mark.parametrize(
    "name, changed",
    [
        ("stage1_no_time_relation", {"codec_conf.lambda_sembo_relation"}),
        ("high_only", {"codec_conf.lambda_semantic_low"}),
        ("low_only", {"codec_conf.lambda_semantic_high"}),
    ],
)
def test_losatok_ablations_turn_one_loss_off(name, changed):
    stage = "stage1" if name.startswith("stage1") else "stage2"
    ref = flat(load(ROOT / f"conf/tuning/train_losatok_small16k_{stage}.yaml"))
    conf = flat(
        load(ROOT / f"conf/ablations/tuning/train_losatok_small16k_{name}.yaml")
    )
    assert changed_keys(conf, ref) == changed
    assert all(conf[k] == 0.0 and ref[k] > 0 for k in changed)
    bench = load(ROOT / "conf/tuning/benchmark_losatok_small16k.yaml")
    assert any(
        f"train_losatok_small16k_{name}.yaml" in str(spec.values())
        for spec in bench["systems"].values()
    )


@pytest.mark.parametrize("baseline", BASELINES)
def test_encoder_signal_share_sees_the_init_that_collapses_the_baselines(baseline):
    """ESPnet's SoundStream and DAC at their own init pass almost none of the
    input through their encoders; the He init keeps a large share, given by the
    script (local/encoder_signal_share.py, the measurement behind the small16k
    benchmark) or by registering the codec again as ``<name>_he``, which keeps
    every parameter's name and shape, and gives noise back at its level."""
    sys.path.insert(0, str(ROOT / "local"))
    from encoder_signal_share import encoder_of, signal_share

    config = str(baseline_config("small16k", baseline))
    torch.manual_seed(1)
    wav = torch.randn(2, 1, 16000) * 0.1
    own = signal_share(encoder_of(config, None, he=False), wav)
    he = signal_share(encoder_of(config, None, he=True), wav)
    assert own["signal_share"] < 0.01 < 0.3 < he["signal_share"]
    assert own["louder_change"] < 0.01 < he["louder_change"]

    torch.manual_seed(0)
    plain, registered = build_codec(config), build_codec(config, codec=f"{baseline}_he")
    assert isinstance(registered, type(plain))
    shapes = [
        {k: v.shape for k, v in m.state_dict().items()} for m in (plain, registered)
    ]
    assert shapes[0] == shapes[1]
    gen = registered.generator
    assert signal_share(gen.encoder, wav)["signal_share"] > 0.3
    with torch.no_grad():
        level = gen.decoder(gen.encoder(wav)).pow(2).mean().sqrt()
    assert level == pytest.approx(0.1, rel=0.2)


def test_variance_preserving_init_refuses_what_it_cannot_set():
    conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(2, 2, 3))
    with pytest.raises(TypeError, match="deprecated torch.nn.utils.weight_norm"):
        init_variance_preserving(conv)


@pytest.mark.parametrize("baseline", BASELINES)
def test_adversarial_start_warms_up_without_the_discriminator(baseline):
    """Before ``adversarial_start_step`` a ``*_he`` baseline's generator loss is
    ESPnet's less the adversarial and feature-matching terms, and its
    discriminator neither runs nor changes; from that step on it is ESPnet's
    codec again. At 0 (the default) the state dict is ESPnet's."""
    config = CONFIGS[f"{baseline}_tiny"]

    def build(**codec_conf):
        torch.manual_seed(0)
        codec_conf = {**load(config)["codec_conf"], **codec_conf}
        return build_codec(str(config), codec=f"{baseline}_he", codec_conf=codec_conf)

    full = build()
    assert "generator_steps" not in full.state_dict()
    warm = build(adversarial_start_step=2)
    assert torch.equal(
        torch.nn.utils.parameters_to_vector(full.parameters()),
        torch.nn.utils.parameters_to_vector(warm.parameters()),
    )
    x = batch(seed=3, n=2, length=6400)
    outs = {}
    for name, model in (("full", full), ("warm", warm)):
        model.train()
        torch.manual_seed(1)  # the same k-means init of the codebooks
        outs[name] = model(x, forward_generator=True)
    full_stats, warm_stats = outs["full"]["stats"], outs["warm"]["stats"]
    assert full_stats["adv_loss"] > 0 and full_stats["feat_match_loss"] > 0
    assert warm_stats["adv_loss"] is None and warm_stats["feat_match_loss"] is None
    expected = (
        full_stats["loss"] - full_stats["adv_loss"] - full_stats["feat_match_loss"]
    )
    assert warm_stats["loss"] == pytest.approx(expected, rel=1e-5)

    d_before = torch.nn.utils.parameters_to_vector(warm.discriminator.parameters())
    d_turn = warm(x, forward_generator=False)
    d_turn["loss"].backward()
    assert all(p.grad is None for p in warm.discriminator.parameters())
    warm(x, forward_generator=True)  # step 2: still warming up
    assert warm(x, forward_generator=False)["stats"]["discriminator_loss"] is None
    g3 = warm(x, forward_generator=True)  # step 3: the discriminator is on
    assert g3["stats"]["adv_loss"] > 0 and g3["stats"]["feat_match_loss"] > 0
    d3 = warm(x, forward_generator=False)
    d3["loss"].backward()
    assert d3["stats"]["discriminator_loss"] > 0
    assert any(p.grad is not None for p in warm.discriminator.parameters())
    assert torch.equal(
        d_before, torch.nn.utils.parameters_to_vector(warm.discriminator.parameters())
    )
    assert int(warm.generator_steps) == 3
    with pytest.raises(ValueError, match="adversarial_start_step"):
        build(adversarial_start_step=-1)


def test_warmup_benchmark_gives_the_baselines_the_reference_warm_up():
    """``benchmark_small16k_warmup.yaml``: the matched small baselines with our
    init start their GAN at the reference's ``adversarial_start_step``."""
    conf = read_config(str(ROOT / "conf/tuning/benchmark_small16k_warmup.yaml"))
    systems = conf["systems"]
    ref = systems[conf["reference"]]
    assert ref.stage2_config == str(SMALL16K_REF.relative_to(ROOT))
    start = load(SMALL16K_REF)["codec_conf"]["adversarial_start_step"]
    assert conf["baselines"] == [f"{b}_he" for b in BASELINES]
    for baseline in BASELINES:
        system = systems[f"{baseline}_he"]
        path = baseline_config("small16k", baseline).relative_to(ROOT)
        assert system.stage2_config == str(path) and not system.two_stage
        args = system.train_args.split()
        assert args[:2] == ["--codec", f"{baseline}_he"]
        assert f"adversarial_start_step={start}" in args
