"""The trainer end to end on tiny inputs: parameters change, and a run killed with SIGKILL after a
checkpoint resumes from it and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from repro.config import load, run_config
from repro.rl.family import AgenticRL

SHRINK = {"iterations": 3, "tasks_per_batch": 2, "group_size": 3, "max_steps": 4, "val_every": 2,
          "val_episodes": 2, "checkpoint_every": 1, "mini_batch_rows": 16,
          "micro_batch_rows": 4}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, root, tiny_alfworld):
    base = tmp_path_factory.mktemp("trainer")
    data, model = tiny_alfworld(base, {"train": 6, "valid_seen": 4, "valid_unseen": 4})
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    run = run_config(load(cfg, root), "hgpo", "hgpo")
    run["train"].update(SHRINK)
    run.update(benchmark="alfworld", model="tiny", seed=0)
    return base, data, model, run


def _train(base: Path, data: Path, model: Path, run: dict, name: str, tracking_uri: str | None = None,
           env: dict | None = None, **popen) -> subprocess.Popen:
    out = base / name
    cmd = [sys.executable, "-m", "repro.cli", "--log", str(out / "train.log"), "train",
           "--run-config", json.dumps(run), "--dataset-dir", str(data), "--model-dir", str(model),
           "--out", str(out / "checkpoint"), "--log-csv", str(out / "train_log.csv"),
           "--work-dir", str(out / "_resume"),
           "--tracking-uri", tracking_uri or f"sqlite:///{base / 'mlflow.db'}"]
    env = {**os.environ, "REPRO_TORCH_THREADS": "1", **(env or {})}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]


def _method(root, run: dict, method: str) -> dict:
    """``run`` for another method of the study: its estimator, params and train overrides, shrunk."""
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    other = run_config(load(cfg, root), "hgpo", method)
    own = {k: v for k, v in other["train"].items() if run["train"].get(k) != v and k not in SHRINK}
    return {**run, **{k: other[k] for k in ("method", "impl", "params")},
            "train": {**run["train"], **own, **({"group_size": 1, "tasks_per_batch": 6}
                                                if other["train"]["group_size"] == 1 else {})}}


@pytest.mark.parametrize("method", ["hgpo", "ppo"])
def test_training_changes_parameters_and_resume_matches_uninterrupted(inputs, root, method):
    """PPO too: its critic and critic optimizer are part of the resumable state."""
    base, data, model, run = inputs
    from repro.tracking import init_store

    run = _method(root, run, method)
    base = base / method
    base.mkdir()
    init_store(f"sqlite:///{base / 'mlflow.db'}")
    _finish(_train(base, data, model, run, "full"))
    full = base / "full"
    trained = load_file(full / "checkpoint" / "model.safetensors")
    initial = load_file(model / "model.safetensors")
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)  # learning happened
    assert not (full / "_resume").exists()

    # preemption: SIGKILL as soon as the first resumable checkpoint exists
    proc = _train(base, data, model, run, "killed")
    state = base / "killed" / "_resume" / "state.pt"
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), "no checkpoint was written"
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (base / "killed" / "checkpoint").exists()  # nothing half-written taken as complete
    deadline = time.time() + 30  # env workers of a killed trainer leave on their own
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "orphaned env workers"
    assert not (base / "killed" / "train_log.csv").exists()
    _finish(_train(base, data, model, run, "killed"))
    log = (base / "killed" / "train.log").read_text()
    assert "resuming from checkpoint" in log and "at iteration" in log
    resumed = load_file(base / "killed" / "checkpoint" / "model.safetensors")
    assert all(torch.equal(resumed[k], trained[k]) for k in trained)
    a, b = (pd.read_csv(base / name / "train_log.csv") for name in ("killed", "full"))
    timing = [c for c in a.columns if c.startswith("time/")]
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    trained_rows = b[b.iteration >= 1]
    assert trained_rows["critic/value_loss"].notna().all() == (method == "ppo")
    assert trained_rows["context/inconsistent_group_frac"].notna().all()


def test_training_survives_the_tracking_server_dying_and_sync_completes_it(inputs, mlflow_server):
    """`repro train` logging to a real `mlflow server` that stops once the first iteration has
    arrived: training completes, warns once, train_log.csv is complete; with the server back,
    `repro sync-tracking` makes the MLflow run equal to train_log.csv."""
    import mlflow

    from repro.cli import main

    base, data, model, run = inputs
    name = "results/embedded/hgpo/alfworld/tiny/hgpo/seed0"  # the layout sync-tracking reads
    mlflow_server.start()
    proc = _train(base, data, model, run, name, tracking_uri=mlflow_server.uri,
                  env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})
    client = mlflow.tracking.MlflowClient(mlflow_server.uri)
    deadline, run_id = time.time() + 300, None
    while proc.poll() is None and time.time() < deadline:
        exp = client.get_experiment_by_name("hgpo")
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs and client.get_metric_history(runs[0].info.run_id, "rollout/success_rate"):
            run_id = runs[0].info.run_id
            break
        time.sleep(0.2)
    assert run_id is not None, "the first iteration never reached MLflow"
    mlflow_server.stop()
    _finish(proc)
    out = base / name
    assert (out / "checkpoint" / "model.safetensors").is_file()
    assert (out / "train.log").read_text().count("continuing without tracking") == 1
    table = pd.read_csv(out / "train_log.csv")
    assert list(table.iteration) == list(range(run["train"]["iterations"] + 1))

    mlflow_server.start()
    log = base / "sync.log"
    assert main(["--log", str(log), "sync-tracking", "--results", str(base / "results"),
                 "--tracking-uri", mlflow_server.uri]) == 0
    assert "sent 0 metric values" not in log.read_text()
    for key in (c for c in table.columns if c != "iteration"):
        want = [(int(i), float(v)) for i, v in zip(table.iteration, table[key]) if v == v]
        got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert got == want, key
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_training_under_torchrun_with_two_processes(inputs, parallel):
    """`torchrun --nproc_per_node 2 -m repro.cli train` (gloo, CPU): each rank plays its share of
    the groups, updates stay in sync, rank 0 alone writes the checkpoint, the log and one MLflow run.
    With FSDP the ranks sample from a gathered replica and gather the resumable state together."""
    import mlflow

    base, data, model, run = inputs
    run = {**run, "train": {**run["train"], "parallel": parallel, "checkpoint_every": 1}}
    out = base / parallel
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "repro.cli", "--log-file", str(out / "train.log"), "train", "--run-config", json.dumps(run),
           "--dataset-dir", str(data), "--model-dir", str(model), "--out", str(out / "checkpoint"),
           "--log-csv", str(out / "train_log.csv"), "--work-dir", str(out / "_resume"),
           "--tracking-uri", f"sqlite:///{base / f'{parallel}.db'}"]
    env = {**os.environ, "REPRO_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    log = (out / "train.log").read_text()
    assert "rank 0 of 2 (gloo)" in log and "rank 1 of 2 (gloo)" in log
    assert ("parameters sharded over 2 ranks (FSDP)" in log) == (parallel == "fsdp")
    assert "checkpoint written at iteration 1" in log
    table = pd.read_csv(out / "train_log.csv")
    assert list(table.iteration) == list(range(run["train"]["iterations"] + 1))
    trained = load_file(out / "checkpoint" / "model.safetensors")
    initial = load_file(model / "model.safetensors")
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)
    assert not (out / "_resume").exists()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{base / f'{parallel}.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("hgpo").experiment_id])) == 1


def test_trainer_releases_the_sampler_after_each_rollout_and_syncs_it_after_each_update(inputs, monkeypatch, tmp_path):
    """The calls a vLLM engine relies on: ``release`` once per rollout (before the update) and
    ``sync_weights`` once per update, in that order; validation generates in between."""
    from types import SimpleNamespace

    import repro.rl.trainer as trainer

    _, data, model, run = inputs
    calls: list[str] = []
    real = trainer._backend

    def recording(*args):
        backend = real(*args)
        gen = backend.generate
        backend.generate = lambda *a, **k: (calls.append("generate"), gen(*a, **k))[1]
        backend.release = lambda: calls.append("release")
        backend.sync_weights = lambda: calls.append("sync")
        return backend

    monkeypatch.setattr(trainer, "_backend", recording)
    AgenticRL().train({**run, "train": {**run["train"], "iterations": 2, "val_every": 0}},
                      dataset_dir=data, model_dir=model, out_dir=tmp_path / "ckpt",
                      log_csv=tmp_path / "log.csv", work_dir=tmp_path / "work",
                      tracker=SimpleNamespace(log_metrics=lambda *a, **k: None))
    events = [c for i, c in enumerate(calls) if c != "generate" or i == 0 or calls[i - 1] != "generate"]
    assert events == ["generate", "release", "sync"] * 2
