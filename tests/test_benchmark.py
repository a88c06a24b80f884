"""The benchmark driver's config checks and verdicts (the run itself: test_recipe)."""

import argparse
import json

import kaldiio
import numpy as np
import pytest
import yaml

from espnet_almtok.eval.benchmark import (
    Benchmark,
    claims,
    code_usage,
    markdown,
    plots,
    read_config,
    read_results,
)

SYSTEMS = {
    "almtok": {"stage1_config": "s1.yaml", "stage2_config": "s2.yaml"},
    "soundstream": {"config": "ss.yaml"},
    "no_ar": {"stage2_config": "no_ar.yaml", "stage1_from": "almtok"},
}


def write(tmp_path, **conf):
    base = dict(iters_per_epoch=2, epochs_per_stage=1, reference="almtok")
    path = tmp_path / "bench.yaml"
    path.write_text(
        yaml.safe_dump({**base, "systems": SYSTEMS, **conf}, sort_keys=False)
    )
    return str(path)


def test_systems_are_read_with_their_training_kind(tmp_path):
    systems = read_config(write(tmp_path, baselines=["soundstream"]))["systems"]
    assert [s.two_stage for s in systems.values()] == [True, False, True]
    assert systems["soundstream"].stage2_config == "ss.yaml"
    assert systems["no_ar"].stage1_from == "almtok"


@pytest.mark.parametrize(
    "conf, message",
    [
        (dict(epochs=3), "epochs"),
        (dict(reference="dac"), "'dac' is not one of the systems"),
        (dict(baselines=["dac"]), "'dac' is not one of the systems"),
        (
            dict(systems={**SYSTEMS, "x": {"config": "a", "stage2_config": "b"}}),
            "systems.x needs either config",
        ),
        (
            dict(systems={"x": {"stage2_config": "b", "stage1_from": "y"}}),
            "stage1_from 'y'",
        ),
        (dict(systems={**SYSTEMS, "x": {"config": "a", "seed": 1}}), "seed"),
        (dict(anchors=["mp3_128k"]), "anchors: 'mp3_128k' is not one of"),
    ],
)
def test_bad_configs_are_refused_by_name(tmp_path, conf, message):
    path = write(tmp_path, **conf)
    with pytest.raises(ValueError, match=message) as e:
        read_config(path)
    assert path in str(e.value)


def test_claims_compare_the_reference_with_each_baseline():
    scores = {
        "almtok": {"mel_distance": 0.5, "stoi": 0.9, "dwer": 0.2},
        "soundstream": {"mel_distance": 0.6, "stoi": 0.95, "dwer": 0.1},
        "dac": {"mel_distance": 0.4, "stoi": None, "dwer": 0.3},
        "codec2_450": {"mel_distance": 0.7, "stoi": 0.8, "dwer": 0.5},
    }
    report = dict(
        reference="almtok",
        baselines=["soundstream", "dac"],
        anchors=["codec2_450"],
        systems={n: {"scores": {"test": s}} for n, s in scores.items()},
    )
    verdicts = {
        (c["baseline"], c["metric"]): c["reference_better"] for c in claims(report)
    }
    assert verdicts == {
        ("soundstream", "mel_distance"): True,  # lower is better
        ("soundstream", "stoi"): False,  # higher is better
        ("dac", "mel_distance"): False,
        ("dac", "stoi"): None,  # not measured: no verdict
        ("soundstream", "dwer"): False,
        ("dac", "dwer"): True,
        ("codec2_450", "mel_distance"): True,
        ("codec2_450", "stoi"): True,
        ("codec2_450", "dwer"): True,
    }
    # A metric the reference has no value for (no transcripts) gives no rows.
    scores["almtok"]["dwer"] = None
    assert {c["metric"] for c in claims(report)} == {"mel_distance", "stoi"}


def fake_report(tmp_path):
    """A report as ``collect`` builds it, for two systems."""
    probe = dict(
        settings=dict(layer=1, steps=4, code_size=64),
        ctc=dict(cer_test=0.9, cer_train=0.5),
        speaker=dict(accuracy=0.5, chance=0.25),
    )
    system = dict(
        role="reference",
        training="two-stage",
        generator_steps=10,
        params=1e6,
        params_ratio=1.0,
        bitrate=225.0,
        scores={"test": {m: 0.5 for m in ("mel_distance", "stoi")}},
        probe=probe,
        code_usage=[dict(size=64, used=3, perplexity=2.0)] * 2,
    )
    speed = dict(
        settings=dict(device="cpu"),
        systems={
            n: dict(metrics={"encode_rtf@1s": 0.1, "encode_rtf@10s": 0.2})
            for n in ("almtok", "dac")
        },
    )
    (tmp_path / "speed").mkdir()
    (tmp_path / "speed/speed.md").write_text("| speed table |\n")
    report = dict(
        config="bench.yaml",
        reference="almtok",
        baselines=["dac"],
        anchors=["codec2_450"],
        epochs=2,
        iters_per_epoch=5,
        device="cpu",
        systems={
            "almtok": system,
            "dac": {**system, "role": "baseline"},
            "codec2_450": {
                **system,
                "role": "anchor",
                "training": "classic codec",
                "generator_steps": None,
                "params": None,
                "params_ratio": None,
                "bitrate": 446.0,
                "probe": None,
            },
        },
        speed=speed,
        chunk=dict(
            num_utts=2,
            wav_scp="test.scp",
            chunk_seconds=0.96,
            num_boundaries=3,
            boundary_seconds=0.2,
            token_agreement=[1.0, 0.5],
            **{
                region: {
                    system: {"mel_distance": {"mean": 0.7}, "si_snr": {"mean": -3.0}}
                    for system in ("chunked", "whole")
                }
                for region in ("boundary", "interior", "utterance")
            },
        ),
    )
    report["systems"]["dac"]["scores"] = {"test": {"mel_distance": 0.4, "stoi": 0.6}}
    report["systems"]["codec2_450"]["scores"] = {
        "test": {"mel_distance": 0.9, "stoi": 0.45, "dwer": 0.8}
    }
    report["claims"] = claims(report)
    return report


def test_report_tables_and_plots(tmp_path):
    report = fake_report(tmp_path)
    plots(report, tmp_path)
    text = markdown(report, tmp_path)
    assert "| almtok | reference | two-stage | 10 | 1.000 |" in text
    assert "| test | stoi | dac | 0.500 | 0.600 | no |" in text
    # The anchor's row: no steps or parameters; a dWER column because one system
    # has a value, "-" for those without.
    assert "| codec2_450 | anchor | classic codec | - | - | - | 446.0 |" in text
    assert "dWER ↓" in text and "| 0.500 | 0.500 | - |" in text
    assert "WER ↓" not in text.replace("dWER ↓", "")
    assert "| almtok | 0.900 | 0.500 | 0.500 | 0.250 | 3 / 3 | 2.0 / 2.0 |" in text
    assert "| speed table |" in text
    assert "| boundary | chunked | 0.700 | -3.000 |" in text and "1.00, 0.50" in text
    for png in ("benchmark.png", "speed.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in text


def test_code_usage_counts_codes_and_perplexity(tmp_path):
    (tmp_path / "codec").mkdir()
    stats = dict(num_streams=2, code_size_per_stream=[4, 4], fs=16000, frame_shift=1280)
    (tmp_path / "decode_stats.json").write_text(json.dumps(stats))
    layers = np.array([[0, 1, 2, 3], [2, 2, 2, 2]])  # layer 2 collapsed
    with kaldiio.WriteHelper(
        f"ark,scp:{tmp_path}/codec/codec.ark,{tmp_path}/codec/codec.scp"
    ) as w:
        w["u1"] = layers.T.reshape(-1).astype(np.int32)  # time-major
    usage = code_usage(tmp_path)
    assert [u["used"] for u in usage] == [4, 1]
    assert np.allclose([u["perplexity"] for u in usage], [4.0, 1.0])


def test_latents_have_no_code_usage_and_complete_dumps_are_kept(tmp_path):
    """LoSATok's latents have no codes; a probe set's dump that a run already
    completed (decode_stats.json is written last) is not coded again."""
    (tmp_path / "latent").mkdir()
    stats = dict(continuous=True, latent_dim=4, fs=16000, frame_shift=640)
    (tmp_path / "decode_stats.json").write_text(json.dumps(stats))
    with kaldiio.WriteHelper(
        f"ark,scp:{tmp_path}/latent/latent.ark,{tmp_path}/latent/latent.scp"
    ) as w:
        w["u1"] = np.zeros((3, 4), dtype=np.float32)
    assert code_usage(tmp_path) is None

    exp = tmp_path / "exp"
    score = exp / "almtok_almtok/stage2/decode_latest/test_speech/w4/score"
    score.mkdir(parents=True)
    rows = [dict(score_dir=str(score))]
    (exp / "almtok_almtok/RESULTS.json").write_text(json.dumps(dict(results=rows)))
    done = exp / "almtok_almtok/probe/train_speech"
    done.mkdir(parents=True)
    (done / "decode_stats.json").write_text("{}")
    conf = read_config(
        write(tmp_path, probe=dict(train_set="train_speech", test_set="test_speech"))
    )
    args = argparse.Namespace(expdir=str(exp), out_dir=str(exp), ngpu=0, run="run.sh")
    bench = Benchmark(conf, args)
    ran = []
    bench.run = lambda cmd, what: ran.append(what)
    bench.window = lambda system: "4"
    bench.dump_tokens(conf["systems"]["almtok"])
    assert ran == []  # train_speech kept; test_speech is the recipe's decoding
    (done / "decode_stats.json").unlink()
    bench.dump_tokens(conf["systems"]["almtok"])
    assert ran == ["almtok: tokens of train_speech"]


def test_read_results_keeps_the_model_rows_only(tmp_path):
    """A recipe run with ``--anchors`` has anchor rows in RESULTS.json: they are
    not the model's scores of a test set."""
    exp = tmp_path / "exp" / "almtok_x"
    model = exp / "stage2" / "decode_latest" / "test_en" / "w4" / "score"
    anchor = exp / "anchors" / "codec2_450" / "test_en" / "score"
    rows = [
        dict(score_dir=str(model), tag="test_en w=4"),
        dict(score_dir=str(anchor), tag="test_en codec2_450"),
    ]
    exp.mkdir(parents=True)
    (exp / "RESULTS.json").write_text(json.dumps(dict(results=rows)))
    assert read_results(exp) == {"test_en": rows[0]}


def test_a_systems_train_args_reach_its_training_only(tmp_path):
    """``train_args`` (e.g. ``--codec soundstream_he``) follow the budget's
    options in ``--train_args`` of that system's recipe call, not the others'."""
    systems = {**SYSTEMS, "ss_he": {"config": "ss.yaml", "train_args": "--codec x"}}
    conf = read_config(write(tmp_path, systems=systems))
    args = argparse.Namespace(expdir="exp", out_dir="out", ngpu=0, run="run.sh")
    bench = Benchmark(conf, args)
    ran = []
    bench.run = lambda cmd, what: ran.append(cmd[cmd.index("--train_args") + 1])
    bench.window = lambda system: "fixed"
    for name in ("soundstream", "ss_he"):
        bench.train(conf["systems"][name])
    budget = "--max_epoch 2 --num_iters_per_epoch 2"
    assert ran == [budget, f"{budget} --codec x"]
