"""The ``generalized_ure`` learner end to end through the classic family (train -> evaluate), its
parameters, its snapshot-averaged predictions, and the ``macro_auc_ovr`` metric."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from repro.tracking import NullTracker
from repro import plugins, registry
from repro.classic.data import load_dataset
from repro.classic.family import Fitted, TrainConfig
from repro.config import ConfigError, check_dataclass
from repro.models.architecture import build_architecture
from repro.studies.nrpr.data import generate_digits
from repro.studies.nrpr.learner import UREParams

plugins.load_all()



@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("nrpr")
    generate_digits(root / "data", {"seed": 0})
    build_architecture(root / "linear", {"kind": "linear"})
    build_architecture(root / "mlp", {"kind": "mlp", "hidden": [16]})
    return root


def _run(method_params, **train):
    return {"impl": "generalized_ure", "method": "m", "seed": 0, "params": method_params,
            "train": {"epochs": 60, "batch_size": 100000, "lr": 0.03, **train},
            "evaluate": {"splits": ["test"], "metrics": ["accuracy", "macro_f1", "macro_auc_ovr"]}}


def _train_eval(root, run, model="linear", name="ckpt"):
    family = registry.FAMILIES.get("classic")
    family.train(run, dataset_dir=root / "data", model_dir=root / model, out_dir=root / name,
                 log_csv=root / f"{name}.csv", work_dir=root / "work", tracker=NullTracker())
    res = family.evaluate(run, dataset_dir=root / "data", checkpoint_dir=root / name)
    return res["splits"]["test"]["metrics"], pd.read_csv(root / f"{name}.csv"), root / name


def test_nrpr_end_to_end(digits):
    m, log, ckpt = _train_eval(digits, _run({"penalty_lambda": 1.2, "prior": "true"}))
    assert m["accuracy"] > 0.8 and m["macro_f1"] > 0.8 and m["macro_auc_ovr"] > 0.95
    assert list(log.epoch) == list(range(1, 61))
    for col in ("train/objective", "train/ure", "train/risk_term", "train/negative_risk_frac", "train/penalty"):
        assert col in log and log[col].notna().all()
    # the penalty is paid exactly on the epochs whose (full) batch had r < 0
    neg = log["train/negative_risk_frac"] > 0
    assert ((log["train/risk_term"] < 0) == neg).all()
    assert np.allclose(log.loc[neg, "train/penalty"], -1.2 * log.loc[neg, "train/risk_term"], rtol=1e-5)
    assert (log.loc[~neg, "train/penalty"] == 0).all()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    meta = load_dataset(digits / "data").meta
    assert state["info"]["theta"] == pytest.approx(meta["theta_true"])
    with np.load(ckpt / "fitted.npz") as z:
        assert z["W0"].shape == (10, 6, 64) and z["b0"].shape == (10, 6)  # last 10 epochs kept
        assert not np.allclose(z["W0"][0], z["W0"][-1])  # the weights moved between snapshots


def test_penalty_changes_the_fit_and_the_prior_source_is_read(digits):
    _, log_plain, _ = _train_eval(digits, _run({"prior": "km1"}), name="plain")
    _, log_pen, ckpt = _train_eval(digits, _run({"prior": "km1", "penalty_lambda": 1.2}), name="pen")
    # identical until the first negative-risk epoch, different after
    first = int(log_plain.epoch[log_plain["train/risk_term"] < 0].min())
    same = log_plain.epoch < first
    assert np.allclose(log_plain.loc[same, "train/objective"], log_pen.loc[same, "train/objective"])
    assert log_pen["train/risk_term"].iloc[-1] > log_plain["train/risk_term"].iloc[-1]
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["info"]["theta"] == pytest.approx(load_dataset(digits / "data").meta["theta_km1"])


def test_minibatches_mlp_and_ovr_loss(digits):
    m, log, ckpt = _train_eval(digits, _run({"loss": "ovr_logistic", "prior": "given", "theta": 0.5,
                                             "average_last": 3}, epochs=4, batch_size=100), model="mlp")
    assert 0 <= log["train/negative_risk_frac"].min() and log["train/negative_risk_frac"].max() <= 1
    with np.load(ckpt / "fitted.npz") as z:
        assert z["W0"].shape == (3, 16, 64) and z["W1"].shape == (3, 6, 16)
    assert m["accuracy"] > 0.3


def test_predict_averages_the_snapshots_probabilities():
    learner = registry.LEARNERS.get("generalized_ure")
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3))
    x = rng.normal(size=(5, 4))
    scores, labels = learner.predict(Fitted({"W0": w, "b0": b}), x, {"kind": "linear"}, UREParams())
    soft = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)  # noqa: E731
    expected = (soft(x @ w[0].T + b[0]) + soft(x @ w[1].T + b[1])) / 2
    # labels are the argmax of the learner's own scores (an argmax of numbers computed another way
    # could break a near-tie the other way under other CPU kernels)
    assert np.allclose(scores, expected) and np.array_equal(labels, scores.argmax(1))


@pytest.mark.parametrize(("values", "match"), [
    ({"loss": "hinge"}, "loss: 'hinge' unknown"),
    ({"q": 0.0}, "q: 0.0"),
    ({"penalty_lambda": -1.0}, "penalty_lambda"),
    ({"prior": "estimated"}, "prior"),
    ({"average_last": 0}, "average_last"),
])
def test_bad_params_are_named(values, match):
    with pytest.raises(ConfigError, match=match):
        check_dataclass(UREParams, values, "methods.x.params")


def test_bad_architecture_is_named(digits):
    learner = registry.LEARNERS.get("generalized_ure")
    with pytest.raises(ValueError, match="kind 'resnet18': allowed linear, mlp"):
        learner.fit(load_dataset(digits / "data"), {"kind": "resnet18"}, UREParams(), TrainConfig(epochs=1), 0,
                    lambda row: None)


def test_macro_auc_ovr_matches_sklearn_on_one_hot_labels():
    """The authors' evaluation: roc_auc_score(one_hot(y), probs, multi_class='ovo') on an indicator
    matrix = macro one-vs-rest AUC."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    scores = rng.random((200, 4)) + 0.8 * np.eye(4)[y]
    scores[:20, 0] = 0.5  # ties
    ours = registry.METRICS.get("macro_auc_ovr")(y, scores, scores.argmax(1))
    assert ours == pytest.approx(roc_auc_score(np.eye(4)[y], scores, multi_class="ovo"))
    assert ours == pytest.approx(np.mean([roc_auc_score(y == k, scores[:, k]) for k in range(4)]))
