"""The real workflow on a shrunk embedded configuration: the whole chain fetch → model → train →
evaluate → summarize → figures runs through real Snakemake, reruns nothing when complete, reruns only
what is forced, records MLflow runs, and survives a DVC push/pull round trip without reruns."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from smokerun import leaked_secrets, snakemake

from repro.io import sha256_file

pytestmark = pytest.mark.workflow

RUN = "results/embedded/hgpo/alfworld/tiny-qwen2-alfworld/{method}/seed0"
WEBSHOP_RUN = "results/embedded/hgpo/webshop/tiny-qwen2-webshop/{method}/seed0"
EMBEDDED_EVAL_TEMPERATURE = yaml.safe_load((Path(__file__).parents[2] / "config/studies/hgpo.yaml").read_text())[
    "scales"]["embedded"]["evaluate"]["temperature"]


def test_outputs_are_complete(smoke):
    for method in ("warmstart", "hgpo"):
        ev = json.loads((smoke / RUN.format(method=method) / "eval.json").read_text())
        assert ev["method"] == method and ev["scale"] == "embedded"
        for split in ("valid_seen", "valid_unseen"):
            res = ev["splits"][split]
            assert res["episodes"] == 6 and 0.0 <= res["success_rate"] <= 1.0
            assert res["per_task_type"]
            assert res["temperature"] == EMBEDDED_EVAL_TEMPERATURE
        assert ev["provenance"]["versions"]["alfworld"] == "0.4.2"
        assert ev["provenance"]["dataset"]["manifest_sha256"]
        # the base model the checkpoint was trained from (its MANIFEST.json digest)
        base = smoke / "resources/models/tiny-qwen2-alfworld/MANIFEST.json"
        assert ev["provenance"]["model"]["manifest_sha256"] == sha256_file(base)
        # the workflow's CPU pins were in force in the training and in the evaluation
        for cpu in (ev["provenance"]["cpu"], ev["provenance"]["train"]["cpu"]):
            assert cpu["torch"]["capability"] == "AVX2" and cpu["env"]["MKL_CBWR"] == "AVX2", cpu
    assert json.loads((smoke / RUN.format(method="hgpo") / "eval.json").read_text())["checkpoint_iteration"] == 2
    log = pd.read_csv(smoke / RUN.format(method="hgpo") / "train_log.csv")
    assert list(log.iteration) == [0, 1, 2]
    assert log["eval/val/success_rate"].notna().all()
    summary = pd.read_csv(smoke / "results/embedded/hgpo/summary.csv")
    assert set(summary.method) == {"warmstart", "hgpo"}
    assert set(summary.temperature) == {EMBEDDED_EVAL_TEMPERATURE}
    frac = log.loc[log.iteration >= 1, "context/inconsistent_group_frac"]  # HGPO's motivation, measured
    assert frac.notna().all() and ((0 <= frac) & (frac <= 1)).all()
    context = pd.read_csv(smoke / "paper_figures/embedded/hgpo/context_inconsistency.csv")
    assert sorted(zip(context.benchmark, context.iteration)) == [("alfworld", 1), ("alfworld", 2),
                                                                 ("webshop", 1), ("webshop", 2)]
    ws = json.loads((smoke / WEBSHOP_RUN.format(method="hgpo") / "eval.json").read_text())["splits"]["test"]
    assert 0.0 <= ws["success_rate"] <= 1.0 and 0.0 <= ws["score"] <= 100.0 and ws["episodes"] > 0
    table = pd.read_csv(smoke / "paper_figures/embedded/hgpo/main_table.csv").set_index("method")
    # "56.3" (one seed: a number, no spread) or "56.3 ± 1.2"
    assert float(str(table.loc["hgpo", "WebShop score reproduced"]).split(" ±")[0]) == round(ws["score"], 1)
    for fig in ("main_table", "eval_curve", "task_types", "context_inconsistency"):
        for ext in ("csv", "md", "png"):
            assert (smoke / f"paper_figures/embedded/hgpo/{fig}.{ext}").stat().st_size > 0
    assert "scale: embedded" in (smoke / "paper_figures/embedded/hgpo/main_table.md").read_text()
    assert not list(smoke.rglob("_resume"))  # intermediate checkpoints are cleaned up


def test_no_log_or_output_contains_the_credentials_in_the_environment(smoke):
    """Hub tokens and remote keys come only from the environment (the run had planted values set);
    none reaches a log, a result, the MLflow store or Snakemake's metadata."""
    assert leaked_secrets(smoke) == []


def test_rerun_does_nothing_and_forcerun_evaluate_reruns_only_evaluation(root, smoke):
    assert "Nothing to be done" in snakemake(root, smoke, "-n").stdout
    out = snakemake(root, smoke, "-n", "--forcerun", "evaluate").stdout
    assert "evaluate" in out and "\ntrain " not in out and "get_model" not in out


def test_summarize_refuses_mixed_provenance_unless_configured(root, smoke, tmp_path):
    """An eval.json from another alfworld version: the summarize job fails naming the difference
    (log path shown); `--config allow_mixed_provenance=True` summarizes it, logging the difference."""
    wd = tmp_path / "wd"
    shutil.copytree(smoke, wd, symlinks=True)  # copy2 keeps mtimes: only what depends on the edit reruns
    ev_path = wd / RUN.format(method="hgpo") / "eval.json"
    ev = json.loads(ev_path.read_text())
    ev["provenance"]["versions"]["alfworld"] = "0.3.5"
    ev_path.write_text(json.dumps(ev))
    log = wd / "logs/summarize/embedded/hgpo.log"
    failed = snakemake(root, wd, "--cores", "1", check=False)
    assert failed.returncode != 0 and "logs/summarize/embedded/hgpo.log" in failed.stderr
    assert "alfworld versions differ: 0.3.5 in 1 run(s)" in log.read_text()
    assert "\ntrain " not in failed.stdout and "evaluate" not in failed.stdout  # nothing upstream reran
    snakemake(root, wd, "--cores", "1", "--config", "allow_mixed_provenance=True")
    assert "mixed provenance allowed: alfworld versions differ" in log.read_text()
    assert set(pd.read_csv(wd / "results/embedded/hgpo/summary.csv").method) == {"warmstart", "hgpo"}


def test_mlflow_recorded_the_training_runs(smoke):
    client = mlflow.tracking.MlflowClient(f"sqlite:///{smoke / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hgpo")
    runs = client.search_runs([exp.experiment_id])
    names = {r.info.run_name for r in runs}
    assert names == {f"{b}/tiny-qwen2-{b}/{m}/seed0" for b in ("alfworld", "webshop") for m in ("warmstart", "hgpo")}
    # deferred tracking (config.yaml): summarize sent the spooled runs, once, though it reran
    assert len(runs) == len(names) and all(r.data.tags.get("repro.spool_id") for r in runs)
    hgpo = next(r for r in runs if r.info.run_name == "alfworld/tiny-qwen2-alfworld/hgpo/seed0")
    assert hgpo.data.params["method"] == "hgpo" and hgpo.data.tags["scale"] == "embedded"
    assert [m.step for m in client.get_metric_history(hgpo.info.run_id, "rollout/success_rate")] == [1, 2]


def test_dvc_push_pull_round_trip_then_nothing_reruns(root, smoke, tmp_path):
    """`dvc push`, wipe, `dvc pull`, `snakemake --touch`: the same results, and no job reruns."""
    for name in ("Snakefile", "dvc.yaml"):
        shutil.copy(root / name, smoke / name)
    shutil.copytree(root / "workflow", smoke / "workflow", dirs_exist_ok=True)
    shutil.copytree(root / "src" / "repro", smoke / "src" / "repro", dirs_exist_ok=True)

    def run(*cmd: str) -> str:
        if cmd[0] == "dvc":
            cmd = (sys.executable, "-m", "dvc", *cmd[1:])
        p = subprocess.run(cmd, cwd=smoke, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}"
        return p.stdout

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "config", "core.analytics", "false")
    run("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    run("dvc", "commit", "-f", "reproduce")
    run("dvc", "push")
    before = {p.relative_to(smoke): p.read_bytes() for p in (smoke / "results").rglob("*.json")}
    shutil.rmtree(smoke / "results")
    shutil.rmtree(smoke / "resources")
    shutil.rmtree(smoke / ".dvc" / "cache")
    run("dvc", "pull")
    after = {p.relative_to(smoke): p.read_bytes() for p in (smoke / "results").rglob("*.json")}
    assert after == before and after
    # restored files carry new mtimes, and Snakemake 9 compares directory inputs by mtime whatever
    # the rerun triggers: `--touch` marks the pulled outputs up to date in DAG order, running nothing
    touched = snakemake(root, smoke, "--touch", "--cores", "1")
    assert "repro " not in touched.stdout  # no rule command ran
    assert "Nothing to be done" in snakemake(root, smoke, "-n").stdout


def test_job_times_report_reads_the_runs_benchmarks(root, smoke):
    """scripts/job_times.py (the README's time breakdown) on the smoke run's real benchmark files."""
    proc = subprocess.run([sys.executable, str(root / "scripts/job_times.py"), str(smoke)],
                          capture_output=True, text=True, check=True)
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| rule")}
    assert ("train", "hgpo/alfworld") in rows and ("get_model", "tiny-qwen2-webshop") in rows
    n_train = len(list((smoke / "benchmarks/train").rglob("*.tsv")))
    assert f"| {n_train // 2} |" in rows[("train", "hgpo/alfworld")]  # two benchmarks, same methods
    assert "Per study (train + evaluate job time): hgpo " in proc.stdout and "Wall time of the newest run" in proc.stdout
    # the lanes section: every job of the log, the warm starts HGPO shares with GraphGPO and PA-MoE
    # counted in the group that names HGPO
    lanes = subprocess.run([sys.executable, str(root / "scripts/job_times.py"), str(smoke), "--group", "HGPO=hgpo"],
                           capture_output=True, text=True, check=True).stdout.split("## Lanes (")[1]
    hgpo = next(line for line in lanes.splitlines() if line.startswith("| HGPO |"))
    assert int(hgpo.split("|")[2]) > n_train and "graphgpo" not in lanes


def test_interference_bench_times_a_run_job_alone_and_beside_another(root, smoke):
    """scripts/bench_interference.py: Snakemake's own command of a finished run's job, timed alone and
    beside another job, its outputs in a scratch folder (the run's files untouched)."""
    target, neighbour = (RUN.format(method=m) + "/eval.json" for m in ("warmstart", "hgpo"))
    before = sha256_file(smoke / target)
    proc = subprocess.run([sys.executable, str(root / "scripts/bench_interference.py"), str(smoke),
                           "--target", target, "--neighbour", f"ev={neighbour}", "--reps", "1", "--lead", "0.5",
                           "--snakefile", str(root / "Snakefile"), "--profile", str(root / "workflow/profiles/default")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ")][1:]
    assert rows == ["alone", "ev"]
    assert sha256_file(smoke / target) == before
