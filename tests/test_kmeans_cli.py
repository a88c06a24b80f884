"""The k-means CLI: features in, semantic-prior codebook file and stats out."""

import json
import logging
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from espnet_almtok.bin import extract_features, learn_kmeans
from espnet_almtok.model.semantic_prior import load_codebooks


def write_feats(d, kind, offset, dim=8, fallback=False, utts=4, frames=60):
    """Features around ``offset`` as extract_features writes them; the scp path."""
    d.mkdir(parents=True)
    g = np.random.default_rng(abs(offset))
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for i in range(utts):
            w[f"u{i}"] = (offset + g.standard_normal((frames, dim))).astype(np.float32)
    info = {"kind": kind, "fallback": fallback, "dim": dim}
    (d / "info.json").write_text(json.dumps(info))
    return str(d / "feats.scp")


@pytest.fixture
def feats(tmp_path):
    return {
        "speech": write_feats(tmp_path / "w2v", "wav2vec2", 10),
        "sound": write_feats(tmp_path / "beats", "beats", -10),
    }


def test_learn_kmeans_subprocess(feats, tmp_path):
    out = tmp_path / "km" / "codebooks.npz"
    cmd = [sys.executable, "-m", "espnet_almtok.bin.learn_kmeans"]
    cmd += ["--speech_feats", feats["speech"], "--sound_feats", feats["sound"]]
    cmd += ["--n_q", "2", "--codebook_size", "16", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "layer 2:" in run.stderr and "perplexity" in run.stderr
    books, meta = load_codebooks(out, 2, 16, 8)
    assert meta == {"source": "wav2vec2+beats", "num_speech": "8"}
    # Half the entries come from each feature set (speech near +10, sound -10).
    assert (books[0, :8].mean(1) > 5).all() and (books[0, 8:].mean(1) < -5).all()
    stats = json.loads((tmp_path / "km" / "codebooks_stats.json").read_text())
    assert (stats["speech_frames"], stats["sound_frames"]) == (240, 240)
    assert [s["layer"] for s in stats["layers"]] == [1, 2]
    for s in stats["layers"]:
        assert 1 <= s["perplexity"] <= s["used"] <= s["size"] == 16
        assert 0 <= s["min_cluster_size"] <= s["max_cluster_size"] <= 480
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "codebooks.npz",
        "codebooks_stats.json",
    ]


def test_fallback_features_are_labelled(tmp_path, speechlike, caplog):
    lines = []
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", speechlike(16000, seed=i).numpy(), 16000)
        lines.append(f"u{i} {tmp_path / f'{i}.wav'}\n")
    (tmp_path / "wav.scp").write_text("".join(lines))
    extract_features.main(
        ["--wav_scp", str(tmp_path / "wav.scp"), "--out_dir", str(tmp_path / "mel")]
        + ["--kind", "logmel", "--n_mels", "20"]
    )
    out = tmp_path / "codebooks.npz"
    with caplog.at_level(logging.WARNING):
        learn_kmeans.main(
            ["--speech_feats", str(tmp_path / "mel" / "feats.scp"), "--n_q", "3"]
            + ["--codebook_size", "8", "--out", str(out)]
        )
    assert "NO semantic prior" in caplog.text
    books, meta = load_codebooks(out, 3, 8, 20)
    # Without sound features every entry is a speech entry.
    assert meta == {"source": "logmel-fallback", "num_speech": "8"}


def test_max_frames_subsamples_with_a_seed(feats, tmp_path):
    def run(name, seed):
        out = tmp_path / name
        learn_kmeans.main(
            ["--speech_feats", feats["speech"], "--n_q", "1", "--codebook_size", "4"]
            + ["--max_frames", "50", "--seed", str(seed), "--out", str(out)]
        )
        stats = json.loads(out.with_name(out.stem + "_stats.json").read_text())
        assert stats["speech_frames"] == 50
        return load_codebooks(out, 1, 4, 8)[0]

    assert np.array_equal(run("a.npz", 0), run("b.npz", 0))
    assert not np.array_equal(run("a.npz", 0), run("c.npz", 1))


def test_bad_inputs_are_named(feats, tmp_path):
    other = write_feats(tmp_path / "wide", "beats", -10, dim=6)
    out = str(tmp_path / "codebooks.npz")
    args = ["--n_q", "1", "--codebook_size", "4", "--out", out]
    with pytest.raises(
        ValueError, match=r"w2v/feats.scp has dim 8.*wide/feats.scp has dim 6"
    ):
        learn_kmeans.main(
            ["--speech_feats", feats["speech"], "--sound_feats", other] + args
        )
    with pytest.raises(ValueError, match="num_speech must lie in"):
        learn_kmeans.main(
            ["--speech_feats", feats["speech"], "--num_speech", "5"] + args
        )
    (tmp_path / "w2v" / "info.json").unlink()
    with pytest.raises(FileNotFoundError, match="w2v/info.json does not exist"):
        learn_kmeans.main(["--speech_feats", feats["speech"]] + args)
    learn_kmeans.main(["--speech_feats", feats["speech"], "--source", "hubert"] + args)
    assert load_codebooks(out, 1, 4, 8)[1]["source"] == "hubert"
