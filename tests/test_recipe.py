"""The default recipe, stages 1-8 and the SpeechLM stages 9-12, end to end.

It runs once per test session in a temporary copy of egs2/synth/almtok1 (stages
1 to 8 with the tiny configs, a few steps per training stage and the speech
metrics on a few utterances: about three minutes on 2 CPU cores), then each test
opens one stage's outputs.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import ROOT, tiny_hf_lm
from espnet2.fileio.npy_scp import NpyScpReader

from espnet_almtok.model.semantic_prior import standardize

EXP = "exp/almtok_train_almtok_tiny_stage2"
TESTS = ("test_speech", "test_sound")
WINDOWS = (2, 4)
HOP = 320
SHORT = "--max_epoch 1 --num_iters_per_epoch 4"
# A few steps per training stage (tests/test_learning.py checks that the tiny
# configs learn), and Whisper, DNSMOS and speaker similarity on a few utterances
# (5 s each): these tests check the pipeline.
FAST = ("--train_args", SHORT, "--speech_utts", "4")

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("flite", "espeak-ng", "sox")),
    reason="flite, espeak-ng and sox are needed (tools/setup.sh installs them)",
)


def run(cmd, cwd, check=True, env=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check:
        assert (
            proc.returncode == 0
        ), f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_recipe(top: Path) -> Path:
    """A copy of the recipe under ``top`` whose relative links resolve into this
    repository, without data or experiments."""
    for name in ("conf", "local"):
        (top / name).symlink_to(ROOT / name)
    (top / "egs2").mkdir()
    (top / "egs2/TEMPLATE").symlink_to(ROOT / "egs2/TEMPLATE")
    shutil.copytree(
        ROOT / "egs2/synth/almtok1", top / "egs2/synth/almtok1", symlinks=True
    )
    rdir = top / "egs2/synth/almtok1"
    for junk in ("data", "dump", "exp", "downloads"):
        shutil.rmtree(rdir / junk, ignore_errors=True)
    return rdir


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The recipe run through stages 1-8 (see ``copy_recipe``)."""
    rdir = copy_recipe(tmp_path_factory.mktemp("recipe"))
    proc = run(["./run.sh", "--stage", "1", "--stop_stage", "8", *FAST], rdir)
    assert "Successfully finished stages 1-8" in proc.stdout
    return rdir


def scp(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_stage1_data(recipe):
    for split in ("train", "dev", *TESTS, "train_speech", "train_sound"):
        assert scp(recipe / f"data/{split}/wav.scp"), split
    speech = scp(recipe / "data/train_speech/wav.scp")
    text = scp(recipe / "data/train/text")
    assert set(text) == set(
        speech
    )  # transcripts for every speech clip, none for sounds
    # Test voices are unseen in training.
    spk = lambda d: set(scp(recipe / f"data/{d}/utt2spk").values())  # noqa: E731
    assert not spk("test_speech") & spk("train")


def test_stage2_format(recipe):
    for split in ("train", "dev", *TESTS):
        entries = scp(recipe / f"dump/raw/{split}/wav.scp")
        assert set(entries) <= set(scp(recipe / f"data/{split}/wav.scp"))
        for path in list(entries.values())[:5]:
            info = sf.info(recipe / path)  # ESPnet lists paths from the recipe dir
            assert info.samplerate == 16000 and info.channels == 1


def test_stage3_4_semantic_prior(recipe):
    for half in ("speech", "sound"):
        info = json.loads((recipe / f"dump/feats/{half}/info.json").read_text())
        assert (
            info["kind"] == "logmel" and info["fallback"] is True and info["dim"] == 40
        )
    with np.load(recipe / "dump/kmeans/codebooks.npz") as f:
        assert f["codebooks"].shape == (3, 64, 40)
        assert str(f["source"]) == "logmel-fallback" and int(f["num_speech"]) == 32
    assert (recipe / "dump/kmeans/codebooks_stats.json").exists()


def test_stage5_6_training_consumed_the_prior(recipe):
    exp = recipe / EXP
    assert (exp / "stats/train/audio_shape").exists()
    config = yaml.safe_load((exp / "stage2/config.yaml").read_text())
    q = config["codec_conf"]["generator_params"]["quantizer_params"]
    assert q["codebook_file"] == "dump/kmeans/codebooks.npz"
    s1 = torch.load(exp / "stage1/latest.pth", map_location="cpu")
    s2 = torch.load(exp / "stage2/latest.pth", map_location="cpu")
    with np.load(recipe / "dump/kmeans/codebooks.npz") as f:
        books = torch.from_numpy(f["codebooks"])
    assert torch.allclose(s2["codec.generator.quantizer.codebooks"], standardize(books))
    patchify = [k for k in s1 if k.startswith("codec.generator.patchify.")]
    assert patchify and all(torch.equal(s1[k], s2[k]) for k in patchify)
    unpatchify = [k for k in s1 if k.startswith("codec.generator.unpatchify.")]
    assert any(not torch.equal(s1[k], s2[k]) for k in unpatchify)  # trained further
    assert not any(k.startswith("codec.generator.mae_encoder") for k in s2)


@pytest.mark.parametrize("test_set", TESTS)
@pytest.mark.parametrize("w", WINDOWS)
def test_stage7_decoding(recipe, test_set, w):
    out = recipe / EXP / f"stage2/decode_latest/{test_set}/w{w}"
    lengths = {
        k: sf.info(p).frames
        for k, p in scp(recipe / f"dump/raw/{test_set}/wav.scp").items()
    }
    codes = kaldiio.load_scp(str(out / "codec/codec.scp"))
    assert sorted(codes) == sorted(lengths)
    wavs = scp(out / "wav/wav.scp")
    for utt, n in lengths.items():
        assert codes[utt].shape == (3 * -(-n // (HOP * w)),)
        assert sf.info(wavs[utt]).frames == n
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["num_utts"] == len(lengths) and stats["window_size"] == w
    assert stats["bitrate"] == pytest.approx(3 * 6 * 16000 / (HOP * w))


def test_stage8_scores(recipe):
    results = (recipe / EXP / "RESULTS.md").read_text()
    for test_set in TESTS:
        for w in WINDOWS:
            assert f"| {test_set} w={w} |" in results
            score = recipe / EXP / f"stage2/decode_latest/{test_set}/w{w}/score"
            summary = json.loads((score / "summary.json").read_text())
            for name, m in summary["metrics"].items():
                assert m["mean"] is not None and np.isfinite(m["mean"]), (
                    test_set,
                    w,
                    name,
                )
            assert summary["decode"]["real_bitrate"] >= summary["decode"]["bitrate"]
            assert len(list((score / "images").glob("*.png"))) == 3
            # The speech metrics on the set with a text file only.
            speech = {"wer", "wer_orig", "dwer", "dwer_capped"}
            speech |= {"dnsmos", "dnsmos_orig", "spk_sim"}
            has_text = (recipe / f"data/{test_set}/text").is_file()
            assert (speech <= set(summary["metrics"])) == has_text, test_set
            assert (score / "transcripts.tsv").is_file() == has_text
        if has_text:  # a tiny codec is far less intelligible than its input
            wer = summary["metrics"]["wer"]["mean"]
            assert wer > summary["metrics"]["wer_orig"]["mean"], wer


def test_stock_inference_decodes_the_recipe_model(recipe, monkeypatch):
    exp = recipe / EXP / "stage2"
    run(
        [
            sys.executable,
            "-m",
            "espnet2.bin.gan_codec_inference",
            "--train_config",
            str(exp / "config.yaml"),
            "--model_file",
            str(exp / "latest.pth"),
            "--data_path_and_name_and_type",
            "dump/raw/test_sound/wav.scp,audio,sound",
            "--output_dir",
            "stock_out",
        ],
        recipe,
    )
    monkeypatch.chdir(recipe)  # the stock scp lists paths relative to its run dir
    codes = NpyScpReader("stock_out/codec/codec.scp")
    ours = kaldiio.load_scp(str(exp / "decode_latest/test_sound/w4/codec/codec.scp"))
    for utt in ours:
        # The stock CLI (one by one) and ours (batched) give the same codes.
        assert np.array_equal(codes[utt][:, 0], ours[utt].reshape(-1, 3).T)


LOSATOK_EXP = "exp/almtok_train_losatok_tiny_stage2"


@pytest.fixture(scope="module")
def losatok(recipe):
    """LoSATok through the same recipe: semantic bottleneck (stage 5), tokenizer
    (stage 6), latents and wavs (7), scores (8), a few steps each."""
    proc = run(
        [
            "./run.sh",
            "--stage",
            "3",
            "--stop_stage",
            "8",
            "--stage1_config",
            "conf/tuning/train_losatok_tiny_stage1.yaml",
            "--stage2_config",
            "conf/tuning/train_losatok_tiny_stage2.yaml",
            "--test_sets",
            "test_speech",
            "--speech_metrics",
            "false",
            "--train_args",
            SHORT,
        ],
        recipe,
    )
    assert "Stages 3-4: skipped: losatok" in proc.stdout
    return recipe / LOSATOK_EXP, proc


def test_losatok_recipe_trains_its_bottleneck_then_the_tokenizer(losatok):
    exp, _ = losatok
    s1 = torch.load(exp / "stage1/latest.pth", map_location="cpu")
    s2 = torch.load(exp / "stage2/latest.pth", map_location="cpu")
    prefix = "codec.generator.semantic_bottleneck."
    sembo = [k for k in s1 if k.startswith(prefix)]
    assert sembo and all(torch.equal(s1[k], s2[k]) for k in sembo)  # init + frozen
    assert int(s1[prefix + "trained_steps"]) > 0
    assert not any(k.startswith("codec.generator.vocoder") for k in s1)


def test_losatok_recipe_writes_latents_wavs_and_scores(losatok, recipe):
    exp, _ = losatok
    out = exp / "stage2/decode_latest/test_speech/fixed"
    lengths = {
        k: sf.info(p).frames
        for k, p in scp(recipe / "dump/raw/test_speech/wav.scp").items()
    }
    latents = kaldiio.load_scp(str(out / "latent/latent.scp"))
    assert sorted(latents) == sorted(lengths)
    wavs = scp(out / "wav/wav.scp")
    for utt, n in lengths.items():
        assert latents[utt].shape == (-(-n // 640), 16)
        assert latents[utt].dtype == np.float32
        assert sf.info(wavs[utt]).frames == n
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["bitrate"] is None and stats["token_rate"] == 25.0
    assert stats["latent_dim"] == 16 and stats["continuous"] is True
    summary = json.loads((out / "score/summary.json").read_text())
    assert np.isfinite(summary["metrics"]["stoi"]["mean"])
    assert "| test_speech fixed |" in (exp / "RESULTS.md").read_text()


SLM_EXP = "exp/speechlm_train_speechlm_tiny_train_almtok_tiny_stage2"


@pytest.fixture(scope="module")
def speechlm(recipe):
    """Stages 9-12: SpeechLM data, ESPnet's speechlm_train, TTS inference, report."""
    proc = run(["./run.sh", "--stage", "9", "--stop_stage", "12"], recipe)
    assert "Successfully finished stages 9-12" in proc.stdout
    return recipe


def test_stage9_speechlm_data(speechlm):
    dump = speechlm / "dump/speechlm"
    bias = json.loads((dump / "token_list/token_bias.json").read_text())
    tokens = (dump / "token_list/token_list").read_text().splitlines()
    assert set(bias) == {"g2p", "codec", "text_bpe"}
    assert tokens[bias["codec"]] == "<codec_layer0_code0>"
    assert tokens[bias["codec"] + 3 * 64 - 1] == "<codec_layer2_code63>"
    for dset in ("train_speech", "dev", "test_speech"):
        for task in ("tts", "asr"):
            meta = json.loads((dump / dset / task / "data.json").read_text())
            assert meta["task"] == task and meta["num_examples"] > 0
        # Codes of the same clips as stage 7 at the inference window, laid out
        # for SpeechLM (layer l shifted by l * 64).
        if dset == "test_speech":
            ours = scp(
                speechlm / f"{EXP}/stage2/decode_latest/{dset}/w4/codec/codec.scp"
            )
            for utt, ref in scp(dump / dset / "index_files/wav.scp").items():
                lm = kaldiio.load_mat(ref).reshape(-1, 3)
                codes = kaldiio.load_mat(ours[utt]).reshape(-1, 3)
                assert np.array_equal(lm, codes + np.arange(3) * 64), utt


def test_stage10_speechlm_loss_falls(speechlm):
    log = (speechlm / SLM_EXP / "train.log").read_text()
    assert "espnet2.bin.speechlm_train" in log
    report = json.loads((speechlm / SLM_EXP / "RESULTS.json").read_text())
    epochs = report["epochs"]
    assert len(epochs) == 6
    assert epochs[-1][1] < 0.5 * epochs[0][1]  # train loss
    assert epochs[-1][2] < epochs[0][2]  # valid loss


def test_stage11_tts_tokens_decode_to_audio(speechlm):
    out = speechlm / SLM_EXP / "decode_tts_latest/test_speech"
    wavs = scp(out / "wav.scp/wav.scp_list")
    # ESPnet drops a sample that finds no end within its length limit, which a
    # tiny LM on varied tokens can do: every sample it finishes must decode.
    assert 1 <= len(wavs) <= 3
    tokens = dict(kaldiio.load_ark(str(out / "token/token.ark")))
    bias = json.loads(
        (speechlm / "dump/speechlm/token_list/token_bias.json").read_text()
    )
    for key, path in wavs.items():
        steps = tokens[key].reshape(-1, 3) - bias["codec"] - np.arange(3) * 64
        assert ((steps >= 0) & (steps < 64)).all(), key
        info = sf.info(speechlm / path)  # ESPnet lists paths from the recipe dir
        assert info.samplerate == 16000
        assert info.frames == len(steps) * 1280 > 0  # plausible: one hop per step
    report = json.loads((speechlm / SLM_EXP / "RESULTS.json").read_text())
    assert report["tts"][0]["all_samples_match_steps"]
    assert report["tts"][0]["num_generated"] == len(wavs)


def test_codec_tokenizer_loads_the_recipe_model_in_a_fresh_process(speechlm):
    """ESPnet 202412's CodecTokenizer, in a process that never names our package."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tools/speechlm/espnet-202412"))
    stage2 = speechlm / f"{EXP}/stage2"
    wav = next(iter(scp(speechlm / "dump/raw/test_speech/wav.scp").items()))
    code = (
        "import sys, torch, soundfile as sf\n"
        "from espnet2.speechlm.tokenizer.codec_tokenizer import CodecTokenizer\n"
        "t = CodecTokenizer('ESPnet', 16000, config_path=sys.argv[1],"
        " checkpoint_path=sys.argv[2])\n"
        "x, _ = sf.read(sys.argv[3], dtype='float32')\n"
        "flat, _ = t(torch.from_numpy(x).view(1, 1, -1))\n"
        "print(t.n_codebook, t.size_codebook, ' '.join(map(str, flat[0].tolist())))\n"
    )
    proc = run(
        [
            sys.executable,
            "-c",
            code,
            str(stage2 / "config.yaml"),
            str(stage2 / "latest.pth"),
            wav[1],
        ],
        speechlm,
        env=env,
    )
    n_q, size, *flat = proc.stdout.split("\n")[-2].split()
    ref = scp(speechlm / "dump/speechlm/test_speech/index_files/wav.scp")[wav[0]]
    assert (int(n_q), int(size)) == (3, 64)
    dumped = kaldiio.load_mat(ref).tolist()
    assert len(flat) == len(dumped)
    # The two code paths agree up to float rounding, which can flip a near-tie
    # between two entries of a residual layer (gaps down to 3e-4 in this model);
    # a run on 2026-12-03 agreed on 92 %: not yet explained, see the issue notes.
    same = np.mean([int(v) == d for v, d in zip(flat, dumped)])
    assert same >= 0.9, same


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing (ESPnet 202511)
        return False


ESPNET_202611 = importable("espnet2.speechlm.bin.train")
SLM2611_EXP = "exp/speechlm2611_train_almtok_tiny_stage2"


@pytest.fixture(scope="module")
def speechlm2611(recipe, tmp_path_factory):
    """Stage 13: ESPnet 202611's SpeechLM data, with a local LM directory."""
    if not ESPNET_202611:
        pytest.skip("ESPnet 202611's SpeechLM is not installed (Python >= 3.12)")
    lm = tiny_hf_lm(tmp_path_factory.mktemp("lm"), recipe / "data/train_speech/text")
    proc = run(
        ["./run.sh", "--stage", "13", "--stop_stage", "13"]
        + ["--speechlm2611_hf_model", str(lm)],
        recipe,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert "Successfully finished stages 13-13" in proc.stdout
    return recipe


def test_stage13_espnet202611_speechlm_data(speechlm2611):
    exp = speechlm2611 / SLM2611_EXP
    config = yaml.safe_load((exp / "train.yaml").read_text())
    audio = config["multimodal_io"]["discrete_audio"]
    assert audio["codec_hf_model_tag"] == str((exp / "codec.zip").resolve())
    assert list(config["multimodal_io"]) == ["text", "discrete_audio"]  # id order
    for dset in ("train_speech", "dev", "test_speech"):
        data = json.loads(
            (speechlm2611 / f"dump/speechlm2611/{dset}/data.json").read_text()
        )
        assert data["samples"] == sorted(scp(speechlm2611 / f"data/{dset}/text"))
        assert [e["reader"] for e in data["data_entry"]] == ["lhotse_audio", "text"]
    for task in ("text_to_audio", "audio_to_text"):
        stats = (exp / f"stats/stats_{task}_train_speech.jsonl").read_text()
        assert len(stats.splitlines()) == len(
            scp(speechlm2611 / "data/train_speech/text")
        )


def test_espnet202611_speechlm_batches_carry_our_tokens(speechlm2611, monkeypatch):
    """ESPnet's own job template, preprocessor and iterator on the stage-13 data;
    its DiscreteAudioIO (our codec, from the packed archive) tokenizes the batch
    audio as our codec does, and its tokens decode as ours do."""
    from espnet2.speechlm.dataloader.iterator import DataIteratorFactory
    from espnet2.speechlm.model import _all_job_types

    from espnet_almtok.pretrained import load_codec

    monkeypatch.chdir(speechlm2611)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exp = Path(SLM2611_EXP)
    config = yaml.safe_load((exp / "train.yaml").read_text())
    job = _all_job_types[config["job_type"]](config, is_train=True)
    factory = DataIteratorFactory(
        ["text_to_audio:train_speech:dump/speechlm2611/train_speech/data.json"],
        [],
        stats_dir=exp / "stats",
        collate_fn=job.build_preprocessor().collate_fn,
        batchfy_method="bucket",
        batch_size=1000,
        num_workers=0,
        rank=0,
        world_size=1,
        shuffle=False,
    )
    batch = next(iter(factory.build_iter()))
    io = job.multimodal_io["discrete_audio"]
    feats, lengths = batch["discrete_audio_feats"], batch["discrete_audio_lengths"]
    tokens = io.encode_batch(feats, lengths)
    frames = lengths // io.frame_shift
    assert io.frame_shift == 4 * HOP and io.num_stream() == 3
    assert tokens.shape[1] == frames.max() + io.num_stream() - 1  # delay interleave

    stage2 = Path(EXP) / "stage2"
    codec = load_codec(
        stage2 / "config.yaml", "cpu", model_file=str(stage2 / "latest.pth")
    ).eval()
    audio = feats[:, : frames.max() * io.frame_shift].transpose(1, 2)
    with torch.no_grad():
        ours = codec.encode(audio)  # (n_q, B, N)
        ours_audio = codec.decode(ours)
    steps = io._apply_delay_deinterleave(tokens)
    offsets = torch.tensor([start + 1 for start, _ in io._stream_intervals])
    assert torch.equal(steps - offsets, ours.permute(1, 2, 0)[:, : steps.shape[1]])
    wav, wav_lengths, fs = io.decode_batch(tokens, frames + io.num_stream() - 1)
    assert fs == 16000 and torch.equal(wav_lengths, frames * io.frame_shift)
    assert torch.allclose(
        wav.view(len(wav), -1), ours_audio.view(len(wav), -1), atol=1e-5
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_stage14_refuses_without_a_gpu_and_gives_the_command(speechlm2611):
    proc = run(
        ["./run.sh", "--stage", "14", "--stop_stage", "14"], speechlm2611, check=False
    )
    assert proc.returncode != 0
    assert "trains on CUDA GPUs only" in proc.stdout
    assert (
        "torchrun --nproc_per_node" in proc.stdout
        and "espnet2.speechlm.bin.train" in proc.stdout
    )


def test_a_failing_stage_names_itself_and_the_file(recipe):
    proc = run(
        [
            "./run.sh",
            "--stage",
            "6",
            "--stop_stage",
            "6",
            "--stage1_model",
            "missing.pth",
        ],
        recipe,
        check=False,
    )
    assert proc.returncode != 0
    assert "stage 6" in proc.stdout and "stage1/missing.pth" in proc.stdout


def test_windows_for_a_codec_without_them_are_refused_before_training(tmp_path):
    """LoSATok has one rate: asking for ALMTokenizer's windows fails at once,
    not at stage 7 after its training."""
    rdir = copy_recipe(tmp_path)
    losatok = [
        f"--stage{k}_config=conf/tuning/train_losatok_tiny_stage{k}.yaml"
        for k in (1, 2)
    ]
    cmd = ["./run.sh", "--stage", "5", "--stop_stage", "7", *losatok]
    proc = run([*cmd, "--inference_windows", "4"], rdir, check=False)
    assert proc.returncode != 0
    assert "has no window_sizes: decode it with --inference_windows fixed" in (
        proc.stdout
    )
    assert not (rdir / "exp").exists()


def test_a_finished_stage_can_be_rerun(recipe):
    proc = run(["./run.sh", "--stage", "8", "--stop_stage", "8", *FAST], recipe)
    assert "Successfully finished stages 8-8" in proc.stdout


BENCH_SYSTEMS = {
    "almtok": dict(
        stage1_config="conf/tuning/train_almtok_tiny_stage1.yaml",
        stage2_config="conf/tuning/train_almtok_tiny_stage2.yaml",
    ),
    "soundstream": dict(config="conf/baselines/tuning/train_soundstream_tiny.yaml"),
    "no_ar": dict(
        stage2_config="conf/ablations/tuning/train_almtok_no_ar.yaml",
        stage1_from="almtok",
    ),
}


@pytest.fixture(scope="module")
def bench_run(recipe):
    """The benchmark at its tiniest: one system of each kind, a few steps."""
    conf = dict(
        iters_per_epoch=2,
        epochs_per_stage=1,
        # One test set, and the Whisper/DNSMOS/speaker metrics left to the
        # recipe's own test (stage 8): they cost half a minute per system.
        run_args="--test_sets test_speech --speech_metrics false",
        reference="almtok",
        baselines=["soundstream"],
        systems=BENCH_SYSTEMS,
        probe=dict(train_set="train_speech", test_set="test_speech", steps=4),
        anchors=["codec2_450"],
        # No speed and chunk sections: those stages are skipped (their scripts
        # have tests of their own; the report's tables of them too).
    )
    (recipe / "bench.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    # Benchmark stage 1 (data and prior: the recipe's stages 1-4) is the fixture's.
    run(["./benchmark.sh", "--config", "bench.yaml", "--stage", "2"], recipe)
    return recipe / "exp/benchmark"


def test_benchmark_trains_every_system_for_the_same_epochs(bench_run):
    for name, spec in BENCH_SYSTEMS.items():
        stage2 = bench_run / f"almtok_{name}/stage2"
        # One-stage systems get both stages' epochs.
        epochs = 2 if "config" in spec else 1
        assert (stage2 / f"{epochs}epoch.pth").exists()
        assert not (stage2 / f"{epochs + 1}epoch.pth").exists()
        assert (bench_run / f"almtok_{name}/stage1").exists() == (
            "stage1_config" in spec
        )


def test_benchmark_report_is_well_formed(bench_run):
    out = bench_run / "results"
    report = json.loads((out / "benchmark.json").read_text())
    systems = report["systems"]
    assert list(systems) == list(BENCH_SYSTEMS) + ["codec2_450"]
    anchor = systems.pop("codec2_450")
    assert anchor["role"] == "anchor" and anchor["params"] is None
    assert 400 < anchor["bitrate"] < 460  # the real rate, from its bit stream
    assert 0 <= anchor["scores"]["test_speech"]["stoi"] <= 1
    assert systems["almtok"]["params_ratio"] == 1.0
    assert {s["bitrate"] for s in systems.values()} == {225.0}  # matched
    # Same stage 1, and stage 2 draws the same utterances: the same steps.
    assert systems["almtok"]["generator_steps"] == systems["no_ar"]["generator_steps"]
    assert systems["soundstream"]["generator_steps"] > 0
    for s in systems.values():
        assert set(s["scores"]) == {"test_speech"}
        for scores in s["scores"].values():
            assert np.isfinite(scores["mel_distance"]) and 0 <= scores["stoi"] <= 1
        assert (
            0 <= s["probe"]["ctc"]["cer_test"]
            and 0 <= s["probe"]["speaker"]["accuracy"] <= 1
        )
    # One verdict per baseline or anchor, test set and claimed metric; no dWER
    # without the speech metrics, for the anchor as for the models.
    assert anchor["scores"]["test_speech"]["dwer"] is None
    assert systems["almtok"]["scores"]["test_speech"]["dwer"] is None
    assert len(report["claims"]) == 2 * 1 * 2
    assert all(isinstance(c["reference_better"], bool) for c in report["claims"])
    assert report["speed"] is None and report["chunk"] is None  # not configured
    table = (out / "benchmark.md").read_text()
    for name in BENCH_SYSTEMS:
        assert f"| {name} |" in table
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
