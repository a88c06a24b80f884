"""Classic codec anchors: bitrates, alignment, quality order, the decode format."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from espnet_almtok.bin.score import get_parser
from espnet_almtok.eval import anchors
from espnet_almtok.eval.anchors import build_anchor, code_scp
from espnet_almtok.eval.metrics import Scorer
from espnet_almtok.eval.scoring import score

pytestmark = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite is needed (tools/setup.sh)"
)
needs_codec2 = pytest.mark.skipif(
    shutil.which("c2enc") is None, reason="codec2 is needed (tools/setup.sh)"
)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("anchor") / "s.wav"
    text = "Open the door and close the window, then sit down by the fire."
    subprocess.run(["flite", "-voice", "rms", "-t", text, "-o", str(path)], check=True)
    wav, fs = sf.read(path)
    return wav, fs


def quality(wav, fs, coded):
    return Scorer(fs)(wav, coded.wav)


@needs_codec2
def test_codec2_modes_code_at_their_rate_in_quality_order(speech):
    wav, fs = speech
    seconds = len(wav) / fs
    stoi = {}
    for name, rate in (("codec2_450", 450), ("codec2_1300", 1300)):
        coded = build_anchor(name)(wav, fs)
        assert len(coded.wav) == len(wav)
        # Whole 40 ms frames: the real rate is the nominal one, give or take one.
        assert coded.num_frames == pytest.approx(seconds / 0.04, abs=1)
        assert coded.num_bits / seconds == pytest.approx(rate, rel=0.05)
        stoi[name] = quality(wav, fs, coded)["stoi"]
    assert stoi["codec2_1300"] > stoi["codec2_450"] + 0.05, stoi


def test_opus_is_aligned_and_near_its_bitrate(speech):
    pytest.importorskip("av")
    wav, fs = speech
    coded = build_anchor("opus_6k")(wav, fs)
    assert len(coded.wav) == len(wav)
    assert coded.num_bits / (len(wav) / fs) == pytest.approx(6000, rel=0.15)
    scores = quality(wav, fs, coded)
    # Sample-aligned (the look-ahead dropped): a positive SI-SNR, high STOI.
    assert scores["si_snr"] > 0 and scores["stoi"] > 0.85, scores


def test_unknown_anchor_and_missing_tools(monkeypatch):
    with pytest.raises(ValueError, match="unknown anchor 'mp3'.*codec2_450"):
        build_anchor("mp3")
    monkeypatch.setattr(anchors.shutil, "which", lambda _: None)
    with pytest.raises(FileNotFoundError, match="c2enc and c2dec not found.*codec2"):
        build_anchor("codec2_1300")


@needs_codec2
def test_code_scp_writes_a_decoding_that_scores(tmp_path, speech):
    wav, fs = speech
    sf.write(tmp_path / "a.wav", wav, fs)
    sf.write(tmp_path / "b.wav", wav[: fs // 2], fs)
    (tmp_path / "wav.scp").write_text(f"a {tmp_path}/a.wav\nb {tmp_path}/b.wav\n")
    stats = code_scp("codec2_1300", tmp_path / "wav.scp", tmp_path / "dec")
    assert json.loads((tmp_path / "dec/decode_stats.json").read_text()) == stats
    assert stats["num_utts"] == 2 and stats["bitrate"] == 1300
    args = get_parser().parse_args(
        ["--ref_scp", str(tmp_path / "wav.scp")]
        + ["--hyp_scp", str(tmp_path / "dec/wav/wav.scp")]
        + ["--decode_stats", str(tmp_path / "dec/decode_stats.json")]
        + ["--out_dir", str(tmp_path / "score"), "--speech_metrics", "false"]
    )
    decode = score(args)["decode"]
    assert decode["real_bitrate"] == pytest.approx(
        stats["num_bits"] / stats["audio_seconds"]
    )
    assert decode["real_bitrate"] == pytest.approx(1300, rel=0.05)
    # Multi-channel input is refused with the file's name.
    sf.write(tmp_path / "st.wav", np.stack([wav, wav], 1), fs)
    (tmp_path / "st.scp").write_text(f"st {tmp_path}/st.wav\n")
    with pytest.raises(ValueError, match="st.scp: st has shape .* expected mono"):
        code_scp("codec2_1300", tmp_path / "st.scp", tmp_path / "dec2")
    assert not (tmp_path / "dec2/decode_stats.json").exists()
