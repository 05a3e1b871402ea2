"""The ``classic`` trainer family end to end with a real learner (nearest class mean), its dataset
format, cross-validation and config checks."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from repro.tracking import NullTracker
from repro import plugins, registry
from repro.classic.data import load_dataset, write_dataset
from repro.classic.family import Fitted, cv_subsets
from repro.config import ConfigError
from repro.models.architecture import build_architecture

plugins.load_all()


@dataclass(frozen=True)
class ShrinkParams:
    shrink: float = 0.0  # pull every class mean towards the origin by this share


class NearestMean:
    """Nearest class mean: scores = -squared distance to each (shrunk) class mean."""

    Params = ShrinkParams

    def fit(self, data, arch, params, cfg, seed, log_row):
        X, y = data.split("train")
        q = int(data.meta["n_classes"])
        means = np.stack([X[y == k].mean(0) for k in range(q)]) * (1 - params.shrink)
        log_row({"epoch": 1, "n_train": float(len(X))})
        return Fitted({"means": means}, {"classes": q})

    def predict(self, fitted, X, arch, params):
        scores = -((X[:, None, :] - fitted.arrays["means"][None]) ** 2).sum(-1)
        return scores, scores.argmax(1)


if "test_nearest_mean" not in registry.LEARNERS:
    registry.LEARNERS.register("test_nearest_mean")(NearestMean())



def _blobs(rng, n, centre_scale=3.0):
    y = rng.integers(0, 3, n)
    return rng.normal(size=(n, 4)) + centre_scale * np.eye(3, 4)[y], y


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _blobs(rng, 200), _blobs(rng, 100)
    write_dataset(tmp_path / "data", {"X_train": xtr, "Y_train": ytr, "X_test": xte, "Y_test": yte,
                                      "idx_train": np.arange(200)},
                  {"task": "multiclass", "n_classes": 3}, {"source": "test blobs"})
    build_architecture(tmp_path / "model", {"kind": "none"})
    return tmp_path


def _run(**train):
    return {"train": train, "impl": "test_nearest_mean", "params": {}, "seed": 0, "method": "nm",
            "evaluate": {"splits": ["test"], "metrics": ["accuracy", "macro_f1", "micro_f1"]}}


def test_train_then_evaluate(inputs):
    family = registry.FAMILIES.get("classic")
    run = _run()
    family.train(run, dataset_dir=inputs / "data", model_dir=inputs / "model", out_dir=inputs / "ckpt",
                 log_csv=inputs / "log.csv", work_dir=inputs / "work", tracker=NullTracker())
    state = json.loads((inputs / "ckpt/trainer_state.json").read_text())
    assert state["learner"] == "test_nearest_mean" and state["arch"] == {"kind": "none"}
    assert state["base_model"]["manifest_sha256"]
    assert list(pd.read_csv(inputs / "log.csv").n_train) == [200.0]
    res = family.evaluate(run, dataset_dir=inputs / "data", checkpoint_dir=inputs / "ckpt")
    m = res["splits"]["test"]["metrics"]
    assert res["splits"]["test"]["n"] == 100
    assert 0.9 < m["accuracy"] <= 1.0 and m["micro_f1"] == pytest.approx(m["accuracy"])
    # the same numbers by hand from the fitted means
    data = load_dataset(inputs / "data")
    xtr, ytr = data.split("train")
    xte, yte = data.split("test")
    means = np.stack([xtr[ytr == k].mean(0) for k in range(3)])
    pred = np.argmin(((xte[:, None] - means[None]) ** 2).sum(-1), 1)
    assert m["accuracy"] == pytest.approx(np.mean(pred == yte))


def test_cross_validation_picks_the_better_candidate(inputs):
    family = registry.FAMILIES.get("classic")
    run = _run(cv_folds=4, cv_grid={"shrink": [0.95, 0.0]}, cv_metric="accuracy")
    family.train(run, dataset_dir=inputs / "data", model_dir=inputs / "model", out_dir=inputs / "ckpt",
                 log_csv=inputs / "log.csv", work_dir=inputs / "work", tracker=NullTracker())
    state = json.loads((inputs / "ckpt/trainer_state.json").read_text())
    assert [c["params"] for c in state["cv"]] == [{"shrink": 0.95}, {"shrink": 0.0}]
    assert all(len(c["fold_scores"]) == 4 for c in state["cv"])
    best = max(state["cv"], key=lambda c: c["score"])
    assert state["params"]["shrink"] == best["params"]["shrink"]


def test_cv_subsets_cut_every_train_array_alike(inputs):
    data = load_dataset(inputs / "data")
    folds = cv_subsets(data, 3, seed=1)
    seen = np.concatenate([f.arrays["idx_cvval"] for f in folds])
    assert sorted(seen) == list(range(200))  # each example held out exactly once
    for f in folds:
        x, y = f.split("train")
        assert np.array_equal(x, data.arrays["X_train"][f.arrays["idx_train"]])
        assert np.array_equal(f.split("cvval")[1], data.arrays["Y_train"][f.arrays["idx_cvval"]])
        assert np.array_equal(f.split("test")[0], data.arrays["X_test"])


@pytest.mark.parametrize(("train", "match"), [
    ({"cv_folds": 3}, "cv_folds and cv_grid go together"),
    ({"cv_folds": 1, "cv_grid": {"shrink": [0.1]}}, "cv_folds: 1"),
    ({"cv_folds": 3, "cv_grid": {"shrink": [0.1]}, "cv_metric": "acc"}, "cv_metric: 'acc' is not a registered"),
    ({"cv_folds": 3, "cv_grid": {"shrink": []}, "cv_metric": "accuracy"}, "cv_grid.shrink"),
    ({"optimizer": "rmsprop"}, "optimizer"),
])
def test_train_config_errors_name_the_key(train, match):
    with pytest.raises(ConfigError, match=match):
        registry.FAMILIES.get("classic").train_config(train, "config/studies/x.yaml: scales.embedded.train")


def test_method_checks():
    family = registry.FAMILIES.get("classic")
    with pytest.raises(ConfigError, match="methods.a.impl: 'nope' is not a registered learner; allowed: "):
        family.check_method({"impl": "nope"}, "x.yaml: methods.a")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'estimator' \(family classic\); allowed: ablation, impl"):
        family.check_method({"impl": "mcc", "estimator": "grpo"}, "x.yaml: methods.a")
    with pytest.raises(ConfigError, match="unknown key"):
        family.method_params({"impl": "test_nearest_mean"}, {"shrinkage": 1.0}, "x.yaml: methods.a.params")
    with pytest.raises(ConfigError, match="metrics"):
        family.eval_config({"metrics": ["accuracy", "f2"]}, "x.yaml: scales.embedded.evaluate")
    with pytest.raises(ConfigError, match="'test_nearest_mean' is not a registered advantage estimator"):
        registry.FAMILIES.get("agentic_rl").check_method({"impl": "test_nearest_mean"}, "x.yaml: methods.a")


def test_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="meta.task"):
        write_dataset(tmp_path / "d", {"X_train": np.zeros((2, 1)), "Y_train": np.zeros(2)}, {"task": "rank"}, {})
    with pytest.raises(ValueError, match="X_test has no labels"):
        write_dataset(tmp_path / "d", {"X_test": np.zeros((2, 1))}, {"task": "multiclass"}, {})
    assert not (tmp_path / "d").exists()
    with pytest.raises(FileNotFoundError, match="not a classic-study dataset folder"):
        load_dataset(tmp_path)
    write_dataset(tmp_path / "d", {"X_train": np.zeros((2, 1)), "Y_train": np.zeros(2)}, {"task": "multiclass"}, {})
    with pytest.raises(KeyError, match="no split 'test'; splits: train"):
        load_dataset(tmp_path / "d").split("test")


def test_epoch_rows_reach_mlflow_in_one_batch(inputs):
    import mlflow

    from repro.tracking import Tracker

    uri = f"sqlite:///{inputs / 'mlflow.db'}"
    with Tracker("classic-test", "blobs/none/nm/seed0", params={"x": 1}, tags={}, uri=uri) as tracker:
        registry.FAMILIES.get("classic").train(_run(), dataset_dir=inputs / "data", model_dir=inputs / "model",
                                               out_dir=inputs / "ckpt", log_csv=inputs / "log.csv",
                                               work_dir=inputs / "work", tracker=tracker)
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("classic-test").experiment_id])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "n_train")] == [(1, 200.0)]
