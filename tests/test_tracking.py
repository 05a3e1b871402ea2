"""MLflow tracking against a real sqlite store; a broken store never stops the caller."""

from __future__ import annotations

import json
import logging

import mlflow
import pytest

from repro.tracking import SPOOL_ID_TAG, Tracker, init_store, replay_spool, tracking_uri


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


def _record(tracker: Tracker, fail: bool = False) -> None:
    """The calls a training makes, the same for live and spooled runs."""
    with tracker as tr:
        tr.set_tags({"provenance": "{}"})
        tr.log_metrics({"rollout/success_rate": 0.25, "train/kl": 0.01}, step=1)
        tr.log_history([{"epoch": 2, "rollout/success_rate": 0.5, "train/kl": float("nan")},
                        {"epoch": 3, "rollout/success_rate": 0.75}], step_key="epoch")
        if fail:
            raise RuntimeError("diverged")


def _runs(uri: str, experiment: str) -> list:
    client = mlflow.tracking.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def _content(uri: str, run) -> tuple:
    client = mlflow.tracking.MlflowClient(uri)
    hist = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
            for k in ("rollout/success_rate", "train/kl")}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") and k != SPOOL_ID_TAG}
    return run.info.run_name, run.info.status, run.data.params, tags, hist


def test_spooled_run_replays_as_the_live_run_would_have_logged_it_and_only_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    init_store(uri)
    params = {"study": "nrpr", "train": {"lr": 0.03}}
    spool = tmp_path / "run" / "mlflow_run.json"
    spool.parent.mkdir()
    _record(Tracker("live", "digits/lin/nrpr/seed0", params=params, tags={"scale": "embedded"}, uri=uri))
    _record(Tracker("spooled", "digits/lin/nrpr/seed0", params=params, tags={"scale": "embedded"}, uri=uri,
                    spool=spool))
    assert not _runs(uri, "live")[0].data.tags.get(SPOOL_ID_TAG)
    assert mlflow.tracking.MlflowClient(uri).get_experiment_by_name("spooled") is None  # nothing sent yet
    rec = json.loads(spool.read_text())
    assert rec["status"] == "FINISHED" and rec["params"]["train.lr"] == "0.03" and rec["end_ms"] >= rec["start_ms"]
    assert replay_spool(uri, spool) is True
    assert replay_spool(uri, spool) is False  # summarize reruns: no duplicate run
    (live,), (replayed,) = _runs(uri, "live"), _runs(uri, "spooled")
    assert _content(uri, replayed) == _content(uri, live)
    assert _content(uri, replayed)[4]["rollout/success_rate"] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    assert replayed.data.tags[SPOOL_ID_TAG] == rec["spool_id"]
    assert replayed.info.start_time == rec["start_ms"] and replayed.info.end_time == rec["end_ms"]


def test_failed_spooled_run_is_written_and_replays_as_failed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spool = tmp_path / "mlflow_run.json"
    with pytest.raises(RuntimeError, match="diverged"):
        _record(Tracker("s", "b/m/x/seed0", params={}, tags={}, uri=uri, spool=spool), fail=True)
    assert json.loads(spool.read_text())["status"] == "FAILED"
    replay_spool(uri, spool)
    assert _runs(uri, "s")[0].info.status == "FAILED"


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


def test_spooled_run_never_imports_mlflow(tmp_path):
    """The point of deferring: a spooled training process pays no MLflow import."""
    import subprocess
    import sys

    code = ("import sys; from repro.tracking import Tracker\n"
            f"with Tracker('s', 'r', params={{'a': 1}}, tags={{}}, spool={str(tmp_path / 'm.json')!r}) as t:\n"
            "    t.log_metrics({'x': 1.0}, step=1); t.set_tags({'k': 'v'})\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert json.loads((tmp_path / "m.json").read_text())["metrics"][0][:2] == ["x", 1.0]


def test_evaluated_metrics_reach_the_run_spooled_or_live(tmp_path, monkeypatch):
    """A run's MLflow record holds its final evaluation as ``<split>/<metric>``: sent with the
    spooled run by replay (and added to an already replayed one), or added to the live run."""
    from repro.tracking import eval_metrics, log_evaluation

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    init_store(uri)
    evaluation = {"checkpoint_iteration": 3,
                  "splits": {"test": {"metrics": {"accuracy": 0.9, "macro_f1": 0.8}, "n": 500},
                             "valid_seen": {"success_rate": 0.5, "per_task_type": {"a": 1.0}, "temperature": 0.4}}}
    assert eval_metrics(evaluation) == {"test/accuracy": 0.9, "test/macro_f1": 0.8, "test/n": 500.0,
                                        "valid_seen/success_rate": 0.5, "valid_seen/temperature": 0.4}
    spool = tmp_path / "mlflow_run.json"
    _record(Tracker("spooled", "d/m/x/seed0", params={}, tags={}, uri=uri, spool=spool))
    assert replay_spool(uri, spool) is True  # first replay: without the evaluation
    assert replay_spool(uri, spool, evaluation) is False  # already there: only the evaluation is added
    (run,) = _runs(uri, "spooled")
    assert run.data.metrics["test/accuracy"] == 0.9 and run.data.metrics["valid_seen/success_rate"] == 0.5
    client = mlflow.tracking.MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test/accuracy")] == [3]
    _record(Tracker("live", "d/m/x/seed0", params={}, tags={}, uri=uri))
    assert log_evaluation(uri, "live", "d/m/x/seed0", evaluation) == 5
    assert log_evaluation(uri, "live", "d/m/x/seed0", evaluation) == 0  # a rerun sends nothing twice
    assert _runs(uri, "live")[0].data.metrics["test/macro_f1"] == 0.8
    assert log_evaluation(uri, "live", "no/such/run/seed0", evaluation) == 0
