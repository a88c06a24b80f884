"""The recipes' job launchers (local/run.pl, local/slurm.pl) and option parsing."""

import os
import subprocess

from conftest import ROOT

LOCAL = ROOT / "local"


def test_run_pl_runs_jobs_in_parallel_and_logs_them(tmp_path):
    out = subprocess.run(
        [LOCAL / "run.pl", "JOB=1:3", tmp_path / "log.JOB", "echo", "job JOB"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    for i in (1, 2, 3):
        log = (tmp_path / f"log.{i}").read_text()
        assert f"job {i}\n" in log and "exit code 0" in log


def test_run_pl_fails_and_names_the_failed_log(tmp_path):
    out = subprocess.run(
        [LOCAL / "run.pl", "JOB=1:2", tmp_path / "log.JOB", "test", "JOB", "-eq", "1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "1 of 2 job(s) failed" in out.stderr and f"{tmp_path}/log.2" in out.stderr


def test_slurm_pl_submits_with_sbatch(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text('#!/bin/bash\necho "sbatch $*" >> "$SBATCH_CALLS"\n')
    (fake / "sbatch").chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{fake}:{os.environ['PATH']}",
        SBATCH_CALLS=str(tmp_path / "calls"),
        ALMTOK_SBATCH_OPTS="-p gpu",
    )
    out = subprocess.run(
        [
            LOCAL / "slurm.pl",
            "--gpu",
            "2",
            "--num_nodes",
            "2",
            "JOB=1:2",
            tmp_path / "log.JOB",
            "python",
            "train.py",
            "--part",
            "JOB",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2
    for call in calls:
        assert "--wait" in call and "--gres=gpu:2" in call and "--nodes=2" in call
        assert "-p gpu" in call
    assert any(call.endswith("--wrap python train.py --part 2") for call in calls)


def test_parse_options_sets_known_and_refuses_unknown(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(
        f'stage=1\ntest_sets=""\n. {LOCAL}/parse_options.sh\necho "$stage|$test_sets"\n'
    )
    out = subprocess.run(
        ["bash", script, "--stage", "3", "--test-sets=a b"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "3|a b"
    out = subprocess.run(
        ["bash", script, "--nope", "1"], capture_output=True, text=True
    )
    assert out.returncode != 0 and "unknown option --nope" in out.stderr
