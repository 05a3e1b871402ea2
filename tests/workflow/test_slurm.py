"""The SLURM profile for real: the shrunk DAG runs through ``workflow/profiles/slurm`` on a live
cluster (``scripts/slurm_local.sh start``); every heavy rule runs as a SLURM job, the outputs equal
those of the same DAG run locally (the session's ``smoke`` run), a job that fails once is retried
by the profile's ``retries``, a training job cancelled with ``scancel`` after a checkpoint resumes
from it on retry and ends as an uninterrupted run, and a job that always fails stops the DAG naming
its log.

Runs on whatever cluster answers ``sinfo``; without one, the ``partition`` fixture starts the
local one-node cluster (``scripts/slurm_local.sh``, needs root and Debian's apt) and stops it after.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from smokerun import flaky_repro, leaked_secrets, preempted_repro, shrink, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

RUN = "results/embedded/hgpo/alfworld/tiny-qwen2-alfworld/{method}/seed0"
REMOTE_RULES = {"fetch_dataset", "get_model", "train", "evaluate"}  # the rest are localrules


def _up_partition() -> str | None:
    """The default (else first) partition that is up, or None when no cluster answers."""
    if shutil.which("sinfo") is None:
        return None
    p = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=30)
    up = [name for name, avail in (line.split() for line in p.stdout.splitlines() if line.strip())
          if avail == "up"]
    if p.returncode != 0 or not up:
        return None
    return ([n for n in up if n.endswith("*")] or up)[0].rstrip("*")


@pytest.fixture(scope="module")
def partition(root):
    """A live cluster's partition; starts the local one-node cluster if none answers."""
    name, script = _up_partition(), str(root / "scripts" / "slurm_local.sh")
    started = name is None
    if started:
        p = subprocess.run([script, "start"], capture_output=True, text=True, timeout=600)
        name = _up_partition()
        if name is None:
            pytest.fail("no SLURM cluster answers sinfo and `scripts/slurm_local.sh start` did not "
                        f"start one (it needs root and apt):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    yield name
    if started:
        subprocess.run([script, "stop"], capture_output=True, timeout=120)


def slurm_args(partition: str) -> tuple[str, ...]:
    """The local override of the slurm profile: this cluster's partition, no accounting daemon
    (status via squeue), a quick first status check, and the profile's paper-scale requests for
    the download rules (32 GB) cut to what one small node has."""
    return ("--default-resources", f"slurm_partition={partition}",
            "--set-resources", "get_model:mem_mb=4000", "fetch_dataset:mem_mb=2000",
            "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "5",
            "--set-threads", "get_model=1", "--jobs", "2")


@pytest.fixture(scope="module")
def slurm_run(root, partition, tmp_path_factory):
    wd = tmp_path_factory.mktemp("slurm")
    shrink(root, wd, benchmarks=("alfworld",))  # 6 SLURM jobs; WebShop runs in the local smoke
    proc = snakemake(root, wd, *slurm_args(partition), profile="slurm", timeout=1800)
    return wd, proc.stdout + proc.stderr


def test_heavy_rules_ran_as_slurm_jobs(slurm_run):
    wd, log = slurm_run
    jobids = re.findall(r"SLURM jobid (\d+)", log)
    # fetch_dataset, get_model, 2 x train, 2 x evaluate
    assert len(set(jobids)) == 6, log[-4000:]
    logs = {p.stem: p for p in (wd / ".snakemake" / "slurm_logs").rglob("*.log")}
    rules = {p.relative_to(wd / ".snakemake" / "slurm_logs").parts[0].removeprefix("rule_")
             for p in logs.values()}
    assert rules == REMOTE_RULES
    assert set(jobids) <= set(logs), "every SLURM job keeps its log (slurm-keep-successful-logs)"
    assert leaked_secrets(wd) == []  # jobs get the environment (--export=ALL), logs must not
    states = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(jobids), "-o", "%i %T"],
                            capture_output=True, text=True, timeout=30).stdout.split("\n")
    seen = dict(line.split() for line in states if line.strip())
    assert seen == {j: "COMPLETED" for j in jobids}


def test_outputs_equal_the_local_run(slurm_run, smoke):
    wd, _ = slurm_run
    for method in ("warmstart", "hgpo"):
        ours = json.loads((wd / RUN.format(method=method) / "eval.json").read_text())
        local = json.loads((smoke / RUN.format(method=method) / "eval.json").read_text())
        assert ours["splits"] == local["splits"], method
        assert ours["provenance"]["dataset"] == local["provenance"]["dataset"]
    cols = lambda df: df[[c for c in df.columns if not c.startswith("time/")]]  # noqa: E731
    pd.testing.assert_frame_equal(cols(pd.read_csv(wd / RUN.format(method="hgpo") / "train_log.csv")),
                                  cols(pd.read_csv(smoke / RUN.format(method="hgpo") / "train_log.csv")))
    # the local smoke also runs WebShop: compare the ALFWorld part
    alf = lambda df: df[df.benchmark == "alfworld"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(alf(pd.read_csv(wd / "results/embedded/hgpo/summary.csv")),
                                  alf(pd.read_csv(smoke / "results/embedded/hgpo/summary.csv")))
    table = lambda d: pd.read_csv(d / "paper_figures/embedded/hgpo/main_table.csv").filter(like="ALFWorld")  # noqa: E731
    pd.testing.assert_frame_equal(table(wd), table(smoke))


def _states(jobids: list[str]) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(jobids), "-o", "%i %T"],
                         capture_output=True, text=True, timeout=30).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_a_job_failing_once_is_retried_by_the_profile(root, partition, slurm_run, tmp_path):
    wd, _ = slurm_run
    target = wd / RUN.format(method="hgpo") / "eval.json"
    before = json.loads(target.read_text())["splits"]
    bindir = flaky_repro(tmp_path, "once")
    proc = snakemake(root, wd, *slurm_args(partition), "--forcerun", str(target.relative_to(wd)),
                     "--until", "evaluate", profile="slurm", timeout=900, path_prepend=bindir)
    log = proc.stdout + proc.stderr
    jobids = sorted(set(re.findall(r"SLURM jobid (\d+)", log)), key=int)
    assert len(jobids) == 2, log[-4000:]  # the failed attempt and its retry
    assert _states(jobids) == {jobids[0]: "FAILED", jobids[1]: "COMPLETED"}
    assert json.loads(target.read_text())["splits"] == before  # the retry evaluated the same


def test_a_training_job_cancelled_after_a_checkpoint_resumes_and_ends_the_same(
        root, partition, slurm_run, smoke, tmp_path):
    """`scancel` of a training job after its first checkpoint (the preemption case): the
    profile's retry resumes from that checkpoint and the evaluation equals the uninterrupted one."""
    wd, _ = slurm_run
    run_dir = wd / RUN.format(method="hgpo")
    bindir = preempted_repro(tmp_path)
    proc = snakemake(root, wd, *slurm_args(partition), "--forcerun",
                     str((run_dir / "checkpoint").relative_to(wd)), "--until", "evaluate",
                     profile="slurm", timeout=900, path_prepend=bindir)
    log = proc.stdout + proc.stderr
    jobids = sorted(set(re.findall(r"SLURM jobid (\d+)", log)), key=int)
    assert len(jobids) == 3, log[-4000:]  # cancelled train, its retry, evaluate
    assert _states(jobids) == {jobids[0]: "CANCELLED", jobids[1]: "COMPLETED",
                               jobids[2]: "COMPLETED"}
    train_log = (wd / "logs/train/embedded/hgpo/alfworld/tiny-qwen2-alfworld/hgpo/seed0.log").read_text()
    assert "resuming from checkpoint" in train_log and "at iteration 1" in train_log
    local = smoke / RUN.format(method="hgpo")
    assert json.loads((run_dir / "eval.json").read_text())["splits"] == \
        json.loads((local / "eval.json").read_text())["splits"]
    cols = lambda df: df[[c for c in df.columns if not c.startswith("time/")]]  # noqa: E731
    pd.testing.assert_frame_equal(cols(pd.read_csv(run_dir / "train_log.csv")),
                                  cols(pd.read_csv(local / "train_log.csv")))
    assert not (run_dir / "_resume").exists()


def test_a_job_that_always_fails_stops_the_dag_and_names_its_log(root, partition, slurm_run, tmp_path):
    wd, _ = slurm_run
    target = wd / RUN.format(method="hgpo") / "eval.json"
    bindir = flaky_repro(tmp_path, "always")
    proc = snakemake(root, wd, *slurm_args(partition), "--forcerun", str(target.relative_to(wd)),
                     "--until", "evaluate", profile="slurm", timeout=900, path_prepend=bindir,
                     check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert len(set(re.findall(r"SLURM jobid (\d+)", log))) == 3  # 1 + retries: 2
    assert "logs/evaluate/embedded/hgpo/alfworld/tiny-qwen2-alfworld/hgpo/seed0.log" in log
    assert not target.exists()  # nothing half-written is left as if complete
