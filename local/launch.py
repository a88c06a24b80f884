#!/usr/bin/env python3
"""Run a (possibly parallel) job and log it: the recipes' ``*_cmd``.

Installed as ``local/run.pl`` (this machine) and ``local/slurm.pl`` (Slurm),
named after Kaldi's scripts because ESPnet's ``espnet2.bin.launch`` picks its
multi-node mode from the name of ``--cmd``. Usage, as Kaldi's::

    run.pl|slurm.pl [--gpu N] [--num_threads N] [--num_nodes N] [--mem M] \\
        [--time T] [--name NAME] [--max_parallel N] [JOB=1:N] LOGFILE COMMAND...

``JOB`` in LOGFILE and COMMAND is replaced by the job index. ``run.pl`` runs the
jobs as parallel processes (at most ``--max_parallel`` at once, 0 = all);
``slurm.pl`` submits one ``sbatch --wait`` job per index, with extra sbatch
options from the environment variable ``ALMTOK_SBATCH_OPTS``. The exit status
is non-zero when any job failed, and the failed logs are named.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def sbatch_command(args, index: int, logfile: Path, command: str) -> list:
    cmd = ["sbatch", "--wait", f"--job-name={args.name or 'almtok'}.{index}"]
    cmd += [f"--output={logfile}.slurm", f"--cpus-per-task={args.num_threads}"]
    if args.gpu > 0:
        cmd.append(f"--gres=gpu:{args.gpu}")
    if args.num_nodes > 1:
        cmd += [f"--nodes={args.num_nodes}", f"--ntasks-per-node={max(args.gpu, 1)}"]
    if args.mem:
        cmd.append(f"--mem={args.mem}")
    if args.time:
        cmd.append(f"--time={args.time}")
    return (
        cmd
        + shlex.split(os.environ.get("ALMTOK_SBATCH_OPTS", ""))
        + ["--wrap", command]
    )


def run_one(args, backend: str, index: int, logfile: Path, command: str) -> int:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "w") as log:
        log.write(f"# {command}\n# started at {time.ctime()}\n")
        log.flush()
        if backend == "local":
            cmd = ["bash", "-c", command]
        else:
            cmd = sbatch_command(args, index, logfile, command)
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        slurm_log = Path(f"{logfile}.slurm")
        if slurm_log.exists():
            log.write(slurm_log.read_text())
            slurm_log.unlink()
        log.write(f"# finished at {time.ctime()} with exit code {rc}\n")
    return rc


def main():
    backend = "slurm" if Path(sys.argv[0]).name == "slurm.pl" else "local"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--num_nodes", type=int, default=1)
    parser.add_argument("--mem", default="")
    parser.add_argument("--time", default="")
    parser.add_argument("--name", default="")
    parser.add_argument("--max_parallel", type=int, default=0)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if backend == "local" and args.num_nodes > 1:
        parser.error("run.pl runs on this machine only; use slurm.pl for several nodes")
    rest = args.rest
    first = last = 1
    if rest and re.fullmatch(r"JOB=\d+:\d+", rest[0]):
        first, last = map(int, rest[0][4:].split(":"))
        rest = rest[1:]
    if len(rest) < 2:
        parser.error("expected [JOB=a:b] LOGFILE COMMAND...")
    logfile, command = rest[0], shlex.join(rest[1:])
    jobs = {
        i: (Path(logfile.replace("JOB", str(i))), command.replace("JOB", str(i)))
        for i in range(first, last + 1)
    }
    with ThreadPoolExecutor(max_workers=args.max_parallel or len(jobs)) as pool:
        codes = list(pool.map(lambda i: run_one(args, backend, i, *jobs[i]), jobs))
    failed = [str(jobs[i][0]) for i, rc in zip(jobs, codes) if rc != 0]
    if failed:
        sys.exit(
            f"{Path(sys.argv[0]).name}: {len(failed)} of {len(jobs)} job(s) failed; see {' '.join(failed)}"
        )


if __name__ == "__main__":
    main()
