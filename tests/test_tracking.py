"""MLflow tracking against a real sqlite store; a broken store never stops the caller."""

from __future__ import annotations

import logging

import mlflow

from repro.tracking import Tracker, init_store, tracking_uri


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking_uri("http://server:5000", tmp_path) == "http://server:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking_uri("http://server:5000", tmp_path) == "sqlite:///elsewhere.db"


def test_run_params_and_metrics_are_recorded(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow.set_tracking_uri exports it; restore after
    init_store(uri)
    params = {"study": "hgpo", "train": {"lr": 0.0005, "group_size": 8}}
    with Tracker("hgpo", "alfworld/tiny/gigpo/seed0", params=params, tags={"scale": "embedded"},
                 uri=uri) as tr:
        tr.log_metrics({"rollout/success_rate": 0.25, "train/kl": 0.01}, step=1)
        tr.log_metrics({"rollout/success_rate": 0.5, "train/kl": float("nan")}, step=2)
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("hgpo")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "alfworld/tiny/gigpo/seed0"
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.0005" and run.data.tags["scale"] == "embedded"
    hist = client.get_metric_history(run.info.run_id, "rollout/success_rate")
    assert [(m.step, m.value) for m in hist] == [(1, 0.25), (2, 0.5)]
    assert len(client.get_metric_history(run.info.run_id, "train/kl")) == 1  # NaN dropped


def test_unreachable_server_warns_once_and_does_not_raise(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # restored after the test
    with caplog.at_level(logging.WARNING, logger="repro.tracking"):
        with Tracker("hgpo", "r", params={}, tags={}, uri="http://127.0.0.1:9") as tr:
            for step in range(3):
                tr.log_metrics({"x": 1.0}, step=step)
    warnings = [r for r in caplog.records if "continuing without tracking" in r.message]
    assert len(warnings) == 1


def test_init_tracking_with_server_down_warns_and_writes_marker(tmp_path, monkeypatch, capsys):
    from repro.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    marker = tmp_path / "mlflow_uri.txt"
    assert main(["init-tracking", "--out", str(marker)]) == 0
    assert marker.read_text().strip() == "http://127.0.0.1:9"
    assert "MLflow store http://127.0.0.1:9 not reachable" in capsys.readouterr().err


def _log_one_run(uri: str, name: str, barrier) -> None:
    barrier.wait()  # every process creates "its" experiment at the same moment
    with Tracker("hgpo", name, params={"seed": name}, tags={}, uri=uri) as tr:
        tr.log_metrics({"x": 1.0}, step=1)


def test_concurrent_jobs_on_a_fresh_experiment_lose_no_runs(tmp_path, monkeypatch):
    """Several trainings starting together on the default sqlite store all land in the study's
    experiment (MLflow's set_experiment puts the loser of the creation race into "Default")."""
    import multiprocessing as mp

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    init_store(uri)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_log_one_run, args=(uri, f"run{i}", barrier)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("hgpo")
    names = {r.info.run_name for r in client.search_runs([exp.experiment_id])}
    assert names == {f"run{i}" for i in range(6)}
    assert client.search_runs(["0"]) == []  # nothing fell into "Default"


def test_server_down_mid_run_then_sync_tracking_completes_the_run(tmp_path, monkeypatch, caplog, mlflow_server):
    """A real `mlflow server` stops after the second iteration: the run goes on, warns once and
    its train_log.csv is complete; once the server is back, `repro sync-tracking` sends exactly
    what is missing."""
    import pandas as pd

    from repro.cli import main

    uri = mlflow_server.uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run_dir = tmp_path / "results/embedded/hgpo/alfworld/tiny/grpo/seed0"
    run_dir.mkdir(parents=True)
    rows = [{"iteration": it, "rollout/success_rate": 0.1 * it, "train/kl": 0.01 * it} for it in range(1, 6)]
    mlflow_server.start()
    with caplog.at_level(logging.WARNING, logger="repro.tracking"):
        with Tracker("hgpo", "alfworld/tiny/grpo/seed0", params={"lr": 1e-4}, tags={}, uri=uri) as tr:
            for row in rows:
                if row["iteration"] == 3:
                    mlflow_server.stop()
                tr.log_metrics({k: v for k, v in row.items() if k != "iteration"}, step=row["iteration"])
    assert len([r for r in caplog.records if "continuing without tracking" in r.message]) == 1
    pd.DataFrame(rows).to_csv(run_dir / "train_log.csv", index=False)  # what the trainer keeps
    mlflow_server.start()
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("hgpo").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/kl")] == [1, 2]
    log = tmp_path / "sync.log"
    assert main(["--log", str(log), "sync-tracking", "--results", str(tmp_path / "results")]) == 0
    assert "alfworld/tiny/grpo/seed0: sent 6 metric values" in log.read_text()
    for key in ("rollout/success_rate", "train/kl"):
        hist = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert hist == [(r["iteration"], r[key]) for r in rows]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert main(["--log", str(log), "sync-tracking", "--results", str(tmp_path / "results")]) == 0
    assert "sent 0 metric values" in log.read_text().splitlines()[-2]  # idempotent
