import logging
import math

import numpy as np
import pytest
import torch

from espnet_almtok.eval.metrics import METRICS, Scorer, match_length, resample, si_snr

FS = 16000


@pytest.fixture(autouse=True)
def one_thread():
    """Score single-threaded, as the CLI does: small STFTs crawl on 2 threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scorer():
    return Scorer(FS)


@pytest.fixture
def speech(speechlike):
    return speechlike(2 * FS).double().numpy()


def noisy(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(x))
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return x + noise


@pytest.mark.parametrize("fs", [FS, 24000])
def test_identical_signals_score_perfectly(speech, fs):
    x = resample(speech, FS, fs)
    m = Scorer(fs)(x, x.copy(), "same")
    assert list(m) == list(METRICS)
    assert m["mel_distance"] == pytest.approx(0, abs=1e-6)
    assert m["mrstft_distance"] == pytest.approx(0, abs=1e-6)
    assert m["si_snr"] > 100
    assert m["pesq"] == pytest.approx(4.5, abs=0.2)  # wide-band PESQ tops at 4.64
    assert m["stoi"] == pytest.approx(1, abs=1e-3)


def test_noisier_copies_score_worse(scorer, speech):
    snrs = (40, 20, 10, 0)
    scores = [scorer(speech, noisy(speech, snr), f"snr{snr}") for snr in snrs]
    for name in ("mel_distance", "mrstft_distance"):
        assert np.all(np.diff([s[name] for s in scores]) > 0), name
    for name in ("si_snr", "pesq", "stoi"):
        assert np.all(np.diff([s[name] for s in scores]) < 0), name
    # White noise is nearly orthogonal to the signal: SI-SNR is the SNR.
    assert [s["si_snr"] for s in scores] == pytest.approx(snrs, abs=0.5)


def test_si_snr_ignores_scale(speech):
    assert si_snr(speech, 0.1 * speech) > 100
    assert si_snr(speech, 0.1 * noisy(speech, 20)) == pytest.approx(20, abs=0.5)


def test_longer_reconstruction_is_trimmed(scorer, speech, caplog):
    tail = np.random.default_rng(2).standard_normal(3000)
    hyp = np.concatenate([speech, tail])
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(match_length(speech, hyp, "long"), speech)
        m = scorer(speech, hyp, "long")
    assert not caplog.records
    assert m["mel_distance"] == pytest.approx(0, abs=1e-6)
    assert m["si_snr"] > 100


def test_shorter_reconstruction_is_padded_with_a_warning(speech, caplog):
    with caplog.at_level(logging.WARNING):
        hyp = match_length(speech, speech[:-800], "cut")
    assert len(hyp) == len(speech)
    assert np.array_equal(hyp[-800:], np.zeros(800))
    assert "cut" in caplog.text and "800 samples shorter" in caplog.text


def test_silent_input_gives_nan_not_a_crash(scorer, speech, caplog):
    silence = np.zeros(FS // 2)
    with caplog.at_level(logging.WARNING):
        m = scorer(silence, silence, "quiet_utt")
    assert math.isnan(m["pesq"]) and math.isnan(m["stoi"])
    assert math.isnan(m["si_snr"])
    assert m["mel_distance"] == 0 and m["mrstft_distance"] == 0
    assert "quiet_utt: pesq is NaN" in caplog.text

    # A silent reconstruction makes pesq's C code fail another way.
    m = scorer(speech, np.zeros_like(speech), "mute_hyp")
    assert math.isnan(m["pesq"])
    assert m["si_snr"] == pytest.approx(0, abs=1e-6) and m["mel_distance"] > 1


def test_very_short_input_gives_nan_where_undefined(scorer, speech, caplog):
    clip = speech[:400]  # 25 ms: under PESQ's 1/4 s and the mel window
    with caplog.at_level(logging.WARNING):
        m = scorer(clip, clip, "tiny_utt")
    for name in ("mel_distance", "pesq", "stoi"):
        assert math.isnan(m[name]), name
        assert f"tiny_utt: {name} is NaN" in caplog.text
    assert m["mrstft_distance"] == pytest.approx(0, abs=1e-6)
    assert m["si_snr"] > 100


def test_too_little_speech_for_stoi_gives_nan(scorer, speech, caplog):
    ref = np.zeros(FS)
    ref[: FS // 10] = speech[: FS // 10]  # 0.1 s of sound in 1 s
    with caplog.at_level(logging.WARNING):
        m = scorer(ref, ref, "burst_utt")
    assert math.isnan(m["stoi"])
    assert "burst_utt: stoi is NaN (Not enough STFT frames" in caplog.text
