"""All MLflow calls live here (DESIGN.md §7).

Experiment = study; run name = ``<benchmark>/<model>/<method>/seed<seed>``; params = the resolved
run config; metrics ``<phase>/<name>``. The default store is ``sqlite:///<workdir>/mlflow.db``;
``MLFLOW_TRACKING_URI`` wins. Tracking never stops training: the first failure is logged as a
warning and later calls become no-ops (the files in ``results/`` are the record).

Deferred mode (``spool``): a run records params, tags and metrics into a JSON file instead and
``replay_spool`` sends it to MLflow later, in one process for many runs. The embedded scale uses it
(``tracking.deferred``): importing MLflow and opening its store cost ~2 s per job, more than
most classic runs themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def tracking_uri(configured: str | None = None, workdir: str | Path = ".") -> str:
    """The URI in force: the environment, else the config, else an absolute sqlite path."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    return f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


def init_store(uri: str) -> None:
    """Create the tables of a sqlite store once, before jobs fan out.

    Several processes opening a fresh sqlite store at once race while creating the tables and
    crash (infrastructure.md); creating a throw-away experiment lookup here initialises it.
    """
    import mlflow

    # a client for this URI only: mlflow.set_tracking_uri would also export MLFLOW_TRACKING_URI to
    # the process environment, which then overrides every later explicit URI (tracking_uri)
    mlflow.tracking.MlflowClient(uri).search_experiments(max_results=1)


def experiment_id(uri: str, name: str) -> str:
    """Id of experiment ``name``, created if missing; safe when several jobs create it at once.

    (``mlflow.set_experiment`` is not: the process that loses the creation race returns without
    activating the experiment, and its run lands in "Default"; seen with MLflow 3.17.)
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        exp = client.get_experiment_by_name(name)  # created by a concurrent job meanwhile
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(cwd: str | Path = ".") -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


SPOOL_ID_TAG = "repro.spool_id"
SPOOL_FILE = "mlflow_run.json"  # beside eval.json and train_log.csv in a run folder


def _metric_rows(metrics: dict[str, float], step: int, now: int) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp ms, step) per metric; None and NaN dropped."""
    return [(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None and v == v]


class Tracker:
    """A best-effort MLflow run. Use as a context manager.

    Talks to the store through an ``MlflowClient`` and an explicit run id (no fluent "active
    run"), so a failed store leaves nothing behind that MLflow would retry at interpreter exit.
    After the first failure it stops calling MLflow; ``repro sync-tracking`` later sends what is
    missing from ``train_log.csv``. With ``spool`` set it never imports MLflow: everything goes to
    that JSON file (written atomically when the run ends) for ``replay_spool``.
    """

    def __init__(self, experiment: str, run_name: str, *, params: dict[str, Any],
                 tags: dict[str, str], uri: str | None = None, spool: str | Path | None = None) -> None:
        self.experiment, self.run_name = experiment, run_name
        self.params, self.tags = params, tags
        self.uri = uri or tracking_uri()
        self.spool = Path(spool) if spool else None
        self._client = None
        self._run_id: str | None = None
        self._record: dict[str, Any] | None = None  # the spooled run (deferred mode)
        self._failed = False

    def _guard(self, what: str, fn, *args, **kwargs) -> None:
        if self._failed:
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # tracking must never stop training
            self._failed = True
            log.warning("MLflow %s failed (%s: %s); continuing without tracking, results/ files are "
                        "the record (repro sync-tracking re-sends them)", what, type(exc).__name__, exc)

    def __enter__(self) -> "Tracker":
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 records the run
            return self
        tags = dict(self.tags)
        if os.environ.get("SLURM_JOB_ID"):
            tags["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        params = {k: str(v)[:500] for k, v in _flatten(self.params).items()}
        if self.spool is not None:
            self._record = {"experiment": self.experiment, "run_name": self.run_name, "tags": tags,
                            "params": params, "metrics": [], "start_ms": int(time.time() * 1000)}
            return self

        def start() -> None:
            import mlflow
            from mlflow.entities import Param

            client = mlflow.tracking.MlflowClient(self.uri)
            run = client.create_run(experiment_id(self.uri, self.experiment), run_name=self.run_name,
                                    tags=tags)
            batch = [Param(k, v) for k, v in params.items()]
            for lo in range(0, len(batch), 100):  # MLflow's per-batch limit for params
                client.log_batch(run.info.run_id, params=batch[lo:lo + 100])
            self._client, self._run_id = client, run.info.run_id

        self._guard("start", start)
        return self

    def _send(self, rows: list[tuple[str, float, int, int]]) -> None:
        if self._record is not None:
            self._record["metrics"].extend(rows)
        elif self._client is not None:
            from mlflow.entities import Metric

            batch = [Metric(*row) for row in rows]
            for lo in range(0, len(batch), 1000):  # MLflow's per-batch limit for metrics
                self._guard("log_metrics", self._client.log_batch, self._run_id, metrics=batch[lo:lo + 1000])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._send(_metric_rows(metrics, step, int(time.time() * 1000)))

    def log_history(self, rows: list[dict[str, float]], step_key: str) -> None:
        """Many steps at once (``rows``: one dict per step, its step under ``step_key``), in
        batches of MLflow's limit: one call for a short run instead of a round trip per epoch."""
        now = int(time.time() * 1000)
        self._send([m for row in rows
                    for m in _metric_rows({k: v for k, v in row.items() if k != step_key}, row[step_key], now)])

    def set_tags(self, tags: dict[str, str]) -> None:
        if self._record is not None:
            self._record["tags"].update({k: str(v) for k, v in tags.items()})
        elif self._client is not None:
            from mlflow.entities import RunTag

            self._guard("set_tags", self._client.log_batch, self._run_id,
                        tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        if self._record is not None:
            from repro import io as rio

            rec = {**self._record, "status": status, "end_ms": int(time.time() * 1000)}
            # the id replay deduplicates by: a digest of the run's own content, not a random draw
            rec["spool_id"] = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:32]
            rio.write_json(self.spool, rec)
        elif self._client is not None:
            self._guard("end", self._client.set_terminated, self._run_id, status)


def eval_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """``<split>/<metric>`` -> value for an ``eval.json``: every number of a split's ``metrics`` and
    every number directly under the split (the agentic studies' ``success_rate``, ``score``, ...)."""
    out = {}
    for split, res in evaluation.get("splits", {}).items():
        for k, v in {**res, **res.get("metrics", {})}.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{split}/{k}"] = float(v)
    return out


def _log_missing(client, run_id: str, metrics: dict[str, float], step: int) -> int:
    """Log the ``metrics`` the run does not hold yet (at ``step``); returns how many were sent."""
    from mlflow.entities import Metric

    have = client.get_run(run_id).data.metrics
    now = int(time.time() * 1000)
    rows = [Metric(k, v, now, step) for k, v in metrics.items() if k not in have and v == v]
    for lo in range(0, len(rows), 1000):
        client.log_batch(run_id, metrics=rows[lo:lo + 1000])
    return len(rows)


def replay_spool(uri: str, spool: str | Path, evaluation: dict[str, Any] | None = None) -> bool:
    """Send one spooled run (``Tracker(spool=...)``) to MLflow as it would have been logged live:
    name, tags, params, every metric with its step and time, status, start and end times, then the
    run's ``evaluation`` (its ``eval.json``) as ``<split>/<metric>`` metrics. A run already replayed
    (same ``repro.spool_id`` tag) is not sent again, only given the evaluated metrics it lacks;
    returns whether the run was sent."""
    import mlflow
    from mlflow.entities import Metric, Param

    rec = json.loads(Path(spool).read_text())
    client = mlflow.tracking.MlflowClient(uri)
    eid = experiment_id(uri, rec["experiment"])
    step = int((evaluation or {}).get("checkpoint_iteration") or 0)
    found = client.search_runs([eid], filter_string=f"tags.`{SPOOL_ID_TAG}` = '{rec['spool_id']}'", max_results=1)
    if found:
        if evaluation:
            _log_missing(client, found[0].info.run_id, eval_metrics(evaluation), step)
        return False
    run_id = client.create_run(eid, run_name=rec["run_name"], start_time=rec["start_ms"],
                               tags={**rec["tags"], SPOOL_ID_TAG: rec["spool_id"]}).info.run_id
    params = [Param(k, v) for k, v in rec["params"].items()]
    for lo in range(0, len(params), 100):
        client.log_batch(run_id, params=params[lo:lo + 100])
    metrics = [Metric(*row) for row in rec["metrics"]]
    for lo in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[lo:lo + 1000])
    if evaluation:
        _log_missing(client, run_id, eval_metrics(evaluation), step)
    client.set_terminated(run_id, rec["status"], end_time=rec["end_ms"])
    return True


def log_evaluation(uri: str, experiment: str, run_name: str, evaluation: dict[str, Any]) -> int:
    """Add an ``eval.json``'s metrics (``<split>/<metric>``, at the checkpoint's iteration) to the
    newest MLflow run named ``run_name`` (the training's, logged live); best effort: a store that
    fails is logged as a warning and 0 returned (``eval.json`` is the record)."""
    try:
        import mlflow

        client = mlflow.tracking.MlflowClient(uri)
        runs = client.search_runs([experiment_id(uri, experiment)],
                                  filter_string=f"attributes.run_name = '{run_name}'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            log.warning("no MLflow run %r in experiment %r to add the evaluation to", run_name, experiment)
            return 0
        return _log_missing(client, runs[0].info.run_id, eval_metrics(evaluation),
                            int(evaluation.get("checkpoint_iteration") or 0))
    except Exception as exc:  # tracking never fails a job
        log.warning("MLflow evaluation logging failed (%s: %s); eval.json is the record", type(exc).__name__, exc)
        return 0


class NullTracker:
    """A tracker that records nothing: for calling a trainer family's ``train`` outside the
    workflow (notebooks, tests), where ``train_log.csv`` is the record."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_history(self, rows: list[dict[str, float]], step_key: str) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass


def sync_run(uri: str, experiment: str, run_name: str, log_csv: str | Path,
             tags: dict[str, str] | None = None) -> int:
    """Send to MLflow the metrics of ``log_csv`` (one row per iteration or epoch, as ``train_log.csv``)
    that run ``run_name`` lacks: after a tracking outage, the results/ files are complete and the
    store is not. Uses the newest run of that name (created if none) and marks it FINISHED.
    Returns the number of metric values sent.
    """
    import math

    import pandas as pd
    from mlflow.entities import Metric

    import mlflow

    client = mlflow.tracking.MlflowClient(uri)
    eid = experiment_id(uri, experiment)
    runs = client.search_runs([eid], filter_string=f"attributes.run_name = '{run_name}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    run_id = runs[0].info.run_id if runs else client.create_run(eid, run_name=run_name,
                                                                  tags=tags or {}).info.run_id
    table = pd.read_csv(log_csv)
    step_key = "iteration" if "iteration" in table else "epoch"  # agentic RL / classic studies
    now = int(time.time() * 1000)
    missing = []
    for key in (c for c in table.columns if c != step_key):
        have = {m.step for m in client.get_metric_history(run_id, key)}
        for step, value in zip(table[step_key], table[key]):
            if not (isinstance(value, float) and math.isnan(value)) and int(step) not in have:
                missing.append(Metric(key, float(value), now, int(step)))
    for lo in range(0, len(missing), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=missing[lo:lo + 1000])
    client.set_terminated(run_id, "FINISHED")
    return len(missing)
