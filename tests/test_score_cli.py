import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf

from espnet_almtok.bin import summarize
from espnet_almtok.bin.score import get_parser
from espnet_almtok.eval.metrics import METRICS, resample
from espnet_almtok.eval.scoring import score
from espnet_almtok.eval.summary import TABLE_HEADER

ROOT = Path(__file__).resolve().parents[1]
FS = 16000
STATS = dict(
    window_size=4,
    fs=FS,
    num_streams=3,
    code_size_per_stream=[2048, 2048, 1024],
    frame_shift=1280,
    bitrate=400.0,
    token_rate=12.5,
    num_utts=4,
    audio_seconds=3.5,
    num_token_steps=42,
    encode_seconds=0.35,
    decode_seconds=0.7,
    device="cpu",
)


def write_corpus(root: Path, speechlike) -> Path:
    """Refs and reconstructions: padded, at 24 kHz, plain, and silent."""
    refs, hyps = [], []
    for i, seconds in enumerate((1.0, 1.2, 0.8)):
        ref = speechlike(int(seconds * FS), seed=i).double().numpy()
        noise = np.random.default_rng(10 + i).standard_normal(len(ref))
        hyp, fs = ref + 0.01 * noise, FS
        if i == 0:  # codecs decode whole windows
            hyp = np.concatenate([hyp, np.zeros(300)])
        if i == 1:
            hyp, fs = resample(hyp, FS, 24000), 24000
        refs.append((f"utt{i}", ref, FS))
        hyps.append((f"utt{i}", hyp, fs))
    refs.append(("silent", np.zeros(FS // 2), FS))
    hyps.append(("silent", np.zeros(FS // 2), FS))
    for name, items in (("ref", refs), ("hyp", hyps)):
        (root / name).mkdir()
        lines = []
        for utt, wav, fs in items:
            path = root / name / f"{utt}.wav"
            sf.write(path, wav, fs)
            lines.append(f"{utt} {path}\n")
        (root / name / "wav.scp").write_text("".join(lines))
    (root / "decode_stats.json").write_text(json.dumps(STATS))
    return root


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"espnet_almtok.bin.{module}", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def strict_json(path: Path):
    def refuse(name):
        raise ValueError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_score_and_summarize(tmp_path, speechlike):
    corpus = write_corpus(tmp_path, speechlike)
    out = tmp_path / "score"
    proc = run(
        "score",
        *("--ref_scp", str(corpus / "ref/wav.scp")),
        *("--hyp_scp", str(corpus / "hyp/wav.scp")),
        *("--decode_stats", str(corpus / "decode_stats.json")),
        *("--out_dir", str(out), "--tag", "test w=4"),
        *("--num_plots", "2", "--log_every", "2"),
        *("--speech_metrics", "false"),  # tests/test_speech_metrics.py has them
    )
    assert "resampling reconstructions from 24000 to 16000 Hz" in proc.stderr
    assert "scored 2/4" in proc.stderr and "scored 4/4" in proc.stderr
    assert "silent: pesq is NaN" in proc.stderr

    with open(out / "per_utt.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0]) == ["utt_id", "seconds", "hyp_len_diff", *METRICS]
    assert [r["utt_id"] for r in rows] == ["utt0", "utt1", "utt2", "silent"]
    assert [int(r["hyp_len_diff"]) for r in rows] == [300, 0, 0, 0]
    assert math.isnan(float(rows[3]["pesq"]))
    for row in rows[:3]:
        assert float(row["pesq"]) > 2.5 and float(row["stoi"]) > 0.7, row

    summary = strict_json(out / "summary.json")
    assert summary["tag"] == "test w=4" and summary["num_utts"] == 4
    pesq = summary["metrics"]["pesq"]
    assert (pesq["count"], pesq["num_nan"]) == (3, 1)
    assert pesq["mean"] == pytest.approx(np.mean([float(r["pesq"]) for r in rows[:3]]))
    decode = summary["decode"]
    assert decode["bitrate"] == 400.0 and decode["window_size"] == 4
    assert decode["real_bitrate"] == pytest.approx(42 * (11 + 11 + 10) / 3.5)
    assert decode["encode_rtf"] == pytest.approx(0.1)
    assert decode["decode_rtf"] == pytest.approx(0.2)

    table = (out / "summary.md").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("| tag | window |")
    assert table[2].startswith("| test w=4 | 4 | 400.0 | 384.0 | 12.50 |")
    assert "(1 NaN)" in table[2] and table[2].endswith("| 4 |")

    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "utt0.png",
        "utt1.png",
    ]
    assert matplotlib.image.imread(out / "images/utt0.png").ndim == 3
    assert not [p for p in out.rglob(".*")], "temporary files left behind"

    # A second directory without decode stats, to tabulate beside the first.
    other = tmp_path / "other"
    shutil.copytree(out, other)
    (other / "summary.json").write_text(
        json.dumps(dict(summary, tag="no stats", decode=None))
    )
    proc = run(
        "summarize",
        *("--score_dirs", str(out), str(other)),
        *("--out", str(tmp_path / "RESULTS.md")),
        *("--json", str(tmp_path / "RESULTS.json")),
    )
    results = (tmp_path / "RESULTS.md").read_text()
    assert proc.stdout == results
    lines = results.splitlines()
    assert lines[0] == "| " + " | ".join(TABLE_HEADER) + " |"
    assert lines[2] == table[2]
    assert lines[3].startswith("| no stats | - | - | - | - |")
    assert len(lines) == 4
    combined = strict_json(tmp_path / "RESULTS.json")["results"]
    assert [r["score_dir"] for r in combined] == [str(out), str(other)]
    assert combined[0] == dict(summary, score_dir=str(out))


def test_missing_reconstructions_are_listed(tmp_path, speechlike):
    corpus = write_corpus(tmp_path, speechlike)
    hyp_scp = corpus / "hyp/wav.scp"
    lines = hyp_scp.read_text().splitlines(keepends=True)
    hyp_scp.write_text("".join(line for line in lines if "utt1" not in line))
    args = get_parser().parse_args(
        ["--ref_scp", str(corpus / "ref/wav.scp"), "--hyp_scp", str(hyp_scp)]
        + ["--out_dir", str(tmp_path / "score")]
    )
    with pytest.raises(ValueError, match="no reconstruction for 1 of 4 .*: utt1$"):
        score(args)
    assert not (tmp_path / "score/summary.json").exists()


def test_incomplete_decode_stats_are_refused(tmp_path, speechlike):
    corpus = write_corpus(tmp_path, speechlike)
    stats = dict(STATS)
    del stats["num_token_steps"]
    (corpus / "decode_stats.json").write_text(json.dumps(stats))
    args = get_parser().parse_args(
        ["--ref_scp", str(corpus / "ref/wav.scp")]
        + ["--hyp_scp", str(corpus / "hyp/wav.scp")]
        + ["--decode_stats", str(corpus / "decode_stats.json")]
        + ["--out_dir", str(tmp_path / "score")]
    )
    with pytest.raises(ValueError, match="missing keys num_token_steps"):
        score(args)


def test_summarize_needs_finished_scoring(tmp_path):
    with pytest.raises(FileNotFoundError, match="has scoring finished"):
        summarize.main(["--score_dirs", str(tmp_path), "--out", "unused.md"])
