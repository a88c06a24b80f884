"""Long and messy input: chunked coding, downmix/resample, bad files, partial runs."""

import json
import logging
import math
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ROOT, TINY, codec_conf

from espnet_almtok.utils.audio import load_audio

FS = 16000
HOP = 320
CHUNK = 0.24  # seconds: 3 tokens at window 4, 6 at window 2


def test_chunk_samples_are_whole_tokens(tiny):
    assert tiny.chunk_samples(CHUNK, 4) == 3 * HOP * 4
    assert tiny.chunk_samples(0.25, 4) == 3 * HOP * 4  # rounded down
    assert tiny.chunk_samples(CHUNK, 2) == 6 * HOP * 2
    assert tiny.chunk_samples(0.001, 4) == HOP * 4  # at least one token
    assert tiny.chunk_samples(0, 4) == 0
    with pytest.raises(ValueError, match="chunk_seconds"):
        tiny.chunk_samples(-1.0)


@pytest.mark.parametrize("w", [2, 4])
def test_chunk_tokens_do_not_depend_on_later_audio(tiny, speechlike, w):
    tiny.eval()
    chunk = tiny.chunk_samples(CHUNK, w)
    per_chunk = chunk // (HOP * w)
    a = speechlike(2 * chunk + 1000)
    ab = torch.cat([a, speechlike(5000, seed=1)])
    with torch.no_grad():
        codes_a, _ = tiny.encode_chunked(a, window_size=w, chunk_seconds=CHUNK)
        codes_ab, _ = tiny.encode_chunked(ab, window_size=w, chunk_seconds=CHUNK)
        # The same two inputs in one padded batch.
        batch = torch.zeros(2, len(ab))
        batch[0, : len(a)], batch[1] = a, ab
        codes_batch, n = tiny.encode_chunked(
            batch, torch.tensor([len(a), len(ab)]), w, CHUNK
        )
        full = 2 * per_chunk  # tokens of a's two full chunks
        assert torch.equal(codes_a[..., :full], codes_ab[..., :full])
        assert torch.equal(codes_batch[:, 0, : n[0]], codes_a[:, 0])
        assert torch.equal(codes_batch[:, 1, : n[1]], codes_ab[:, 0])
        # Each chunk is coded as if it were the whole input.
        for k in range(2):
            alone = tiny.encode(a[k * chunk : (k + 1) * chunk], window_size=w)
            assert torch.equal(codes_a[..., k * per_chunk : (k + 1) * per_chunk], alone)


def test_chunked_coding_keeps_the_whole_file_shapes(tiny, speechlike):
    tiny.eval()
    w = 4
    meta = tiny.meta_info(w)
    unit = meta["frame_shift"]  # samples per token
    chunk = tiny.chunk_samples(CHUNK, w)
    lengths = [1, unit - 1, chunk, chunk + 1, 9000]
    batch = torch.full((len(lengths), max(lengths)), 0.5)  # garbage padding
    for i, n in enumerate(lengths):
        batch[i, :n] = speechlike(n, seed=i)
    lengths = torch.tensor(lengths)
    with torch.no_grad():
        whole, n_whole = tiny.encode_with_lengths(batch, lengths, w)
        codes, n = tiny.encode_chunked(batch, lengths, w, CHUNK)
        n_q = meta["num_streams"]
        assert codes.shape == whole.shape == (n_q, 5, math.ceil(9000 / unit))
        assert n.tolist() == n_whole.tolist() == [-(-x // unit) for x in lengths]
        # Whole-file coding as a chunk length of 0, or a chunk past the input.
        for seconds in (0, 10.0):
            assert torch.equal(
                tiny.encode_chunked(batch, lengths, w, seconds)[0], whole
            )
            assert torch.equal(
                tiny.decode_chunked(whole, w, n_whole, seconds),
                tiny.decode(whole, w, n_whole),
            )
        wav = tiny.decode_chunked(codes, w, n, CHUNK)
        assert (
            wav.shape == tiny.decode(codes, w, n).shape == (5, 1, codes.size(2) * unit)
        )
        # Chunked decoding decodes each chunk of tokens on its own.
        per_chunk = chunk // unit
        last = codes[:, 4:5, : n[4]]
        parts = [
            tiny.decode(last[..., k : k + per_chunk], w)
            for k in range(0, last.size(2), per_chunk)
        ]
        # Batched and single-item decoding differ by float32 rounding only.
        assert torch.allclose(
            wav[4:5, :, : n[4] * unit], torch.cat(parts, -1), atol=1e-5
        )


def test_chunk_context_codes_each_token_once_with_its_context(tiny, speechlike):
    """With ``chunk_context_seconds`` a chunk keeps the tokens in its middle: they
    are those of the audio it sees, coded alone, and decoded chunks cross-fade to
    a sum of one."""
    tiny.eval()
    w, unit, chunk = 4, HOP * 4, 0.64  # 8 tokens a chunk
    tiny.chunk_context_seconds = 0.16  # 2 on either side: 4 kept
    lengths = torch.tensor([30000, 9000, 20000])
    batch = torch.zeros(3, 30000)
    for i, n in enumerate(lengths):
        batch[i, :n] = speechlike(int(n), seed=i)
    windows = list(tiny.chunk_windows(24, chunk, w))
    assert [(k.start, k.stop, s.start, s.stop) for k, s in windows] == [
        (0, 4, 0, 8), (4, 8, 2, 10), (8, 12, 6, 14), (12, 16, 10, 18),
        (16, 20, 14, 22), (20, 24, 18, 24),
    ]  # fmt: skip
    with torch.no_grad():
        codes, n = tiny.encode_chunked(batch, lengths, w, chunk)
        assert n.tolist() == [-(-int(x) // unit) for x in lengths]
        for kept, seen in windows:
            alone = tiny.encode(
                batch[:1, seen.start * unit : seen.stop * unit], None, w
            )
            part = alone[..., kept.start - seen.start : kept.stop - seen.start]
            assert torch.equal(codes[:, :1, kept.start : kept.stop], part)
        for i in (1, 2):  # batched as alone
            alone, _ = tiny.encode_chunked(batch[i, : lengths[i]], None, w, chunk)
            assert torch.equal(codes[:, i, : n[i]], alone[:, 0])
        # Later audio changes no token more than the context before it.
        later = batch[:1].clone()
        later[:, 12 * unit :] = speechlike(30000 - 12 * unit, seed=9)
        assert torch.equal(
            tiny.encode_chunked(later, None, w, chunk)[0][..., :8], codes[:, :1, :8]
        )
        # Mid-chunk, far from the fades, a chunk decodes as its seen tokens alone.
        wav = tiny.decode_chunked(codes, w, n, chunk)
        kept, seen = windows[2]
        alone = tiny.decode(codes[:, :1, seen.start : seen.stop], w)
        mid = slice((kept.start + 2) * unit, (kept.stop - 2) * unit)
        shift = seen.start * unit
        assert torch.allclose(
            wav[:1, :, mid],
            alone[..., mid.start - shift : mid.stop - shift],
            atol=1e-5,
        )

    # The cross-fades sum to one over every item's valid samples.
    def ones(c, w, lengths=None):
        return torch.ones(c.size(1), 1, c.size(2) * unit)

    tiny.decode = ones
    flat = tiny.decode_chunked(codes, w, n, chunk)
    for i, t in enumerate(n):
        assert torch.allclose(flat[i, 0, : t * unit], torch.ones(t * unit))
    tiny.chunk_context_seconds = 0.24  # 3 of 8 tokens: more than a quarter
    with pytest.raises(ValueError, match="more than a quarter"):
        tiny.encode_chunked(batch, lengths, w, chunk)


def test_the_codec_chunk_is_the_default_chunk(speechlike):
    """``codec_conf.chunk_seconds`` is the chunk of ``encode_chunked``,
    ``decode_chunked`` and ``ChunkedCoder`` when none is given."""
    from espnet_almtok.coding import ChunkedCoder
    from espnet_almtok.model.codec import ALMTokenizer

    torch.manual_seed(0)
    conf = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    codec = ALMTokenizer(**conf, chunk_seconds=CHUNK).eval()
    x = speechlike(9000)[None]
    n = torch.tensor([9000])
    with torch.no_grad():
        codes, tokens = codec.encode_chunked(x, n)
        assert torch.equal(codes, codec.encode_chunked(x, n, None, CHUNK)[0])
        assert not torch.equal(codes, codec.encode_chunked(x, n, None, 0)[0])
        assert torch.equal(
            codec.decode_chunked(codes, None, tokens),
            codec.decode_chunked(codes, None, tokens, CHUNK),
        )
        coder = ChunkedCoder(codec)
        assert coder.chunk == codec.chunk_samples(CHUNK)
        assert torch.equal(coder.encode(x, n)[0], codes)
    with pytest.raises(ValueError, match="chunk_seconds must be >= 0"):
        ALMTokenizer(**conf, chunk_seconds=-1.0)


def run_cli(model_dir, scp, out, *extra):
    """Run the inference CLI in this process; its SystemExit message or None."""
    from espnet_almtok.bin.codec_inference import main

    cmd = [
        "--train_config",
        str(model_dir / "config.yaml"),
        "--model_file",
        str(model_dir / "model.pth"),
        "--data_path_and_name_and_type",
        f"{scp},audio,sound",
        "--output_dir",
        str(out),
        "--num_workers",
        "0",
        *extra,
    ]
    try:
        main(cmd)
    except SystemExit as e:
        return e.code
    return None


def write_scp(path, entries):
    path.write_text("".join(f"{k} {p}\n" for k, p in entries.items()))
    return path


def listing(path):
    return [line.split()[0] for line in path.read_text().splitlines()]


def test_cli_downmixes_and_resamples_with_warnings(
    model_dir, tmp_path, caplog, speechlike
):
    from espnet2.bin.gan_codec_inference import AudioCoding

    n = 8000  # samples at 16 kHz: 3 chunks
    mono = speechlike(n).numpy()
    stereo = tmp_path / "stereo48k.wav"
    sf.write(stereo, np.stack([mono, mono[::-1]], 1).repeat(3, 0), 48000)
    sf.write(tmp_path / "low.wav", mono[::2], 8000)
    scp = write_scp(tmp_path / "wav.scp", {"st": stereo, "low": tmp_path / "low.wav"})
    with caplog.at_level(logging.WARNING):
        assert (
            run_cli(model_dir, scp, tmp_path / "out", "--chunk_seconds", str(CHUNK))
            is None
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{stereo}: 2 channels, downmixed to mono" in warnings
    assert f"{stereo}: 48000 Hz, resampled to 16000 Hz" in warnings
    assert f"{tmp_path / 'low.wav'}: 8000 Hz, resampled to 16000 Hz" in warnings

    codes = kaldiio.load_scp(str(tmp_path / "out/codec/codec.scp"))
    wavs = dict(
        line.split() for line in (tmp_path / "out/wav/wav.scp").read_text().splitlines()
    )
    codec = AudioCoding(model_dir / "config.yaml", model_dir / "model.pth").codec
    meta = codec.meta_info()
    n_q, tokens = meta["num_streams"], math.ceil(n / meta["frame_shift"])
    for key, path in (("st", stereo), ("low", tmp_path / "low.wav")):
        x = load_audio(path, FS)
        assert len(x) == n
        with torch.no_grad():
            expected, _ = codec.encode_chunked(x, chunk_seconds=CHUNK)
        assert codes[key].shape == (n_q * tokens,)
        assert np.array_equal(codes[key].reshape(-1, n_q).T, expected[:, 0].numpy())
        assert sf.info(wavs[key]).frames == n
        assert sf.info(wavs[key]).samplerate == FS
    stats = json.loads((tmp_path / "out/decode_stats.json").read_text())
    assert stats["num_utts"] == 2 and stats["num_failed"] == 0
    assert stats["chunk_seconds"] == pytest.approx(CHUNK)
    assert (tmp_path / "out/failed.txt").read_text() == ""


def test_cli_codes_at_the_window_given(model_dir, tmp_path, speechlike):
    from espnet2.bin.gan_codec_inference import AudioCoding

    x = speechlike(8000)
    sf.write(tmp_path / "a.wav", x.numpy(), FS)
    scp = write_scp(tmp_path / "wav.scp", {"a": tmp_path / "a.wav"})
    out = tmp_path / "out"
    extra = ("--window_size", "2", "--chunk_seconds", str(CHUNK))
    assert run_cli(model_dir, scp, out, *extra) is None
    codec = AudioCoding(model_dir / "config.yaml", model_dir / "model.pth").codec
    with torch.no_grad():
        expected, _ = codec.encode_chunked(x, window_size=2, chunk_seconds=CHUNK)
    n_q = expected.size(0)
    codes = kaldiio.load_scp(str(out / "codec/codec.scp"))["a"].reshape(-1, n_q).T
    assert codes.shape == (n_q, math.ceil(8000 / (2 * HOP)))
    assert np.array_equal(codes, expected[:, 0].numpy())
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["window_size"] == 2 and stats["frame_shift"] == 2 * HOP
    assert stats["token_rate"] == FS / (2 * HOP)
    assert stats["chunk_seconds"] == pytest.approx(CHUNK)


def test_cli_skips_bad_inputs_and_names_them(model_dir, tmp_path, caplog, speechlike):
    files = {}
    for i, key in enumerate(["good1", "good2", "good3"]):
        files[key] = tmp_path / f"{key}.wav"
        sf.write(files[key], speechlike(3000 + 2000 * i, seed=i).numpy(), FS)
    files["empty"] = tmp_path / "empty.wav"
    sf.write(files["empty"], np.zeros(0), FS)
    files["nan"] = tmp_path / "nan.wav"
    nan = speechlike(4000).numpy()
    nan[100] = np.nan
    sf.write(files["nan"], nan, FS, subtype="FLOAT")
    files["junk"] = tmp_path / "junk.wav"
    files["junk"].write_text("not audio")
    order = ["good1", "empty", "nan", "good2", "junk", "missing", "good3"]
    scp = write_scp(tmp_path / "wav.scp", files)
    keys = write_scp(tmp_path / "keys", {k: "x" for k in order})
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        message = run_cli(
            model_dir, scp, out, "--batch_size", "3", "--key_file", str(keys)
        )
    # sys.exit with a message: exit status 1.
    assert message.startswith("4 of 7 inputs failed: see the log")
    errors = "\n".join(
        r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
    )
    assert f"empty: audio file {files['empty']} is empty" in errors
    assert f"nan: audio file {files['nan']} contains NaN" in errors
    assert f"junk: cannot read audio file {files['junk']}" in errors
    assert f"missing: not in {scp}" in errors
    bad = ["empty", "nan", "junk", "missing"]
    assert listing(out / "failed.txt") == bad
    good = [k for k in order if k not in bad]
    assert listing(out / "codec/codec.scp") == good
    assert listing(out / "wav/wav.scp") == good
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["num_utts"] == 3 and stats["num_failed"] == 4


def test_a_failing_job_leaves_no_complete_looking_output(
    model_dir, tmp_path, speechlike, monkeypatch
):
    from espnet_almtok.model.codec import ALMTokenizer

    entries = {}
    for i in range(4):
        entries[f"u{i}"] = tmp_path / f"u{i}.wav"
        sf.write(entries[f"u{i}"], speechlike(4000, seed=i).numpy(), FS)
    scp = write_scp(tmp_path / "wav.scp", entries)
    out = tmp_path / "out"
    assert run_cli(model_dir, scp, out, "--batch_size", "2") is None
    finished = ["codec/codec.scp", "wav/wav.scp", "failed.txt", "decode_stats.json"]
    assert all((out / name).exists() for name in finished)

    decode = ALMTokenizer.decode_chunked
    calls = []

    def fail_on_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(ALMTokenizer, "decode_chunked", fail_on_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        run_cli(model_dir, scp, out, "--batch_size", "2")
    # Neither this run's partial listings nor the earlier run's are left.
    assert [name for name in finished if (out / name).exists()] == []
    assert list(out.rglob("*.tmp")) == []


def test_merge_carries_the_failed_keys(tmp_path):
    stats = dict(
        window_size=4,
        num_utts=2,
        audio_seconds=1.0,
        num_token_steps=10,
        num_failed=1,
        encode_seconds=0.1,
        decode_seconds=0.2,
    )
    jobs = []
    for j, failed in enumerate(["a\n", ""]):
        job = tmp_path / f"output.{j}"
        (job / "codec").mkdir(parents=True)
        (job / "codec/codec.scp").write_text(f"u{j} ark:{j}\n")
        (job / "failed.txt").write_text(failed)
        (job / "decode_stats.json").write_text(
            json.dumps({**stats, "num_failed": len(failed.split())})
        )
        jobs.append(str(job))
    out = tmp_path / "merged"
    subprocess.run(
        [sys.executable, str(ROOT / "local/merge_decode.py"), str(out), *jobs],
        check=True,
    )
    merged = json.loads((out / "decode_stats.json").read_text())
    assert merged["num_failed"] == 1 and merged["num_utts"] == 4
    assert (out / "failed.txt").read_text() == "a\n"
    assert listing(out / "codec/codec.scp") == ["u0", "u1"]


def test_chunk_quality_scores_every_boundary(model_dir, tmp_path, speechlike):
    from espnet_almtok.bin import chunk_quality

    sf.write(tmp_path / "a.wav", speechlike(8000).numpy(), FS)
    sf.write(tmp_path / "short.wav", speechlike(2000).numpy(), FS)
    scp = write_scp(
        tmp_path / "wav.scp", {"a": tmp_path / "a.wav", "short": tmp_path / "short.wav"}
    )
    out = tmp_path / "quality.json"
    chunk_quality.main(
        [
            "--train_config",
            str(model_dir / "config.yaml"),
            "--model_file",
            str(model_dir / "model.pth"),
            "--wav_scp",
            str(scp),
            "--chunk_seconds",
            str(CHUNK),
            "--boundary_seconds",
            "0.06",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    # Boundaries at 0.24 and 0.48 s of a; none in short.
    assert result["num_utts"] == 2 and result["num_boundaries"] == 2
    assert [r["num_boundaries"] for r in result["per_utt"]] == [2, 0]
    assert all(0 <= a <= 1 for a in result["token_agreement"])
    assert result["per_utt"][1]["token_agreement"] == [1.0, 1.0, 1.0]
    for region, count in (("boundary", 2), ("interior", 2), ("utterance", 2)):
        for system in ("chunked", "whole"):
            for metric in ("mel_distance", "si_snr"):
                m = result[region][system][metric]
                assert m["count"] == count and math.isfinite(m["mean"]), (
                    region,
                    system,
                    metric,
                )
    # An utterance within one chunk is coded the same both ways.
    assert result["per_utt"][1]["utterance_chunked_si_snr"] == pytest.approx(
        result["per_utt"][1]["utterance_whole_si_snr"]
    )
