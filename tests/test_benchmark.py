"""The benchmark driver's config checks and verdicts (the run itself: test_recipe)."""

import pytest
import yaml

from espnet_almtok.bin.benchmark import claims, read_config

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
    ],
)
def test_bad_configs_are_refused_by_name(tmp_path, conf, message):
    path = write(tmp_path, **conf)
    with pytest.raises(ValueError, match=message) as e:
        read_config(path)
    assert path in str(e.value)


def test_claims_compare_the_reference_with_each_baseline():
    scores = {
        "almtok": {"mel_distance": 0.5, "stoi": 0.9},
        "soundstream": {"mel_distance": 0.6, "stoi": 0.95},
        "dac": {"mel_distance": 0.4, "stoi": None},
    }
    report = dict(
        reference="almtok",
        baselines=["soundstream", "dac"],
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
    }
