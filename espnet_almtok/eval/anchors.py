"""Classic speech codecs as anchors: Codec2 and Opus.

They tell a reader where a neural tokenizer's bitrate stands against codecs
they know. Each anchor codes a 1-D waveform at any rate (resampling to the
codec's own rate and back) and reports its frames and payload bits, so that
decoding and scoring treat it like any codec (``bin/anchor_inference.py``):

- ``codec2_450``, ``codec2_700c``, ``codec2_1300``: Codec2 at 8 kHz through
  Debian's ``codec2`` tools (``c2enc``/``c2dec``); 40 ms frames of 18, 28 and
  52 bits.
- ``opus_6k``: Opus at 6 kbit/s (libopus through PyAV), 20 ms frames, coded
  into Ogg in memory so that the decoder drops the encoder's look-ahead.
  Payload bits are the packets' bytes (variable rate), not the container's.
"""

import io
import json
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from espnet_almtok.eval.metrics import read_mono, resample
from espnet_almtok.utils.atomic import atomic_path


@dataclass
class Coded:
    """A decoded waveform and what coding it cost.

    Attributes:
        wav: Decoded samples at the input rate, as long as the input.
        num_frames: Codec frames coded.
        num_bits: Payload bits of those frames.
        encode_seconds, decode_seconds: Wall time of each half.
    """

    wav: np.ndarray
    num_frames: int
    num_bits: int
    encode_seconds: float
    decode_seconds: float


def to_pcm16(wav: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (clipped) as int16."""
    return np.round(np.clip(wav, -1, 1) * 32767).astype(np.int16)


def run_timed(cmd: List[str]) -> float:
    """Run a codec tool; its wall time, or an error with its message."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return time.perf_counter() - start


def fit(wav: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad to ``length`` (codecs code whole frames)."""
    return np.pad(wav[:length], (0, max(0, length - len(wav))))


class Codec2:
    """Codec2 at one of its low-rate modes (8 kHz, 40 ms frames)."""

    FS = 8000
    FRAME_SECONDS = 0.04
    FRAME_BITS = {"450": 18, "700C": 28, "1300": 52}

    def __init__(self, mode: str):
        if mode not in self.FRAME_BITS:
            raise ValueError(
                f"unknown Codec2 mode '{mode}'; expected one of "
                f"{', '.join(self.FRAME_BITS)}"
            )
        missing = [t for t in ("c2enc", "c2dec") if shutil.which(t) is None]
        if missing:
            raise FileNotFoundError(
                f"{' and '.join(missing)} not found: install Debian's codec2 "
                "package (tools/setup.sh does)"
            )
        self.mode = mode
        self.bitrate = self.FRAME_BITS[mode] / self.FRAME_SECONDS
        self.frame_rate = 1 / self.FRAME_SECONDS
        self.frame_bits = self.FRAME_BITS[mode]

    def __call__(self, wav: np.ndarray, fs: int) -> Coded:
        pcm = to_pcm16(resample(np.asarray(wav, dtype=np.float64), fs, self.FS))
        with tempfile.TemporaryDirectory() as tmp:
            raw, bits, out = (Path(tmp) / n for n in ("in.raw", "c2.bit", "out.raw"))
            raw.write_bytes(pcm.tobytes())
            seconds = [
                run_timed(["c2enc", self.mode, str(raw), str(bits)]),
                run_timed(["c2dec", self.mode, str(bits), str(out)]),
            ]
            # Headerless: each frame's bits padded to whole bytes.
            num_frames = bits.stat().st_size // -(-self.frame_bits // 8)
            decoded = np.frombuffer(out.read_bytes(), dtype=np.int16) / 32768
        return Coded(
            wav=fit(resample(decoded, self.FS, fs), len(wav)),
            num_frames=num_frames,
            num_bits=num_frames * self.frame_bits,
            encode_seconds=seconds[0],
            decode_seconds=seconds[1],
        )


class Opus:
    """Opus at a fixed target bitrate, 20 ms frames."""

    RATES = (8000, 12000, 16000, 24000, 48000)
    FRAME_SECONDS = 0.02

    def __init__(self, bitrate: int):
        try:  # fail here, not halfway through a set
            import av  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"the Opus anchor needs PyAV ({e}): pip install 'espnet-almtok[eval]'"
            ) from e

        self.bitrate = bitrate
        self.frame_rate = 1 / self.FRAME_SECONDS
        self.frame_bits = bitrate * self.FRAME_SECONDS

    def __call__(self, wav: np.ndarray, fs: int) -> Coded:
        import av

        # Opus takes these rates only: the lowest that keeps the input's band.
        rate = min([r for r in self.RATES if r >= fs] or [self.RATES[-1]])
        pcm = to_pcm16(resample(np.asarray(wav, dtype=np.float64), fs, rate))
        buf = io.BytesIO()
        num_frames = num_bytes = 0
        start = time.perf_counter()
        with av.open(buf, "w", format="ogg") as out:
            stream = out.add_stream("libopus", rate=rate, layout="mono")
            stream.bit_rate = self.bitrate
            frame = av.AudioFrame.from_ndarray(pcm[None], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame) + stream.encode(None):
                num_frames += 1
                num_bytes += packet.size
                out.mux(packet)
        encoded = time.perf_counter()
        buf.seek(0)
        with av.open(buf) as inp:
            decoded_rate = inp.streams.audio[0].rate
            decoded = np.concatenate(
                [f.to_ndarray().reshape(-1) for f in inp.decode(audio=0)]
            ).astype(np.float64)
        return Coded(
            wav=fit(resample(decoded, decoded_rate, fs), len(wav)),
            num_frames=num_frames,
            num_bits=8 * num_bytes,
            encode_seconds=encoded - start,
            decode_seconds=time.perf_counter() - encoded,
        )


ANCHORS = {
    "codec2_450": lambda: Codec2("450"),
    "codec2_700c": lambda: Codec2("700C"),
    "codec2_1300": lambda: Codec2("1300"),
    "opus_6k": lambda: Opus(6000),
}


def build_anchor(name: str):
    """The anchor called ``name`` (see ``ANCHORS``)."""
    if name not in ANCHORS:
        raise ValueError(
            f"unknown anchor '{name}'; expected one of {', '.join(ANCHORS)}"
        )
    return ANCHORS[name]()


def code_scp(
    name: str, wav_scp: Union[str, Path], out_dir: Union[str, Path], log_every: int = 50
) -> Dict:
    """Code every utterance of a ``wav.scp`` with an anchor, as stage 7 does.

    Writes ``out_dir/wav/<utt_id>.wav`` (16-bit, at each input's rate),
    ``wav/wav.scp`` and ``decode_stats.json`` (last: a run that stopped early
    leaves none), in the format ``espnet_almtok.bin.score`` reads. A frame is
    one token step and ``code_size_per_stream`` is ``[2 ** frame bits]``, so
    the nominal bitrate is the codec's; ``num_bits`` gives the real one.

    Returns:
        The contents of ``decode_stats.json``.
    """
    import soundfile as sf
    from espnet2.fileio.sound_scp import SoundScpReader

    anchor = build_anchor(name)
    out = Path(out_dir).resolve()
    (out / "decode_stats.json").unlink(missing_ok=True)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    reader = SoundScpReader(str(wav_scp), dtype="float64")
    stats = dict(
        num_utts=0,
        audio_seconds=0.0,
        num_token_steps=0,
        num_bits=0,
        encode_seconds=0.0,
        decode_seconds=0.0,
    )
    rows, rates = [], set()
    for utt in reader.keys():
        fs, wav = read_mono(reader, utt, str(wav_scp))
        if len(wav) == 0:
            raise ValueError(f"{wav_scp}: {utt} is empty")
        coded = anchor(wav, fs)
        path = out / "wav" / f"{utt.replace('/', '_')}.wav"
        sf.write(path, coded.wav, fs, "PCM_16")
        rows.append(f"{utt} {path}\n")
        rates.add(fs)
        stats["num_utts"] += 1
        stats["audio_seconds"] += len(wav) / fs
        stats["num_token_steps"] += coded.num_frames
        stats["num_bits"] += coded.num_bits
        stats["encode_seconds"] += coded.encode_seconds
        stats["decode_seconds"] += coded.decode_seconds
        if log_every and stats["num_utts"] % log_every == 0:
            logging.info(f"{name}: {stats['num_utts']} utterances coded")
    if not rows:
        raise ValueError(f"{wav_scp}: no utterances")
    with atomic_path(out / "wav/wav.scp") as tmp:
        tmp.write_text("".join(rows))
    summary = dict(
        anchor=name,
        window_size=None,
        fs=rates.pop() if len(rates) == 1 else None,
        num_streams=1,
        code_size_per_stream=[2 ** round(anchor.frame_bits)],
        bitrate=anchor.bitrate,
        token_rate=anchor.frame_rate,
        **stats,
        device="cpu",
    )
    with atomic_path(out / "decode_stats.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    logging.info(f"{name}: {stats['num_utts']} utterances coded into {out}")
    return summary
