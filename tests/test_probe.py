"""Tests of the content and speaker probes on synthetic token dumps."""

import json
import logging
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from espnet_almtok.bin.probe import main
from espnet_almtok.eval.probe import edit_distance, normalize_text

LETTERS = "abcdefghij"
CHARS = LETTERS + " "
VARIANTS = 4  # token ids per character; each speaker prefers one
CODE_SIZE = 64  # ids >= len(CHARS) * VARIANTS are noise tokens
FAST = ["--steps", "200", "--batch_size", "8", "--hidden", "64", "--lr", "3e-3"]


def synth_utt(rng: np.random.Generator, speaker: int):
    """A text and its 2-layer codes from a synthetic "codec".

    Layer 1 codes each character as one token (sometimes repeated, sometimes
    followed by a noise token) whose variant depends on the speaker; layer 2 is
    uniform noise.
    """
    words = [
        "".join(rng.choice(list(LETTERS), size=rng.integers(2, 6)))
        for _ in range(rng.integers(4, 8))
    ]
    text = " ".join(words)
    layer1 = []
    for c in text:
        preferred = rng.random() < 0.6
        variant = speaker % VARIANTS if preferred else rng.integers(VARIANTS)
        layer1 += [CHARS.index(c) * VARIANTS + variant] * (1 + (rng.random() < 0.15))
        if rng.random() < 0.1:
            layer1.append(rng.integers(len(CHARS) * VARIANTS, CODE_SIZE))
    layer1 = np.array(layer1)
    layer2 = rng.integers(0, CODE_SIZE, size=len(layer1))
    codes = np.stack([layer1, layer2])  # (n_q, T)
    # Kaldi texts are not normalised: the probe must do it.
    return text.capitalize() + ".", codes


def write_set(root: Path, speakers, per_speaker: int, seed: int, **stats):
    """A token dump dir and a Kaldi data dir under ``root``; returns both."""
    rng = np.random.default_rng(seed)
    dump, data = root / "dump", root / "data"
    (dump / "codec").mkdir(parents=True)
    data.mkdir()
    defaults = dict(
        num_streams=2, code_size_per_stream=[CODE_SIZE] * 2, fs=16000, frame_shift=1280
    )
    stats = {**defaults, **stats}
    texts, utt2spk = [], []
    spec = f"ark,scp:{dump}/codec/codec.ark,{dump}/codec/codec.scp"
    with kaldiio.WriteHelper(spec) as writer:
        for spk in speakers:
            for i in range(per_speaker):
                utt = f"spk{spk}_{i:03d}"
                text, codes = synth_utt(rng, spk)
                codes = np.concatenate([codes] * (stats["num_streams"] // 2))
                writer[utt] = codes.T.reshape(-1).astype(np.int32)  # time-major
                texts.append(f"{utt} {text}\n")
                utt2spk.append(f"{utt} spk{spk}\n")
        # In the dump but not in the data dir: skipped with a warning.
        writer[f"extra_{seed}"] = np.zeros(2 * stats["num_streams"], dtype=np.int32)
    (data / "text").write_text("".join(texts))
    (data / "utt2spk").write_text("".join(utt2spk))
    (dump / "decode_stats.json").write_text(json.dumps(stats))
    return dump, data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Train: speakers 0-2; test: the unseen speaker 3."""
    root = tmp_path_factory.mktemp("probe")
    (root / "train").mkdir()
    (root / "test").mkdir()
    train = write_set(root / "train", [0, 1, 2], 16, seed=1)
    test = write_set(root / "test", [3], 16, seed=2)
    return root, train, test


def args(corpus, out: str, *extra):
    root, (train_dump, train_data), (test_dump, test_data) = corpus
    return [
        "--train_dir",
        str(train_dump),
        "--train_data",
        str(train_data),
        "--test_dir",
        str(test_dump),
        "--test_data",
        str(test_data),
        "--out",
        str(root / out),
        "--log_level",
        "WARNING",
        *extra,
    ]


@pytest.fixture(scope="module")
def results(corpus):
    """Probe results on the informative layer 1 and the noise layer 2."""
    out = {}
    for layer in (1, 2):
        main(args(corpus, f"layer{layer}.json", "--layer", str(layer), *FAST))
        out[layer] = json.loads((corpus[0] / f"layer{layer}.json").read_text())
    return out


def test_normalize_and_edit_distance():
    assert normalize_text("  Don't STOP,\tme-now 42!  ") == "don't stop menow 42"
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3


def test_ctc_probe_reads_content(results):
    ctc, noise = results[1]["ctc"], results[2]["ctc"]
    assert ctc["vocab"] == " " + LETTERS
    assert ctc["num_train_utts"] == 48 and ctc["num_test_utts"] == 16
    # Layer 1 spells the text (for an unseen speaker too); layer 2 is noise.
    assert ctc["cer_test"] < 0.4, ctc
    assert noise["cer_test"] > 0.6 and noise["cer_test"] > ctc["cer_test"] + 0.3
    assert ctc["cer_train"] < ctc["cer_test"] + 0.1
    assert ctc["loss_last"] < 0.5 * ctc["loss_first"]


def test_speaker_probe_finds_speakers(results):
    spk, noise = results[1]["speaker"], results[2]["speaker"]
    assert spk["num_speakers"] == 4
    assert spk["num_train_utts"] == 48 and spk["num_test_utts"] == 16
    assert spk["chance"] == pytest.approx(0.25)
    assert spk["accuracy"] >= 0.75, spk
    assert noise["accuracy"] < spk["accuracy"] - 0.25, noise
    assert spk["loss_last"] < 0.5 * spk["loss_first"]


def test_settings(results):
    settings = results[1]["settings"]
    assert settings["layer"] == 1 and settings["code_size"] == CODE_SIZE
    assert settings["token_rate"] == pytest.approx(12.5)
    assert settings["layer_bitrate"] == pytest.approx(12.5 * 6)
    assert settings["codec_bitrate"] == pytest.approx(12.5 * 12)


def test_skips_utterances_without_labels(corpus, caplog):
    with caplog.at_level(logging.WARNING):
        main(args(corpus, "skip.json", "--steps", "2", "--hidden", "8"))
    assert "1 of 49 utterances" in caplog.text and "not in" in caplog.text


def test_same_seed_same_json(corpus):
    short = ["--steps", "20", "--hidden", "16", "--batch_size", "4"]
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        main(args(corpus, f"{name}.json", "--seed", str(seed), *short))
    a, b, c = (json.loads((corpus[0] / f"{name}.json").read_text()) for name in "abc")
    assert a == b
    assert a["ctc"]["loss_first"] != c["ctc"]["loss_first"]


@pytest.mark.parametrize(
    "stats",
    [dict(num_streams=4, code_size_per_stream=[CODE_SIZE] * 4), dict(fs=24000)],
    ids=["num_streams", "fs"],
)
def test_other_codec_rejected(corpus, tmp_path, stats):
    other = write_set(tmp_path, [3], 2, seed=5, **stats)
    root, train, _ = corpus
    with pytest.raises(ValueError, match="different codecs") as e:
        main(args((root, train, other), "bad.json"))
    assert str(train[0] / "decode_stats.json") in str(e.value)
    assert str(other[0] / "decode_stats.json") in str(e.value)


def test_other_code_size_rejected(corpus, tmp_path):
    root, train, _ = corpus
    other = write_set(tmp_path, [3], 2, seed=5)
    stats_path = other[0] / "decode_stats.json"
    stats = json.loads(stats_path.read_text())
    stats["code_size_per_stream"] = [CODE_SIZE, 32]
    stats_path.write_text(json.dumps(stats))
    with pytest.raises(ValueError, match="code_size_per_stream") as e:
        main(args((root, train, other), "bad.json"))
    assert str(stats_path) in str(e.value)


def test_bad_layer_and_labels(corpus, tmp_path):
    with pytest.raises(ValueError, match="--layer 3"):
        main(args(corpus, "bad.json", "--layer", "3"))
    root, train, (test_dump, test_data) = corpus
    (tmp_path / "text").write_text("nobody hello\n")
    (tmp_path / "utt2spk").write_text("nobody spk9\n")
    with pytest.raises(ValueError, match="no utterance") as e:
        main(args((root, train, (test_dump, tmp_path)), "bad.json"))
    assert str(tmp_path / "text") in str(e.value)
    assert not (root / "bad.json").exists()


def test_probes_ignore_padding():
    import torch

    from espnet_almtok.eval.probe import CTCProbe, SpeakerProbe, batch

    torch.manual_seed(0)
    seqs = [torch.randint(0, 16, (n,)) for n in (7, 3)]
    tokens, mask, _ = batch(seqs, "cpu")
    for model in (CTCProbe(16, 5, 8, 3), SpeakerProbe(16, 4, 8)):
        for p in model.parameters():  # as after training (LayerNorm bias not 0)
            torch.nn.init.normal_(p, std=0.5)
        alone = model(*batch(seqs[1:], "cpu")[:2])
        padded = model(tokens, mask)[1:]
        if isinstance(model, CTCProbe):
            padded = padded[:, : alone.shape[1]]
        torch.testing.assert_close(padded, alone)


def to_latents(
    dump: Path, out: Path, dim: int = 16, seed: int = 0, features: bool = False
) -> Path:
    """A continuous codec's dump of the same utterances: each layer-1 token as a
    fixed random vector plus noise, (T, dim) float32, as LoSATok's inference
    (``features``: the same frames as ``extract_features`` writes them)."""
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((CODE_SIZE, dim)).astype(np.float32)
    name = "" if features else "latent"
    (out / name).mkdir(parents=True, exist_ok=True)
    base = out / name / ("feats" if features else "latent")
    with kaldiio.WriteHelper(f"ark,scp:{base}.ark,{base}.scp") as writer:
        for utt, vec in kaldiio.load_scp(str(dump / "codec/codec.scp")).items():
            layer1 = np.asarray(vec).reshape(-1, 2)[:, 0]
            noise = 0.1 * rng.standard_normal((len(layer1), dim))
            writer[utt] = (table[layer1] + noise).astype(np.float32)
    if features:
        info = dict(kind="whisper", dim=dim, sample_rate=16000, frame_shift=1280)
        (out / "info.json").write_text(json.dumps(info))
    else:
        stats = dict(continuous=True, latent_dim=dim, fs=16000, frame_shift=1280)
        (out / "decode_stats.json").write_text(json.dumps(stats))
    return out


def test_probes_read_continuous_latents(corpus, tmp_path):
    root, (train_dump, train_data), (test_dump, test_data) = corpus
    train = to_latents(train_dump, tmp_path / "train")
    test = to_latents(test_dump, tmp_path / "test")
    cmd = args(corpus, "latent.json", *FAST)
    cmd[cmd.index("--train_dir") + 1] = str(train)
    cmd[cmd.index("--test_dir") + 1] = str(test)
    main(cmd)
    result = json.loads((root / "latent.json").read_text())
    assert result["ctc"]["cer_test"] < 0.4, result["ctc"]
    assert result["speaker"]["accuracy"] >= 0.75, result["speaker"]
    settings = result["settings"]
    assert settings["latent_dim"] == 16 and settings["code_size"] is None
    assert settings["layer_bitrate"] is None and settings["codec_bitrate"] is None
    with pytest.raises(ValueError, match="has layers 1..1"):
        main(cmd + ["--layer", "2"])
    # A codec with tokens against one with latents: refused.
    # A semantic encoder's frames (extract_features' layout) read as latents.
    for split, dump in (("train", train_dump), ("test", test_dump)):
        features = to_latents(dump, tmp_path / f"{split}_feats", features=True)
        cmd[cmd.index(f"--{split}_dir") + 1] = str(features)
    cmd[cmd.index("--out") + 1] = str(tmp_path / "features.json")
    main(cmd)
    reference = json.loads((tmp_path / "features.json").read_text())
    assert reference["ctc"] == result["ctc"]
    assert reference["speaker"] == result["speaker"]
    assert reference["settings"]["latent_dim"] == 16
    cmd[cmd.index("--test_dir") + 1] = str(test_dump)
    with pytest.raises(ValueError, match="different codecs"):
        main(cmd)
