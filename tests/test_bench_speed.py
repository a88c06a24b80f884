"""bench_speed: well-formed speed.json / speed.md at the tiniest scale (no timing
assertions), and its refusals."""

import json
import math
from pathlib import Path

import pytest
import torch

from espnet_almtok.bin import bench_speed

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {
    "almtok": ROOT / "conf/tuning/train_almtok_tiny_stage2.yaml",
    "soundstream": ROOT / "conf/baselines/tuning/train_soundstream_tiny.yaml",
}
DURATIONS = ("1s", "2s")


def args(out_dir, *more):
    systems = [f"--system={name}={path}" for name, path in SYSTEMS.items()]
    return systems + ["--out_dir", str(out_dir), *more]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    # 1 s chunks (0.96 s in whole tokens): the 2 s input is coded in 3 chunks.
    bench_speed.main(
        args(out, "--reference", "soundstream", "--durations", "1", "2")
        + ["--repeats", "1", "--batch_size", "2", "--batch_seconds", "1"]
        + ["--chunk_seconds", "1", "--num_threads", "1"]
    )
    return json.loads((out / "speed.json").read_text()), (out / "speed.md").read_text()


def test_speed_json(result):
    data, _ = result
    assert data["settings"]["reference"] == "soundstream"
    assert data["environment"]["num_threads"] == 1
    assert set(data["systems"]) == set(data["ratios"]) == set(SYSTEMS)
    assert data["systems"]["almtok"]["codec"] == "ALMTokenizer"
    assert data["systems"]["soundstream"]["window_size"] is None
    for name, row in data["systems"].items():
        assert row["chunk_seconds"] < 2
        m = row["metrics"]
        assert m["params"] > 0 and m["bitrate"] == 225.0
        for d in DURATIONS:
            for op in ("encode", "decode"):
                rtf = m[f"{op}_rtf@{d}"]
                assert rtf > 0 and math.isfinite(rtf)
                assert m[f"{op}_peak_mib@{d}"] >= 0
        assert m["throughput"] > 0 and math.isfinite(m["throughput"])
        assert m["batch_peak_mib"] >= 0
        ref = data["systems"]["soundstream"]["metrics"]
        for metric, value in m.items():
            ratio = data["ratios"][name][metric]
            if ref[metric]:
                assert ratio == pytest.approx(value / ref[metric])
            else:
                assert ratio is None
    assert all(r in (1.0, None) for r in data["ratios"]["soundstream"].values())
    assert data["ratios"]["soundstream"]["encode_rtf@2s"] == 1.0


def test_speed_md(result):
    _, text = result
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 * (2 + len(SYSTEMS))  # header, rule, systems; 2 tables
    for name in SYSTEMS:
        assert sum(row.startswith(f"| {name} |") for row in rows) == 2
    assert "encode RTF 2s" in text and "(x1.00)" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU exists")
def test_cuda_without_gpu(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_speed.main(args(tmp_path, "--device", "cuda"))
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize(
    "more, message",
    [
        (["--reference", "dac"], "--reference 'dac' is not a --system"),
        (["--system", "almtok=conf/x.yaml"], "names must differ"),
        (["--system", "dac=no/such.yaml"], "no such file"),
        (["--durations", "0"], "must be > 0"),
    ],
)
def test_refusals(tmp_path, capsys, more, message):
    with pytest.raises(SystemExit):
        bench_speed.main(args(tmp_path, *more))
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
