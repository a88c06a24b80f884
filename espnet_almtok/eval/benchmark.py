"""Benchmark ALMTokenizer against ESPnet's SoundStream and DAC, with ablations.

Run from a recipe directory (``egs2/<corpus>/almtok1``) through its
``benchmark.sh``::

    ./benchmark.sh --config conf/tuning/benchmark_tiny.yaml         # CPU, tiny
    ./benchmark.sh --config conf/benchmark.yaml --ngpu 1            # GPU configs

Every system is trained, decoded and scored by the recipe itself (``./run.sh``
stages 5-8, one ``--tag`` per system under ``--expdir``), so all see the same
data, the same semantic prior, the same seed handling, the same iterator and the
same metrics. Stages (``--stage``/``--stop_stage``):

1. Data and semantic prior, shared by all systems: ``./run.sh --stage 1
   --stop_stage 4``.
2. Per system: training for an equal budget, decoding of the test sets at the
   matched bitrate (ALMTokenizer systems at their ``inference_window``,
   fixed-rate codecs at their rate) and scoring. Every system gets
   ``2 * epochs_per_stage`` epochs of ``iters_per_epoch`` iterations: two-stage
   systems ``epochs_per_stage`` per stage, one-stage systems (``config:``) all
   in one; an ablation with ``stage1_from: NAME`` starts stage 2 from that
   system's stage-1 model. ESPnet's chunk iterator counts utterances drawn (the
   same ones for every system, by seed and epoch), not minibatches: each
   utterance gives as many chunks as its length allows, and it has no limit in
   steps. So the report also gives the generator steps each system really took
   (from its training logs); they differ by the chunk counts of the epochs drawn.
3. Per system: token dumps (``codec_inference --encode_only``) of the probe sets
   that stage 2 did not decode (a probe test set among the recipe's test sets
   is read from its decoding).
4. Per system: the content probe (``espnet_almtok.bin.probe``).
5. Speed and memory of the systems listed under ``speed`` (``bench_speed``), and
   the reference's quality at chunk boundaries against whole-file coding on
   ``chunk.test_set`` (``chunk_quality``), and the classic codecs under
   ``anchors`` (``anchor_inference``: Codec2, Opus) on the reference's test
   sets, scored as the recipe scores (with the Whisper WERs, DNSMOS and
   speaker similarity where the recipe computed them).
6. Report under ``--out_dir``: ``benchmark.json``, ``benchmark.md`` and plots.

The benchmark config (YAML; unknown keys are refused)::

    iters_per_epoch: 25        # overrides num_iters_per_epoch (utterances drawn)
    epochs_per_stage: 4
    run_args: ""               # extra ./run.sh arguments for every call
    reference: almtok          # the system the others are compared with
    baselines: [soundstream, dac]
    systems:
      almtok: {stage1_config: A.yaml, stage2_config: B.yaml}
      soundstream: {config: C.yaml}                  # one-stage
      soundstream_he: {config: C.yaml, train_args: "--codec soundstream_he"}
      no_mae: {stage2_config: D.yaml, stage1_from: almtok}
    probe: {train_set: train_speech, test_set: test_speech, steps: 300}
    speed: {systems: [almtok, soundstream, dac], durations: [10, 60, 600]}
    chunk: {test_set: test_speech, chunk_seconds: 1.0, boundary_seconds: 0.2}
    anchors: [codec2_450, codec2_700c, codec2_1300, opus_6k]

A system's ``train_args`` are extra ESPnet training options for it alone (e.g.
``--codec soundstream_he``: the config's SoundStream with our init).
Keys of ``probe``, ``speed`` and ``chunk`` other than those named are passed on
as options of ``espnet_almtok.bin.probe``, ``bench_speed`` and ``chunk_quality``;
a section left out skips its part.
"""

import argparse
import json
import logging
import math
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import yaml

from espnet_almtok.eval.anchors import ANCHORS
from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.config_check import check_keys

TOP_KEYS = {
    "iters_per_epoch",
    "epochs_per_stage",
    "run_args",
    "reference",
    "baselines",
    "systems",
    "probe",
    "speed",
    "chunk",
    "anchors",
}
SYSTEM_KEYS = {"config", "stage1_config", "stage2_config", "stage1_from", "train_args"}
# (metric, header, lower is better)
METRICS = (
    ("mel_distance", "mel dist", True),
    ("mrstft_distance", "MR-STFT dist", True),
    ("si_snr", "SI-SNR (dB)", False),
    ("pesq", "PESQ", False),
    ("stoi", "STOI", False),
    ("wer", "WER", True),
    ("dwer", "dWER", True),
    ("dwer_capped", "dWER capped", True),
    ("dnsmos", "DNSMOS", False),
    ("spk_sim", "spk sim", False),
)
LOWER_IS_BETTER = {metric: low for metric, _, low in METRICS}
CLAIM_METRICS = ("mel_distance", "stoi", "dwer", "dwer_capped")


@dataclass
class System:
    """One benchmarked codec: how the recipe trains it and where it lands."""

    name: str
    stage2_config: str
    stage1_config: Optional[str] = None
    stage1_from: Optional[str] = None
    train_args: str = ""

    @property
    def two_stage(self) -> bool:
        return self.stage1_config is not None or self.stage1_from is not None


def read_config(path: str) -> Dict[str, Any]:
    """The benchmark config, with its systems as ``System`` objects, checked."""
    conf = yaml.safe_load(Path(path).read_text())
    check_keys(conf, TOP_KEYS, path)
    systems = {}
    for name, spec in conf["systems"].items():
        check_keys(spec, SYSTEM_KEYS, f"{path}: systems.{name}")
        if ("config" in spec) == ("stage2_config" in spec):
            raise ValueError(
                f"{path}: systems.{name} needs either config (one-stage) or "
                "stage2_config (with stage1_config or stage1_from)"
            )
        if "stage2_config" in spec and ("stage1_config" in spec) == (
            "stage1_from" in spec
        ):
            raise ValueError(
                f"{path}: systems.{name}: give stage1_config or stage1_from"
            )
        source = spec.get("stage1_from")
        owner = systems.get(source)
        if source is not None and (owner is None or owner.stage1_config is None):
            raise ValueError(
                f"{path}: systems.{name}: stage1_from '{source}' must name an "
                "earlier system with its own stage1_config"
            )
        systems[name] = System(
            name,
            spec.get("config") or spec["stage2_config"],
            spec.get("stage1_config"),
            source,
            spec.get("train_args", ""),
        )
    conf["systems"] = systems
    for name in [conf["reference"], *conf.get("baselines", [])]:
        if name not in systems:
            raise ValueError(f"{path}: '{name}' is not one of the systems")
    for name in conf.get("anchors", []):
        if name not in ANCHORS or name in systems:
            raise ValueError(
                f"{path}: anchors: '{name}' is not one of {sorted(ANCHORS)} "
                "(or it is also a system's name)"
            )
    return conf


def as_options(options: Dict[str, Any]) -> List[str]:
    """``{"a": 1, "b": [2, 3]}`` as ``["--a", "1", "--b", "2", "3"]``."""
    args = []
    for key, value in options.items():
        values = value if isinstance(value, list) else [value]
        args += [f"--{key}", *map(str, values)]
    return args


class Benchmark:
    """The stages of the benchmark (see the module docstring).

    Args:
        conf: ``read_config`` output.
        args: Command-line arguments.
    """

    def __init__(self, conf: Dict[str, Any], args: argparse.Namespace):
        self.conf, self.args = conf, args
        self.systems: Dict[str, System] = conf["systems"]
        self.expdir = Path(args.expdir)
        self.out = Path(args.out_dir)
        self.device = "cuda" if args.ngpu > 0 else "cpu"
        self.run_args = shlex.split(conf.get("run_args", "")) + [
            "--ngpu",
            str(args.ngpu),
            "--gpu_inference",
            str(args.ngpu > 0).lower(),
            "--expdir",
            str(self.expdir),
        ]

    def exp(self, system: System) -> Path:
        return self.expdir / f"almtok_{system.name}"

    def run(self, cmd: List[str], what: str):
        logging.info(f"{what}: {shlex.join(cmd)}")
        if subprocess.run(cmd).returncode != 0:
            sys.exit(f"benchmark: {what} failed (command above)")

    def recipe(self, stage: int, stop_stage: int, *args: str, what: str):
        self.run(
            [self.args.run, "--stage", str(stage), "--stop_stage", str(stop_stage)]
            + self.run_args
            + list(args),
            what,
        )

    def data(self):
        ref = self.systems[self.conf["reference"]]
        self.recipe(1, 4, "--stage2_config", ref.stage2_config, what="data and prior")

    def train(self, system: System):
        epochs = self.conf["epochs_per_stage"] * (1 if system.two_stage else 2)
        steps = (
            f"--max_epoch {epochs} --num_iters_per_epoch {self.conf['iters_per_epoch']}"
        )
        args = ["--tag", system.name, "--stage2_config", system.stage2_config]
        args += ["--train_args", f"{steps} {system.train_args}".strip()]
        args += ["--inference_windows", self.window(system)]
        args += ["--two_stage", str(system.two_stage).lower()]
        first = 5
        if system.stage1_config is not None:
            args += ["--stage1_config", system.stage1_config]
        elif system.stage1_from is not None:
            source = self.systems[system.stage1_from]
            args += ["--stage1_exp", str(self.exp(source) / "stage1")]
            first = 6
        self.recipe(first, 8, *args, what=f"{system.name}: training and scoring")

    @staticmethod
    def window(system: System) -> str:
        """The decoding window: the inference window, or ``fixed`` for fixed rates."""
        codec = yaml.safe_load(Path(system.stage2_config).read_text())
        params = codec["codec_conf"].get("generator_params", {})
        if codec["codec"] != "almtokenizer":
            return "fixed"
        return str(params.get("inference_window", 4))

    def scores(self, system: System) -> Dict[str, Any]:
        """Per test set: the summary of the recipe's scoring (RESULTS.json)."""
        return read_results(self.exp(system))

    def anchor(self, name: str):
        """Code the reference's test sets with a classic codec; score as stage 8."""
        score_dirs = []
        for dset, ref in self.scores(self.systems[self.conf["reference"]]).items():
            out = self.expdir / "anchors" / name / dset / "fixed"
            if not (out / "decode_stats.json").is_file():
                cmd = [sys.executable, "-m", "espnet_almtok.bin.anchor_inference"]
                cmd += ["--anchor", name, "--wav_scp", f"dump/raw/{dset}/wav.scp"]
                self.run(cmd + ["--out_dir", str(out)], f"{name}: coding {dset}")
            cmd = [sys.executable, "-m", "espnet_almtok.bin.score", "--tag", name]
            cmd += ["--ref_scp", f"dump/raw/{dset}/wav.scp"]
            cmd += ["--hyp_scp", str(out / "wav" / "wav.scp")]
            cmd += ["--decode_stats", str(out / "decode_stats.json")]
            cmd += ["--out_dir", str(out / "score")]
            # Speech metrics exactly where the recipe computed them for the models.
            speech = "dwer" in ref["metrics"]
            cmd += ["--speech_metrics", str(speech).lower()]
            if speech and Path(f"dump/raw/{dset}/text").is_file():
                cmd += ["--text", f"dump/raw/{dset}/text"]
                cmd += ["--speech_utts", str(ref.get("speech_utts", 0))]
            self.run(cmd, f"{name}: scoring {dset}")
            score_dirs.append(str(out / "score"))
        cmd = [sys.executable, "-m", "espnet_almtok.bin.summarize", "--score_dirs"]
        cmd += score_dirs + [
            "--out",
            str(self.expdir / "anchors" / name / "RESULTS.md"),
        ]
        cmd += ["--json", str(self.expdir / "anchors" / name / "RESULTS.json")]
        self.run(cmd, f"{name}: summary")

    def model(self, system: System) -> Dict[str, str]:
        """The decoded model's config and file, as stage 7 used them."""
        # score_dir is <exp>/stage2/decode_<model>/<test set>/<window>/score
        score_dir = Path(next(iter(self.scores(system).values()))["score_dir"])
        decode, stage2 = score_dir.parents[2], score_dir.parents[3]
        return dict(
            train_config=str(stage2 / "config.yaml"),
            model_file=str(stage2 / (decode.name[len("decode_") :] + ".pth")),
        )

    def token_dir(self, system: System, dset: str) -> Path:
        """Token dump of a probe set: stage 7's codes for a decoded test set."""
        scores = self.scores(system)
        if dset in scores:
            return Path(scores[dset]["score_dir"]).parent
        return self.exp(system) / "probe" / dset

    def dump_tokens(self, system: System):
        model, window = self.model(system), self.window(system)
        for split in ("train_set", "test_set"):
            dset = self.conf["probe"][split]
            out = self.token_dir(system, dset)
            if out.parent.name != "probe":  # decoded by the recipe already
                continue
            if (out / "decode_stats.json").is_file():  # written last: complete
                logging.info(f"{system.name}: tokens of {dset} in {out}: kept")
                continue
            cmd = [sys.executable, "-m", "espnet_almtok.bin.codec_inference"]
            cmd += ["--train_config", model["train_config"]]
            cmd += ["--model_file", model["model_file"], "--encode_only", "true"]
            cmd += ["--ngpu", str(min(self.args.ngpu, 1))]
            cmd += [
                "--data_path_and_name_and_type",
                f"dump/raw/{dset}/wav.scp,audio,sound",
            ]
            cmd += ["--output_dir", str(out)]
            if window != "fixed":
                cmd += ["--window_size", window]
            self.run(cmd, f"{system.name}: tokens of {dset}")

    def probe(self, system: System):
        conf = dict(self.conf["probe"])
        train, test = conf.pop("train_set"), conf.pop("test_set")
        out = self.exp(system) / "probe" / "probe.json"
        cmd = [sys.executable, "-m", "espnet_almtok.bin.probe"]
        cmd += ["--train_dir", str(self.token_dir(system, train))]
        cmd += ["--train_data", f"data/{train}"]
        cmd += ["--test_dir", str(self.token_dir(system, test))]
        cmd += ["--test_data", f"data/{test}"]
        cmd += ["--device", self.device, "--out", str(out)]
        out.parent.mkdir(parents=True, exist_ok=True)
        self.run(cmd + as_options(conf), f"{system.name}: content probe")

    def speed(self):
        conf = dict(self.conf["speed"])
        names = conf.pop("systems")
        cmd = [sys.executable, "-m", "espnet_almtok.bin.bench_speed"]
        for name in names:
            model = self.model(self.systems[name])
            cmd += ["--system", f"{name}={model['train_config']}:{model['model_file']}"]
        cmd += ["--reference", names[0], "--device", self.device]
        cmd += ["--out_dir", str(self.out / "speed")]
        self.run(cmd + as_options(conf), "speed and memory")

    def chunk_quality(self):
        conf = dict(self.conf["chunk"])
        dset = conf.pop("test_set")
        model = self.model(self.systems[self.conf["reference"]])
        cmd = [sys.executable, "-m", "espnet_almtok.bin.chunk_quality"]
        cmd += ["--train_config", model["train_config"]]
        cmd += ["--model_file", model["model_file"]]
        cmd += [
            "--wav_scp",
            f"dump/raw/{dset}/wav.scp",
            "--ngpu",
            str(min(self.args.ngpu, 1)),
        ]
        cmd += ["--out", str(self.out / "chunk_quality.json")]
        self.run(cmd + as_options(conf), "quality at chunk boundaries")


def read_results(exp: Path) -> Dict[str, Any]:
    """Per test set: the model's summaries in ``<exp>/RESULTS.json`` (stage 8's
    layout: ``.../<test set>/<window>/score``; rows of ``--anchors`` are left
    out: the benchmark codes its own)."""
    results = json.loads((exp / "RESULTS.json").read_text())["results"]
    return {
        Path(r["score_dir"]).parent.parent.name: r
        for r in results
        if Path(r["score_dir"]).parents[2].name != "anchors"
    }


def claims(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Whether the reference beats each baseline and anchor on ``CLAIM_METRICS``.

    One row per test set, metric and other system; a metric the test set has no
    value for (dWER without transcripts or speech metrics) gives no row.
    """
    ref = report["reference"]
    rows = []
    for base in report["baselines"] + report["anchors"]:
        for dset, scores in report["systems"][ref]["scores"].items():
            for metric in CLAIM_METRICS:
                ours = scores.get(metric)
                if ours is None:
                    continue
                theirs = report["systems"][base]["scores"].get(dset, {}).get(metric)
                better = None
                if ours is not None and theirs is not None:
                    better = ours < theirs if LOWER_IS_BETTER[metric] else ours > theirs
                rows.append(
                    dict(
                        test_set=dset,
                        metric=metric,
                        baseline=base,
                        reference=ours,
                        baseline_value=theirs,
                        reference_better=better,
                    )
                )
    return rows


def collect(bench: Benchmark) -> Dict[str, Any]:
    """Everything the stages wrote, as one report (``benchmark.json``)."""
    from espnet_almtok.eval.params import count_configs

    conf, systems = bench.conf, bench.systems
    configs = {name: bench.model(s)["train_config"] for name, s in systems.items()}
    counts = count_configs(list(configs.values()), configs[conf["reference"]])
    report = dict(
        config=bench.args.config,
        reference=conf["reference"],
        baselines=conf.get("baselines", []),
        anchors=conf.get("anchors", []),
        epochs=2 * conf["epochs_per_stage"],
        iters_per_epoch=conf["iters_per_epoch"],
        device=bench.device,
        systems={},
    )
    for name, system in systems.items():
        scores = bench.scores(system)
        probe = bench.exp(system) / "probe" / "probe.json"
        tokens = bench.token_dir(system, conf.get("probe", {}).get("test_set", ""))
        role = "ablation"
        if name == conf["reference"]:
            role = "reference"
        elif name in report["baselines"]:
            role = "baseline"
        dirs = [bench.exp(system) / "stage2"]
        if system.two_stage:
            owner = systems[system.stage1_from] if system.stage1_from else system
            dirs.append(bench.exp(owner) / "stage1")
        steps = [trained_steps(d) for d in dirs]
        report["systems"][name] = dict(
            role=role,
            generator_steps=None if None in steps else sum(steps),
            training=("two-stage" if system.two_stage else "one-stage")
            + (f" (stage 1 of {system.stage1_from})" if system.stage1_from else ""),
            config=system.stage2_config,
            params=counts[configs[name]]["codec_path"],
            params_ratio=counts[configs[name]]["codec_path_ratio"],
            bitrate=next(iter(scores.values()))["decode"]["bitrate"],
            **set_scores(scores),
            probe=json.loads(probe.read_text()) if probe.exists() else None,
            code_usage=code_usage(tokens) if probe.exists() else None,
        )
    for name in report["anchors"]:
        scores = read_results(bench.expdir / "anchors" / name)
        report["systems"][name] = dict(
            role="anchor",
            generator_steps=None,
            training="classic codec",
            config=None,
            params=None,
            params_ratio=None,
            bitrate=next(iter(scores.values()))["decode"]["bitrate"],
            **set_scores(scores),
            probe=None,
            code_usage=None,
        )
    for key, path in (("speed", "speed/speed.json"), ("chunk", "chunk_quality.json")):
        path = bench.out / path
        report[key] = json.loads(path.read_text()) if path.exists() else None
    report["claims"] = claims(report)
    return report


def set_scores(scores: Dict[str, Any]) -> Dict[str, Any]:
    """Mean of each of ``METRICS`` (None where not computed) and utterance counts."""
    return dict(
        scores={
            dset: {
                m: r["metrics"][m]["mean"] if m in r["metrics"] else None
                for m, _, _ in METRICS
            }
            for dset, r in scores.items()
        },
        num_utts={dset: r["num_utts"] for dset, r in scores.items()},
    )


def trained_steps(exp: Path) -> Optional[int]:
    """Generator steps of a training directory: the last cumulative count.

    A resumed run that had nothing left to do logs no count, so every
    ``train*.log`` is read.
    """
    counts = [
        int(n)
        for log in exp.glob("train*.log")
        for n in re.findall(r"\[train\].*?total_count=(\d+)", log.read_text())
    ]
    return max(counts, default=None)


def code_usage(dump_dir: Path) -> Optional[List[Dict[str, float]]]:
    """Per RVQ layer of a token dump: codes used, and perplexity (e^entropy).

    A collapsed codebook (one code for everything) carries nothing a probe can
    read: these say whether a probe result means anything. None for a
    continuous codec's latents, which have no codes.
    """
    from espnet_almtok.eval.probe import read_dump

    stats, codes, _ = read_dump(str(dump_dir))
    if stats.get("continuous"):
        return None
    usage = []
    for layer, size in enumerate(stats["code_size_per_stream"]):
        counts = np.bincount(
            np.concatenate([c[layer] for c in codes.values()]), minlength=size
        )
        p = counts[counts > 0] / counts.sum()
        usage.append(
            dict(
                size=size,
                used=int((counts > 0).sum()),
                perplexity=float(np.exp(-(p * np.log(p)).sum())),
            )
        )
    return usage


def _fmt(value: Optional[float], fmt: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def markdown(report: Dict[str, Any], out: Path) -> str:
    """The report as markdown (tables, then the plots written beside it)."""
    from espnet_almtok.eval.summary import markdown_table

    systems = report["systems"]
    text = [
        f"# Benchmark ({report['config']})\n\n",
        f"Every system: {report['epochs']} epochs of {report['iters_per_epoch']} "
        "iterations in all (two-stage systems: half per stage) on the same data "
        "with the same seed; `steps`: the generator steps it took. Decoded on "
        f"{report['device']} at the bitrate in the table. Reference: "
        f"`{report['reference']}`. Arrows: which way is better.\n\n",
    ]
    test_sets = list(systems[report["reference"]]["scores"])
    for dset in test_sets:
        # Only the metrics some system has for this set (WERs need transcripts).
        metrics = [
            (m, h, low)
            for m, h, low in METRICS
            if any(
                s["scores"].get(dset, {}).get(m) is not None for s in systems.values()
            )
        ]
        header = ["system", "role", "training", "steps", "params (M)", "vs ref"]
        header += ["bit/s"] + [h + (" ↓" if low else " ↑") for _, h, low in metrics]
        rows = []
        for name, s in systems.items():
            rows.append(
                [name, s["role"], s["training"], _fmt(s["generator_steps"], "{}")]
                + [_fmt(s["params"] and s["params"] / 1e6)]
                + [_fmt(s["params_ratio"], "{:.2f}"), _fmt(s["bitrate"], "{:.1f}")]
                + [_fmt(s["scores"].get(dset, {}).get(m)) for m, _, _ in metrics]
            )
        text += [f"## Reconstruction: {dset}\n\n", markdown_table(header, rows), "\n"]
    if report["claims"]:
        rows = [
            [c["test_set"], c["metric"], c["baseline"], _fmt(c["reference"])]
            + [_fmt(c["baseline_value"])]
            + [{True: "yes", False: "no", None: "-"}[c["reference_better"]]]
            for c in report["claims"]
        ]
        text += [
            f"## Does `{report['reference']}` beat the baselines and anchors?\n\n",
            markdown_table(
                ["test set", "metric", "baseline", "reference", "baseline value"]
                + ["reference better"],
                rows,
            ),
            "\n",
        ]
    probes = {n: s["probe"] for n, s in systems.items() if s["probe"]}
    if probes:
        rows = [
            [name, _fmt(p["ctc"]["cer_test"]), _fmt(p["ctc"]["cer_train"])]
            + [_fmt(p["speaker"]["accuracy"]), _fmt(p["speaker"]["chance"])]
            + [
                (
                    " / ".join(f"{u[key]:{fmt}}" for u in systems[name]["code_usage"])
                    if systems[name]["code_usage"]
                    else "- (continuous)"
                )
                for key, fmt in (("used", "d"), ("perplexity", ".1f"))
            ]
            for name, p in probes.items()
        ]
        first = next(iter(probes.values()))
        text += [
            "## Content probe (frozen tokens)\n\n",
            f"Layer {first['settings']['layer']} tokens, "
            f"{first['settings']['steps']} steps per probe. CER: "
            "CTC character recogniser trained on the probe's training set, tested "
            "on its test set. Speaker: classifier over the speakers of both sets, "
            "tested on held-out utterances. Codes used and perplexity, per layer, "
            f"on the test set ({first['settings']['code_size']} entries each): a "
            "collapsed codebook carries nothing to probe.\n\n",
            markdown_table(
                ["system", "CER test ↓", "CER train", "speaker acc ↑", "chance"]
                + ["codes used", "perplexity"],
                rows,
            ),
            "\n",
        ]
    if report["speed"]:
        speed = (out / "speed" / "speed.md").read_text()
        # Its headings go one level under this section's.
        speed = re.sub(r"^(#+) ", r"\1## ", speed, flags=re.M)
        text += ["## Speed and memory\n\n", speed]
        text += ["\n"]
    chunk = report["chunk"]
    if chunk:
        rows = [
            [region, system]
            + [
                _fmt(chunk[region][system][m]["mean"])
                for m in ("mel_distance", "si_snr")
            ]
            for region in ("boundary", "interior", "utterance")
            for system in ("chunked", "whole")
        ]
        text += [
            f"## Chunked against whole-file coding (`{report['reference']}`)\n\n",
            f"{chunk['num_utts']} utterances of `{chunk['wav_scp']}` coded in chunks "
            "of "
            f"{chunk['chunk_seconds']:.2f} s ({chunk['num_boundaries']} boundaries) "
            f"and whole; regions of {chunk['boundary_seconds']:.2f} s either side of "
            "each boundary, mid-chunk, and whole utterances. Tokens left unchanged "
            "by chunking, per layer: "
            + ", ".join(f"{a:.2f}" for a in chunk["token_agreement"])
            + ".\n\n",
            markdown_table(["region", "coding", "mel dist ↓", "SI-SNR (dB) ↑"], rows),
            "\n",
        ]
    text += ["## Plots\n\n"]
    text += [f"![{p.stem}]({p.name})\n\n" for p in sorted(out.glob("*.png"))]
    return "".join(text)


def plots(report: Dict[str, Any], out: Path):
    """Bar charts of reconstruction and probe results, one PNG each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = report["systems"]
    names = list(systems)
    colours = [
        {"reference": "tab:red", "baseline": "tab:blue", "anchor": "tab:green"}.get(
            systems[n]["role"], "tab:gray"
        )
        for n in names
    ]
    test_sets = list(systems[report["reference"]]["scores"])
    panels = [
        (d, m)
        for d in test_sets
        for m in CLAIM_METRICS
        if any(s["scores"].get(d, {}).get(m) is not None for s in systems.values())
    ]
    probes = [n for n in names if systems[n]["probe"]]
    if probes:
        panels += [("probe", "cer_test"), ("probe", "accuracy")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (where, metric) in zip(axes, panels):
        if where == "probe":
            part = "ctc" if metric == "cer_test" else "speaker"
            values = [
                systems[n]["probe"][part][metric] if n in probes else math.nan
                for n in names
            ]
            title = "probe CER ↓" if part == "ctc" else "probe speaker acc ↑"
        else:
            values = [systems[n]["scores"].get(where, {}).get(metric) for n in names]
            values = [math.nan if v is None else v for v in values]
            title = f"{where}: {metric} {'↓' if LOWER_IS_BETTER[metric] else '↑'}"
        ax.bar(range(len(names)), values, color=colours)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    save(fig, out / "benchmark.png")
    if report["speed"]:
        save(speed_figure(report["speed"], plt), out / "speed.png")


def save(fig, path: Path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def speed_figure(speed: Dict[str, Any], plt):
    """Encode and decode real-time factors against input length, per system."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, op in zip(axes, ("encode", "decode")):
        for name, row in speed["systems"].items():
            points = sorted(
                (float(m.group(1)), v)
                for k, v in row["metrics"].items()
                if (m := re.fullmatch(rf"{op}_rtf@([\d.]+)s", k))
            )
            ax.plot(*zip(*points), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("input (s)")
        ax.set_title(f"{op} RTF ↓ ({speed['settings']['device']})", fontsize=9)
    axes[0].legend(fontsize=8)
    return fig


def run(args: argparse.Namespace) -> None:
    """Run the chosen stages of the benchmark and write its report.

    Args:
        args: The options of ``espnet_almtok.bin.benchmark``.
    """
    args.out_dir = args.out_dir or str(Path(args.expdir) / "results")
    bench = Benchmark(read_config(args.config), args)
    chosen = [bench.systems[n] for n in (args.systems or bench.systems)]

    def wanted(stage: int) -> bool:
        return args.stage <= stage <= args.stop_stage

    # Sections left out of the config skip their stage.
    has = bench.conf.__contains__
    if wanted(1):
        bench.data()
    for stage, step in ((2, bench.train), (3, bench.dump_tokens), (4, bench.probe)):
        if wanted(stage) and (stage == 2 or has("probe")):
            for system in chosen:
                step(system)
    if wanted(5) and has("speed"):
        bench.speed()
    if wanted(5) and has("chunk"):
        bench.chunk_quality()
    if wanted(5):
        for name in bench.conf.get("anchors", []):
            bench.anchor(name)
    if wanted(6):
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = collect(bench)
        plots(report, out)
        with atomic_path(out / "benchmark.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        with atomic_path(out / "benchmark.md") as tmp:
            tmp.write_text(markdown(report, out))
        logging.info(f"Report: {out / 'benchmark.md'}")
