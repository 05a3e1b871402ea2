"""The ``classic`` trainer family: learners that fit arrays (weakly supervised and multi-label studies).

A study with ``family: classic`` names a registered learner per method (``methods.<m>.impl``);
its datasets are array datasets (``repro.classic.data``) and its base "model" is an architecture
spec (``repro.models.architecture``). ``train`` fits the learner, optionally choosing its
hyper-parameters by k-fold cross-validation on the train split first, and writes the fitted arrays;
``evaluate`` scores every configured split with the configured ``METRICS``. Nothing here names a
study: the learners, datasets, metrics and figures of each study register themselves.

Runs are short (seconds to a minute), so there is no mid-run resume: a rerun starts over.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import numpy as np

from repro import io as rio
from repro import registry
from repro.classic import metrics as _metrics  # noqa: F401  (the shared metrics every study names)
from repro.classic.data import ArrayDataset, load_dataset
from repro.config import check_dataclass
from repro.families import RegistryFamily

log = logging.getLogger(__name__)

CHECKPOINT_ARRAYS = "fitted.npz"
STATE_FILE = "trainer_state.json"
CV_SPLIT = "cvval"  # the held-out fold's split name while cross-validating


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by the classic learners (each reads what it uses; closed-form
    learners read none of the gradient settings)."""

    epochs: int = 0
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    optimizer: Literal["adam", "sgd"] = "adam"
    # k-fold cross-validation on the train split over `cv_grid` (param -> candidate values),
    # scored by the registered metric `cv_metric`; the best candidate is refitted on all of train
    cv_folds: int = 0
    cv_grid: dict = field(default_factory=dict)
    cv_metric: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("need epochs >= 0, batch_size >= 1, lr > 0, weight_decay >= 0")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ValueError(f"cv_folds: {self.cv_folds} (0 = no cross-validation, else >= 2)")
        if bool(self.cv_folds) != bool(self.cv_grid):
            raise ValueError("cv_folds and cv_grid go together (both set, or neither)")
        if self.cv_folds and self.cv_metric not in registry.METRICS:
            raise ValueError(f"cv_metric: {self.cv_metric!r} is not a registered metric; allowed: "
                             f"{', '.join(registry.METRICS.names())}")
        for k, v in self.cv_grid.items():
            if not isinstance(v, list) or not v:
                raise ValueError(f"cv_grid.{k}: a non-empty list of candidate values, got {v!r}")


@dataclass(frozen=True)
class EvalConfig:
    splits: list[str] = field(default_factory=lambda: ["test"])
    metrics: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.splits or not self.metrics:
            raise ValueError("evaluate needs at least one split and one metric")
        bad = [m for m in self.metrics if m not in registry.METRICS]
        if bad:
            raise ValueError(f"metrics: {bad} not registered; allowed: {', '.join(registry.METRICS.names())}")


@dataclass
class Fitted:
    """What a learner's ``fit`` returns: arrays to save (float/int numpy) and JSON-able info."""

    arrays: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


class Learner(Protocol):
    """A registered method of a classic study (``registry.LEARNERS``)."""

    Params: type  # frozen dataclass of the method's hyper-parameters (``methods.<m>.params``)

    def fit(self, data: ArrayDataset, arch: dict[str, Any], params: Any, cfg: TrainConfig, seed: int,
            log_row: Callable[[dict[str, float]], None]) -> Fitted:
        """Fit on ``data``'s train split (and any study arrays); ``log_row`` takes one row per epoch."""

    def predict(self, fitted: Fitted, X: np.ndarray, arch: dict[str, Any], params: Any
                ) -> tuple[np.ndarray, np.ndarray]:
        """(scores float[n, q], predicted labels: int[n] or {0,1}[n, q]) for inputs ``X`` [n, d]."""


def cv_subsets(data: ArrayDataset, folds: int, seed: int) -> list[ArrayDataset]:
    """``folds`` datasets whose train split is k-1 folds and whose ``cvval`` split is the held-out fold.

    Every array named ``*_train`` with one row per training example (candidate sets, flags) is cut
    the same way; everything else is carried unchanged.
    """
    X, _ = data.split("train")
    n = len(X)
    if n < folds:
        raise ValueError(f"{folds}-fold cross-validation needs >= {folds} training examples, have {n}")
    parts = np.array_split(np.random.default_rng([seed, 7919]).permutation(n), folds)
    out = []
    for k in range(folds):
        va = parts[k]
        tr = np.concatenate([p for j, p in enumerate(parts) if j != k])
        arrays = {key: v for key, v in data.arrays.items() if not key.endswith("_train")}
        for key, v in data.arrays.items():
            if key.endswith("_train") and len(v) == n:
                arrays[key] = v[tr]
                arrays[key[: -len("train")] + CV_SPLIT] = v[va]
        out.append(ArrayDataset(arrays, data.meta, data.folder))
    return out


def score_split(learner: Learner, fitted: Fitted, data: ArrayDataset, split: str, arch: dict, params: Any,
                metrics: list[str]) -> dict[str, float]:
    X, Y = data.split(split)
    scores, labels = learner.predict(fitted, X, arch, params)
    return {m: registry.METRICS.get(m)(Y, scores, labels) for m in metrics}


class Classic(RegistryFamily):
    """Trainer family ``classic`` (``registry.FAMILIES``; the protocol is ``repro.families.Family``)."""

    name, train_type, eval_type, methods = "classic", TrainConfig, EvalConfig, registry.LEARNERS
    state_key = "learner"

    # --- train -------------------------------------------------------------------------------
    def train(self, run: dict[str, Any], *, dataset_dir: Path, model_dir: Path, out_dir: Path,
              log_csv: Path, work_dir: Path, tracker) -> None:
        import pandas as pd

        cfg = self.train_config(run["train"], "train")
        learner: Learner = registry.LEARNERS.get(run["impl"])
        params = self.method_params(run, run["params"], "params")
        seed = int(run["seed"])
        data = load_dataset(dataset_dir)
        arch = rio.read_json(Path(model_dir) / "config.json")
        t0 = time.perf_counter()
        cv = self._cross_validate(learner, data, arch, params, cfg, seed) if cfg.cv_folds else []
        if cv:
            best = (max if registry.METRICS.get(cfg.cv_metric).higher_is_better else min)(
                cv, key=lambda c: c["score"])
            params = check_dataclass(type(params), {**asdict(params), **best["params"]}, "params (cross-validated)")
            log.info("cross-validation chose %s (%s %.4f)", best["params"], cfg.cv_metric, best["score"])
        rows: list[dict[str, float]] = []

        def log_row(row: dict[str, float]) -> None:
            rows.append({"epoch": len(rows) + 1, **row})

        log.info("fitting %s (%s) on %d training examples, seed %d", run["method"], run["impl"],
                 len(data.split("train")[0]), seed)
        fitted = learner.fit(data, arch, params, cfg, seed, log_row)
        seconds = round(time.perf_counter() - t0, 2)
        tracker.log_history(rows, "epoch")  # one batch: a fit takes seconds, per-epoch calls ~15 ms each
        with rio.atomic_dir(out_dir) as tmp:
            np.savez(tmp / CHECKPOINT_ARRAYS, **fitted.arrays)
            rio.write_json(tmp / STATE_FILE, {
                "iteration": cfg.epochs, "learner": run["impl"], "params": asdict(params), "arch": arch,
                "info": fitted.info, "cv": cv, "fit_seconds": seconds,
                "base_model": rio.manifest_record(model_dir)})
        rio.write_text(log_csv, pd.DataFrame(rows or [{"epoch": 0}]).to_csv(index=False))
        log.info("fitted in %.1fs -> %s", seconds, out_dir)

    def _cross_validate(self, learner: Learner, data: ArrayDataset, arch: dict, params: Any,
                        cfg: TrainConfig, seed: int) -> list[dict[str, Any]]:
        """Mean ``cv_metric`` on the held-out folds for every grid candidate (in grid order)."""
        keys = sorted(cfg.cv_grid)
        folds = cv_subsets(data, cfg.cv_folds, seed)
        out = []
        for values in itertools.product(*(cfg.cv_grid[k] for k in keys)):
            cand = dict(zip(keys, values))
            p = check_dataclass(type(params), {**asdict(params), **cand}, f"train.cv_grid {cand}")
            scores = [score_split(learner, learner.fit(f, arch, p, cfg, seed, lambda row: None), f, CV_SPLIT,
                                  arch, p, [cfg.cv_metric])[cfg.cv_metric] for f in folds]
            out.append({"params": cand, "score": float(np.mean(scores)), "fold_scores": scores})
            log.info("cv %s: %s = %.4f", cand, cfg.cv_metric, out[-1]["score"])
        return out

    # --- evaluate ----------------------------------------------------------------------------
    def evaluate(self, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
        cfg = self.eval_config(run["evaluate"], "evaluate")
        state, learner, params = self.restored(checkpoint_dir)
        with np.load(Path(checkpoint_dir) / CHECKPOINT_ARRAYS, allow_pickle=False) as z:
            fitted = Fitted({k: z[k] for k in z.files}, state["info"])
        data = load_dataset(dataset_dir)
        splits = {}
        for split in cfg.splits:
            splits[split] = {"metrics": score_split(learner, fitted, data, split, state["arch"], params,
                                                    cfg.metrics),
                             "n": int(len(data.split(split)[0]))}
            log.info("%s %s: %s", run["method"], split,
                     ", ".join(f"{k} {v:.4f}" for k, v in splits[split]["metrics"].items()))
        return {"splits": splits}


registry.FAMILIES.register("classic")(Classic())
