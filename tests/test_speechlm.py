"""SpeechLM hooks: token layout, dumps, and ESPnet 202412's SpeechLM reading them.

The ESPnet 202412 side environment comes from tools/setup_speechlm.sh (run by
tools/setup.sh). The tests that use it run ESPnet in a subprocess with the
environment first on PYTHONPATH, as the recipe does.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import ROOT, TINY, codec_conf

from espnet_almtok.speechlm import data as speechlm_data
from espnet_almtok.speechlm import tokens as speechlm_tokens

SPEECHLM_ENV = ROOT / "tools/speechlm/espnet-202412"


def test_flatten_round_trip_and_token_names():
    g = np.random.default_rng(0)
    codes = g.integers(0, 64, size=(17, 3))
    flat = speechlm_tokens.flatten(codes, 64)
    assert flat.shape == (51,)
    # Time-major, layer l shifted by l * code_size, as CodecTokenizer.forward does.
    assert flat[:3].tolist() == [codes[0, 0], codes[0, 1] + 64, codes[0, 2] + 128]
    assert np.array_equal(speechlm_tokens.unflatten(flat, 3, 64), codes)
    names = speechlm_tokens.token_list(3, 64)
    assert len(names) == 192 and len(set(names)) == 192
    assert names[flat[4]] == f"<codec_layer1_code{codes[1, 1]}>"


@pytest.mark.parametrize(
    "tokens, message",
    [
        (
            np.arange(10),
            "not a multiple of the codec's 3 streams",
        ),  # 2- or 5-layer codec
        (np.array([0, 64, 200]), "outside layer 2's range [128, 192)"),  # out of range
        (
            np.array([100, 64, 128]),
            "outside layer 0's range [0, 64)",
        ),  # 128-entry books
    ],
)
def test_unflatten_refuses_tokens_of_another_codec(tokens, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        speechlm_tokens.unflatten(tokens, 3, 64, "gen.ark")


def test_flatten_refuses_codes_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        speechlm_tokens.flatten(np.array([[0, 64, 1]]), 64)


def test_codec_info_mismatch_is_named():
    meta = dict(
        fs=16000, num_streams=3, frame_shift=1280, code_size_per_stream=[64] * 3
    )
    info = speechlm_tokens.codec_info(meta, 4, "m.pth")
    other = dict(info, fs=24000, num_streams=4)
    with pytest.raises(ValueError, match="fs 24000 != 16000; num_streams 4 != 3"):
        speechlm_tokens.check_info(other, info, "dump/x/codec_info.json")
    speechlm_tokens.check_info(dict(info, model_file="other.pth"), info, "same setup")


def test_merge_refuses_sets_from_different_codecs(tmp_path):
    meta = dict(
        fs=16000, num_streams=3, frame_shift=1280, code_size_per_stream=[64] * 3
    )
    jsons = []
    for name, size in (("a", 64), ("b", 128)):
        set_dir = tmp_path / name
        (set_dir / "token_lists").mkdir(parents=True)
        (set_dir / "tts").mkdir()
        speechlm_data.write_lines(
            set_dir / "token_lists/codec_token_list",
            speechlm_tokens.token_list(3, size),
        )
        m = dict(meta, code_size_per_stream=[size] * 3)
        speechlm_tokens.write_info(
            set_dir / "codec_info.json", speechlm_tokens.codec_info(m, 4, "m")
        )
        speechlm_data.write_json(
            set_dir / "tts/data.json",
            {"vocabularies": [str(set_dir / "token_lists/codec_token_list")]},
        )
        jsons.append(set_dir / "tts/data.json")
    tokens, bias = speechlm_data.merge_vocabularies(jsons[:1], ["<pad>", "<space>"])
    assert bias == {"codec": 2} and len(tokens) == 2 + 192
    with pytest.raises(ValueError, match="code_size 128 != 64"):
        speechlm_data.merge_vocabularies(jsons, ["<pad>"])


@pytest.fixture(scope="module")
def codec_files(tmp_path_factory):
    """An ESPnet codec config + model file, and a dumped set of three clips."""
    from espnet2.tasks.gan_codec import GANCodecTask

    from espnet_almtok import registration

    registration.install()
    top = tmp_path_factory.mktemp("speechlm")
    conf = yaml.safe_load(TINY[2].read_text())
    conf["codec_conf"] = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    conf.setdefault("model_conf", {})
    config = top / "config.yaml"
    config.write_text(yaml.safe_dump(conf))
    torch.manual_seed(0)
    model = GANCodecTask.build_model(argparse.Namespace(**conf))
    torch.save(model.state_dict(), top / "model.pth")

    g = np.random.default_rng(0)
    # Ids that begin with letters of "tts_"/"asr_": ESPnet 202412 lstrip()s them.
    utts = {"slt_a": 16000, "tts_b": 9000, "rms_c": 20000}
    wav_scp, text, utt2spk = [], [], []
    for utt, n in utts.items():
        sf.write(top / f"{utt}.wav", 0.1 * g.standard_normal(n), 16000)
        wav_scp.append(f"{utt} {top / utt}.wav")
        text.append(f"{utt} the birch canoe slid on the smooth planks")
        utt2spk.append(f"{utt} spk1")
    for name, rows in (("wav.scp", wav_scp), ("text", text), ("utt2spk", utt2spk)):
        speechlm_data.write_lines(top / name, rows)
    from espnet_almtok.bin import speechlm_dump, speechlm_vocab

    speechlm_vocab.main(
        [
            "bpe",
            "--text",
            str(top / "text"),
            "--nbpe",
            "20",
            "--out_prefix",
            str(top / "bpe"),
        ]
    )
    common = ["--train_config", str(config), "--model_file", str(top / "model.pth")]
    common += ["--text", str(top / "text"), "--utt2spk", str(top / "utt2spk")]
    common += ["--bpemodel", str(top / "bpe.model"), "--batch_size", "2"]
    speechlm_dump.main(
        common + ["--wav_scp", str(top / "wav.scp"), "--out_dir", str(top / "set")]
    )
    return top, common


def test_dump_layout_and_tokens(codec_files):
    top, _ = codec_files
    set_dir = top / "set"
    info = json.loads((set_dir / "codec_info.json").read_text())
    assert (
        info["num_streams"] == 3
        and info["code_size"] == 64
        and info["window_size"] == 4
    )
    rows = speechlm_data.read_index(set_dir / "index_files/wav.scp")
    for utt, n in (("slt_a", 16000), ("tts_b", 9000), ("rms_c", 20000)):
        tokens = kaldiio.load_mat(rows[utt])
        steps = -(-n // info["frame_shift"])  # ceil: one token per started window
        assert tokens.shape == (steps * 3,)
        speechlm_tokens.unflatten(tokens, 3, 64, utt)  # every layer in range
    for task in ("tts", "asr"):
        meta = json.loads((set_dir / task / "data.json").read_text())
        assert meta["task"] == task and meta["num_examples"] == 3
        for entry in meta["data_files"]:
            path, modality, kind = entry.split(",")
            assert os.path.isfile(path), entry
        keys = (set_dir / task / "example_list").read_text().split()
        assert keys == [f"{task}_{u}" for u in ("slt_a", "tts_b", "rms_c")]
    assert not list(top.glob(".set.tmp*"))


def test_dump_refuses_a_wrong_rate_and_leaves_nothing(codec_files, tmp_path, caplog):
    top, common = codec_files
    bad = tmp_path / "bad.wav"
    sf.write(bad, np.zeros(8000), 8000)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"slt_a {top / 'slt_a.wav'}\ntts_b {bad}\n")
    from espnet_almtok.bin import speechlm_dump

    with pytest.raises(SystemExit) as e:
        speechlm_dump.main(
            common + ["--wav_scp", str(scp), "--out_dir", str(tmp_path / "o")]
        )
    assert e.value.code == 1
    assert f"{bad} is at 8000 Hz but the codec expects 16000 Hz" in caplog.text
    assert not (tmp_path / "o").exists() and not (tmp_path / ".o.tmp").exists()


ESPNET_SIDE = """
import json, sys
import kaldiio, numpy as np, soundfile as sf, torch
from espnet2.speechlm.tokenizer.codec_tokenizer import CodecTokenizer

top, out = sys.argv[1:]
tok = CodecTokenizer("ESPnet", 16000, config_path=f"{top}/config.yaml",
                     checkpoint_path=f"{top}/model.pth")
rows = dict(l.split() for l in open(f"{top}/set/index_files/wav.scp"))
x, _ = sf.read(f"{top}/slt_a.wav", dtype="float32")
with torch.no_grad():
    flat, _ = tok(torch.from_numpy(x).view(1, 1, -1))
    wav = tok.detokenize(flat[0].clone())

import espnet2.speechlm.definitions as d
from espnet2.train.dataset import ESPnetMultiTaskDataset
from espnet2.train.preprocessor import SpeechLMPreprocessor
token_list = open(f"{top}/token_list/token_list").read().splitlines()
pre = SpeechLMPreprocessor(
    token_list=token_list, token_bias=json.load(open(f"{top}/token_list/token_bias.json")),
    codec_token_per_frame=3, codec_token_in_use=3, bpemodel=f"{top}/bpe.model",
    g2p_type="espeak_ng_english_us_vits", speaker_prompt_length=5)
ds = ESPnetMultiTaskDataset(
    [(f"{top}/set/{t}/data.json", "_", "dataset_json") for t in ("tts", "asr")],
    preprocess=pre)
seqs = {k: ds[k][1]["dec_seq"].shape for k in ("tts_slt_a", "asr_tts_b", "asr_slt_a")}
json.dump(dict(
    loaded_us=[m for m in sys.modules if m.startswith("espnet_almtok")] != [],
    n_codebook=tok.n_codebook, size_codebook=tok.size_codebook,
    sample_rate=tok.sample_rate, subsample=int(tok.subsample),
    flat=flat[0].tolist(), ref=kaldiio.load_mat(rows["slt_a"]).tolist(),
    wav_samples=int(wav.shape[-1]), asr_task=token_list.index("<asr_task>"),
    examples=sorted(ds.example_list), seqs={k: list(v) for k, v in seqs.items()},
), open(out, "w"))
"""


@pytest.fixture(scope="module")
def espnet_side(codec_files):
    """Run ESPnet 202412's CodecTokenizer and multi-task dataset on the dump."""
    top, _ = codec_files
    assert (
        SPEECHLM_ENV / "espnet2/speechlm"
    ).is_dir(), f"{SPEECHLM_ENV} is missing: run tools/setup_speechlm.sh"
    env = dict(os.environ, PYTHONPATH=str(SPEECHLM_ENV))
    vocab = [sys.executable, "-m", "espnet_almtok.bin.speechlm_vocab", "merge"]
    vocab += [
        "--data_json",
        str(top / "set/tts/data.json"),
        str(top / "set/asr/data.json"),
    ]
    vocab += ["--token_list_dir", str(top / "token_list")]
    subprocess.run(vocab, env=env, check=True, capture_output=True)
    script = textwrap.dedent(ESPNET_SIDE)
    assert "espnet_almtok" not in script.replace('startswith("espnet_almtok")', "")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(top), str(top / "side.json")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((top / "side.json").read_text())


def test_codec_tokenizer_loads_our_model_without_naming_our_package(espnet_side):
    side = espnet_side
    # The .pth hook imported us when ESPnet built its codec task.
    assert side["loaded_us"]
    # Streams, codebook size, rate and frame shift come from meta_info().
    assert (side["n_codebook"], side["size_codebook"]) == (3, 64)
    assert (side["sample_rate"], side["subsample"]) == (16000, 1280)
    # ESPnet's flattening of our codes equals our dump, and decodes back to audio.
    assert side["flat"] == side["ref"]
    assert side["wav_samples"] == len(side["flat"]) // 3 * 1280


def test_espnet_reads_the_dump_as_multi_task_data(espnet_side):
    side = espnet_side
    assert side["asr_task"] == 69  # the slot later ESPnet releases give it
    assert side["examples"] == sorted(
        f"{t}_{u}" for t in ("tts", "asr") for u in ("slt_a", "tts_b", "rms_c")
    )
    for key, shape in side["seqs"].items():
        assert shape[1] == 3, key  # (steps, codec streams)
    # tts: sos, task, g2p start + phones, spk start + 5 prompt steps, codec start +
    # 13 steps, sos; asr: sos, task, codec start + steps, bpe start + pieces, sos.
    assert side["seqs"]["tts_slt_a"][0] > 5 + 13
    assert side["seqs"]["asr_slt_a"][0] > 13
