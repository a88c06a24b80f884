"""Speed and memory of codecs, measured in one run, as ratios to a reference.

Usage::

    python -m espnet_almtok.bin.bench_speed \\
        --system almtok=conf/train_almtok_stage2.yaml \\
        --system soundstream=conf/baselines/train_soundstream.yaml \\
        --system dac=conf/baselines/train_dac.yaml \\
        --out_dir exp/bench_speed [--device cuda] [--num_threads 4]

A system is ``NAME=CONFIG[:MODEL_FILE]``: a training config, and the trained
model to load (ESPnet's ``AudioCoding``); without a model file the codec is
built with random weights (``count_params.build_codec``; the codebooks of a
missing codebook file are random too), which codes just as fast. Every system
codes through ``espnet_almtok.coding.ChunkedCoder``, as ``codec_inference``
does: ALMTokenizer codes a batch at once at ``--window_size``, SoundStream/DAC
code it item by item; long inputs go in chunks of ``--chunk_seconds``.

Measured per system, in a fresh process of its own (started one after another
from a ``forkserver`` that has imported ESPnet once), after a warm-up call on
a 1 s input, on deterministic speech-like audio at the codec's rate:

* ``encode_rtf@<D>s``, ``decode_rtf@<D>s``: for each of ``--durations``, one
  input of D seconds (batch 1): median wall seconds of ``--repeats`` calls
  over D. Inputs of ``LONG_SECONDS`` (300) or more are timed once;
* ``throughput``: ``--batch_size`` inputs of ``--batch_seconds`` each, encoded
  then decoded as one batch: seconds of audio per wall second (median call);
* ``encode_peak_mib@<D>s``, ``decode_peak_mib@<D>s``, ``batch_peak_mib``: peak
  memory while that operation ran, in MiB above the memory held after the
  model was loaded and warmed up (so inputs and outputs count; at least 0).
  CPU: resident set size. Before each operation freed heap memory is handed
  back to the system (glibc ``malloc_trim``) and the kernel's peak-RSS mark is
  reset (``/proc/self/clear_refs``, Linux); the peak is then ``VmHWM`` from
  ``/proc/self/status``. Elsewhere the CPU figures are ``null``. CUDA: torch's
  ``max_memory_allocated`` after ``reset_peak_memory_stats``, with
  ``torch.cuda.synchronize()`` around every timing;
* ``params`` (codec path, see ``count_params``) and ``bitrate`` (bit/s of the
  coder's ``meta_info``).

Writes to ``--out_dir``: ``speed.json`` (``settings``, ``environment``: torch
and Python versions, CPU model, GPU name, torch threads; ``systems``: each
system's config, codec, rate, window, chunk and ``metrics``; ``ratios``: each
metric over the ``--reference`` system's, ``null`` where the reference's is 0)
and ``speed.md`` (the same as markdown tables), both atomically.

Nothing here bounds the run time: the durations are the user's choice. On 2
shared, busy CPU cores (AMD EPYC) with ``--num_threads 1``, the three tiny
configs (``conf/tuning/train_almtok_tiny_stage2.yaml``,
``conf/baselines/tuning/train_{soundstream,dac}_tiny.yaml``) took 2 min 7 s
for the default 10/60/600 s (about 17 s of it the start-up; RTFs 0.006-0.03).
The GPU-sized configs took 15 min 43 s for ``--durations 10`` alone, 5 min a
system of it the batch throughput (8 x 10 s, 3 calls, about 1 audio s/s); their
RTFs on one thread are 0.4-0.6, so a 600 s input takes about 10 min per system
and operation: on a CPU give them ``--durations 10 60``, or a GPU.

Give ``--num_threads`` no more than the idle cores: with torch's default of 2
threads on those 2 busy cores the tiny configs ran 10 to 50 times slower, and
erratically (the threads wait on each other).
"""

import argparse
import ctypes
import json
import logging
import multiprocessing
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.cli import setup_logging

# Inputs at least this long are timed once (they take long enough alone).
LONG_SECONDS = 300
# Imported once by the forkserver, so that each system's process starts fast.
PRELOAD = ["espnet2.bin.gan_codec_inference", "espnet_almtok.eval.params"]
# The options each system's process measures with.
OPTIONS = (
    "durations",
    "repeats",
    "batch_size",
    "batch_seconds",
    "chunk_seconds",
    "window_size",
    "device",
    "num_threads",
)
MIB = 2**20


def key(seconds: float) -> str:
    """The suffix of a duration's metrics: ``10s``."""
    return f"{seconds:g}s"


def calls(seconds: float, repeats: int) -> int:
    """How many times an input of ``seconds`` is timed."""
    return 1 if seconds >= LONG_SECONDS else repeats


def fmt(value: Optional[float]) -> str:
    """A number for logs and tables: 4 significant digits, whole from 10^4."""
    if value is None:
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def speechlike(seconds: float, fs: int, seed: int = 0) -> torch.Tensor:
    """A deterministic speech-like signal: a gliding harmonic voice, syllable
    envelope, light noise."""
    t = np.arange(round(seconds * fs)) / fs
    f0 = 120 + 40 * np.sin(2 * np.pi * 1.5 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / fs
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (1 + np.sin(6 * np.pi * t))
    x = 0.1 * x + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32))


def inputs(
    seconds: float, fs: int, batch_size: int, device: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch (B, T) of speech-like inputs and their lengths (B,)."""
    audio = torch.stack([speechlike(seconds, fs, i) for i in range(batch_size)])
    return audio.to(device), torch.full((batch_size,), audio.size(1), device=device)


class Meter:
    """Synchronises a device and measures peak memory above a baseline.

    Args:
        device: ``cpu`` (resident set size) or ``cuda`` (memory allocated by
            torch). The baseline is the memory held when the meter is made.
    """

    def __init__(self, device: str):
        self.cuda = device == "cuda"
        self.trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        try:
            self.reset()
        except OSError as e:
            logging.warning(f"no CPU peak memory: cannot reset the peak RSS ({e})")
            self.base = None
        else:
            self.base = self._held()

    def _held(self) -> int:
        if self.cuda:
            return torch.cuda.memory_allocated()
        return self._status("VmRSS")

    @staticmethod
    def _status(field: str) -> int:
        """Bytes of a ``/proc/self/status`` field."""
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise OSError(f"no {field} in /proc/self/status")

    def reset(self):
        """Start a new peak at the memory held now."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return
        if self.trim is not None:
            self.trim(0)
        Path("/proc/self/clear_refs").write_text("5")

    def peak(self) -> Optional[float]:
        """MiB above the baseline at the peak since ``reset`` (None: unknown)."""
        if self.base is None:
            return None
        peak = torch.cuda.max_memory_allocated() if self.cuda else self._status("VmHWM")
        return max(0, peak - self.base) / MIB

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


def timed(
    repeats: int, meter: Meter, fn: Callable, *args
) -> Tuple[float, Any, Optional[float]]:
    """Median wall seconds of ``repeats`` calls ``fn(*args)``, the last result,
    and the peak memory (MiB) of the calls."""
    meter.reset()
    seconds = []
    for _ in range(repeats):
        out = None  # the last call's result must not count in this call
        meter.sync()
        start = time.perf_counter()
        out = fn(*args)
        meter.sync()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out, meter.peak()


def load_system(config: str, model_file: Optional[str], device: str) -> torch.nn.Module:
    """The codec of ``config``: trained from ``model_file``, else random (random
    codebooks too where the config's codebook file is missing)."""
    from espnet_almtok import pretrained, registration
    from espnet_almtok.eval.params import build_codec

    registration.install()
    if model_file is None:
        codec = build_codec(config)
        for buffer in codec.buffers():
            if buffer.isnan().any():  # the codebooks of a missing k-means file
                buffer.normal_()
    else:
        codec = pretrained.load_codec(config, device, model_file=model_file)
    return codec.to(device).eval()


def measure_system(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Load one system and measure it (the module docstring says what).

    Args:
        spec: ``name``, ``config``, ``model_file`` and the parsed options
            ``durations``, ``repeats``, ``batch_size``, ``batch_seconds``,
            ``chunk_seconds``, ``window_size``, ``device``, ``num_threads``,
            ``log_level``.

    Returns:
        The system's row of ``speed.json``.
    """
    from espnet_almtok.coding import ChunkedCoder
    from espnet_almtok.eval.params import codec_counts
    from espnet_almtok.model.codec import ALMTokenizer
    from espnet_almtok.utils.rates import bitrate

    setup_logging(spec["log_level"])
    if spec["num_threads"]:
        torch.set_num_threads(spec["num_threads"])
    device, repeats, name = spec["device"], spec["repeats"], spec["name"]
    torch.manual_seed(0)
    codec = load_system(spec["config"], spec["model_file"], device)
    native = isinstance(codec, ALMTokenizer)
    coder = ChunkedCoder(
        codec, spec["window_size"] if native else None, spec["chunk_seconds"]
    )
    fs = coder.meta["fs"]
    metrics = dict(
        params=codec_counts(codec)["codec_path"], bitrate=bitrate(coder.meta)
    )
    with torch.inference_mode():
        coder.decode(*coder.encode(*inputs(1.0, fs, 1, device)))  # warm-up
        meter = Meter(device)
        for seconds in spec["durations"]:
            n = calls(seconds, repeats)
            audio, lengths = inputs(seconds, fs, 1, device)
            enc, (codes, n_tokens), enc_peak = timed(
                n, meter, coder.encode, audio, lengths
            )
            del audio
            dec, _, dec_peak = timed(n, meter, coder.decode, codes, n_tokens)
            metrics[f"encode_rtf@{key(seconds)}"] = enc / seconds
            metrics[f"decode_rtf@{key(seconds)}"] = dec / seconds
            metrics[f"encode_peak_mib@{key(seconds)}"] = enc_peak
            metrics[f"decode_peak_mib@{key(seconds)}"] = dec_peak
            logging.info(
                f"{name} {seconds:g} s: encode RTF {fmt(enc / seconds)}, decode "
                f"RTF {fmt(dec / seconds)}, peak MiB {fmt(enc_peak)} / "
                f"{fmt(dec_peak)} ({n} calls)"
            )
        batch = inputs(spec["batch_seconds"], fs, spec["batch_size"], device)
        wall, _, metrics["batch_peak_mib"] = timed(
            repeats,
            meter,
            lambda x, lengths: coder.decode(*coder.encode(x, lengths)),
            *batch,
        )
    metrics["throughput"] = spec["batch_size"] * spec["batch_seconds"] / wall
    logging.info(
        f"{name} batch {spec['batch_size']} x {spec['batch_seconds']:g} s: "
        f"{fmt(metrics['throughput'])} audio s/s, peak MiB "
        f"{fmt(metrics['batch_peak_mib'])}"
    )
    return dict(
        config=spec["config"],
        model_file=spec["model_file"],
        codec=type(codec).__name__,
        fs=fs,
        window_size=coder.window,
        chunk_seconds=coder.chunk / fs,
        num_threads=torch.get_num_threads(),
        metrics=metrics,
    )


def environment(device: str) -> Dict[str, Any]:
    """Versions and hardware of this run."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return dict(
        torch=torch.__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=cpu,
        cpu_count=multiprocessing.cpu_count(),
        gpu=torch.cuda.get_device_name() if device == "cuda" else None,
    )


def ratios(
    systems: Dict[str, Dict[str, Any]], reference: str
) -> Dict[str, Dict[str, Optional[float]]]:
    """Each system's metrics over the reference's (None where that is 0 or None)."""
    ref = systems[reference]["metrics"]
    return {
        name: {
            k: v / ref[k] if v is not None and ref[k] else None
            for k, v in row["metrics"].items()
        }
        for name, row in systems.items()
    }


def table(
    result: Dict[str, Any], columns: List[Tuple[str, str]], scale: Dict[str, float]
) -> str:
    """A markdown table: a row per system, a ``value (xratio)`` cell per metric.

    Args:
        result: The contents of ``speed.json``.
        columns: (metric, header) pairs.
        scale: Factors metrics are shown multiplied by (default 1).
    """
    lines = [["system"] + [h for _, h in columns], ["---"] * (len(columns) + 1)]
    for name, row in result["systems"].items():
        cells = [name]
        for metric, _ in columns:
            value, ratio = row["metrics"][metric], result["ratios"][name][metric]
            if value is not None:
                value *= scale.get(metric, 1)
            cells.append(fmt(value) + ("" if ratio is None else f" (x{ratio:.2f})"))
        lines.append(cells)
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)


def markdown(result: Dict[str, Any]) -> str:
    """``speed.md``: a speed table and a memory table, with ratios."""
    s, env = result["settings"], result["environment"]
    ks = [key(d) for d in s["durations"]]
    speed = (
        [("params", "params (M)"), ("bitrate", "bit/s")]
        + [(f"encode_rtf@{k}", f"encode RTF {k}") for k in ks]
        + [(f"decode_rtf@{k}", f"decode RTF {k}") for k in ks]
        + [("throughput", "throughput (audio s/s)")]
    )
    memory = (
        [(f"encode_peak_mib@{k}", f"encode {k}") for k in ks]
        + [(f"decode_peak_mib@{k}", f"decode {k}") for k in ks]
        + [("batch_peak_mib", "batch")]
    )
    kind = "GPU memory allocated" if s["device"] == "cuda" else "resident set size"
    return (
        f"# Codec speed and memory ({s['device']}: {env['gpu'] or env['cpu']}, "
        f"torch {env['torch']}, torch threads: {env['num_threads']})\n\n"
        f"Ratios (x) are to `{s['reference']}`, measured in the same run (above "
        "1: more time or memory, or for throughput more audio per second). RTF: "
        "wall seconds per audio second, batch 1 (lower is faster). Throughput: "
        "audio seconds encoded and decoded per wall second, batch "
        f"{s['batch_size']} x {s['batch_seconds']:g} s. Chunks of at most "
        f"{s['chunk_seconds']:g} s.\n\n"
        + table(result, speed, {"params": 1e-6})
        + f"\nPeak memory (MiB above the loaded model's; {kind}):\n\n"
        + table(result, memory, {})
    )


def check_systems(args: argparse.Namespace) -> str:
    """The reference system's name, once the options are known to be usable.

    Args:
        args: The options of ``espnet_almtok.bin.bench_speed``.

    Raises:
        ValueError: Repeated system names, an unknown reference, a missing file
            or no CUDA device for ``--device cuda``.
    """
    names = [name for name, _, _ in args.system]
    reference = args.reference or names[0]
    if len(set(names)) < len(names):
        raise ValueError(f"--system names must differ: {names}")
    if reference not in names:
        raise ValueError(f"--reference {reference!r} is not a --system ({names})")
    for _, config, model_file in args.system:
        for path in filter(None, (config, model_file)):
            if not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch finds no CUDA GPU on this machine")
    return reference


def measure(args: argparse.Namespace, reference: str) -> None:
    """Measure every system in its own process and write speed.json and speed.md.

    Args:
        args: The options of ``espnet_almtok.bin.bench_speed``.
        reference: The system the ratios are to (``check_systems``).
    """
    names = [name for name, _, _ in args.system]
    options = {k: getattr(args, k) for k in OPTIONS}
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    systems = {}
    for name, config, model_file in args.system:
        logging.info(f"{name}: {config} ({model_file or 'random weights'})")
        spec = dict(options, name=name, config=config, model_file=model_file)
        spec["log_level"] = args.log_level
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            systems[name] = pool.submit(measure_system, spec).result()
    repeats = {key(d): calls(d, args.repeats) for d in args.durations}
    result = dict(
        settings=dict(options, reference=reference, repeats_per_duration=repeats),
        environment=dict(
            environment(args.device), num_threads=systems[names[0]]["num_threads"]
        ),
        systems=systems,
        ratios=ratios(systems, reference),
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out_dir / "speed.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(args.out_dir / "speed.md") as tmp:
        tmp.write_text(markdown(result))
    logging.info(f"wrote {args.out_dir / 'speed.json'} and speed.md")
