#!/usr/bin/env python3
"""Run a (possibly parallel) job and log it: the recipes' ``*_cmd``.

Usage, as Kaldi's run.pl/slurm.pl::

    launch.py [--backend local|slurm] [--gpu N] [--max_parallel N] \\
        [--slurm_opts "..."] [JOB=1:N] LOGFILE COMMAND...

``JOB`` in LOGFILE and COMMAND is replaced by the job index. The local backend
runs the jobs as parallel processes on this machine; the slurm backend submits
one ``sbatch --wait`` job per index (``--gpu`` becomes ``--gres=gpu:N``). The
exit status is non-zero when any job failed, and the failed logs are named.
"""

import argparse
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_one(args, index, logfile: Path, command: str) -> int:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "w") as log:
        log.write(f"# {command}\n# started at {time.ctime()}\n")
        log.flush()
        if args.backend == "local":
            rc = subprocess.run(
                ["bash", "-c", command], stdout=log, stderr=subprocess.STDOUT
            ).returncode
        else:
            sbatch = [
                "sbatch",
                "--wait",
                "--parsable",
                f"--job-name=almtok.{index}",
                f"--output={logfile}.slurm",
            ]
            if args.gpu > 0:
                sbatch.append(f"--gres=gpu:{args.gpu}")
            sbatch += shlex.split(args.slurm_opts) + ["--wrap", command]
            rc = subprocess.run(sbatch, stdout=log, stderr=subprocess.STDOUT).returncode
            slurm_log = Path(f"{logfile}.slurm")
            if slurm_log.exists():
                log.write(slurm_log.read_text())
                slurm_log.unlink()
        log.write(f"# finished at {time.ctime()} with exit code {rc}\n")
    return rc


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["local", "slurm"], default="local")
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--max_parallel", type=int, default=0, help="0: all at once")
    parser.add_argument("--slurm_opts", default="")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.rest
    first, last = 1, 1
    if rest and re.fullmatch(r"JOB=\d+:\d+", rest[0]):
        first, last = map(int, rest[0][4:].split(":"))
        rest = rest[1:]
    if len(rest) < 2:
        parser.error("expected [JOB=a:b] LOGFILE COMMAND...")
    logfile, command = rest[0], " ".join(rest[1:])
    jobs = {
        i: (Path(logfile.replace("JOB", str(i))), command.replace("JOB", str(i)))
        for i in range(first, last + 1)
    }
    workers = args.max_parallel or len(jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = dict(zip(jobs, pool.map(lambda i: run_one(args, i, *jobs[i]), jobs)))
    failed = [str(jobs[i][0]) for i, rc in codes.items() if rc != 0]
    if failed:
        print(
            f"launch.py: {len(failed)} of {len(jobs)} job(s) failed; see {' '.join(failed)}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
