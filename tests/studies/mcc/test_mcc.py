"""MCC (reconstructed objective, other-papers.md §9.2): k-means, the virtual examples, the closed form
against its normal equations, the lambda1 = lambda2 = 0 reduction to ridge, and runs through the
classic family with the linear and the kernel model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro.tracking import NullTracker
from repro import plugins, registry
from repro.classic.data import ArrayDataset
from repro.config import ConfigError
from repro.models.architecture import build_architecture
from repro.studies.mcc.method import MCC, MCCParams, kmeans, mcc_objective, mcc_solve, virtual_examples
from repro.studies.multilabel.data import generate_embedded

plugins.load_all()



def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 30)
    Z = means[truth] + 0.3 * rng.normal(size=(90, 2))
    C, a = kmeans(Z, 3, np.random.default_rng(5))
    for k in range(3):  # every cluster is pure and its centre is the member mean
        assert len(set(truth[a == k])) == 1
        assert np.allclose(C[k], Z[a == k].mean(0))
    C1, a1 = kmeans(Z[:2], 5, np.random.default_rng(0))  # k capped at n
    assert len(C1) == 2


def test_virtual_examples_by_hand():
    Z = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [9.0, 9.0]])
    Y = np.array([[1, 1], [1, 0], [1, 0], [0, 1]])
    C, Ybar, member, centre = virtual_examples(Z, Y, "per_label", 1, np.random.default_rng(0))
    # label 0: one centre over examples 0-2; label 1: one centre over examples 0 and 3
    assert np.allclose(C, [[2.0, 0.0], [4.5, 4.5]])
    assert np.allclose(Ybar, [[1.0, 2 * (1 / 3) - 1], [2 * 0.5 - 1, 1.0]])
    assert list(member) == [0, 1, 2, 0, 3] and list(centre) == [0, 0, 0, 1, 1]
    Cg, Yg, mg, cg = virtual_examples(Z, Y, "global", 2, np.random.default_rng(0))
    assert len(Cg) == 2 and sorted(mg) == [0, 1, 2, 3]  # one membership per example
    assert np.all(np.abs(Yg) <= 1)


def _system(seed=0, n=40, m=6, r=50, p=5, q=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, p)), np.sign(rng.normal(size=(n, q))), rng.normal(size=(m, p)),
            rng.uniform(-1, 1, size=(m, q)), rng.normal(size=(r, p)))


@pytest.mark.parametrize("pull", [False, True])
@pytest.mark.parametrize("lams", [(1.0, 0.1, 1.0), (10.0, 2.0, 0.01), (0.0, 0.0, 0.5)])
def test_closed_form_solves_the_normal_equations(lams, pull):
    """Both readings of the λ2 term (smoothness: T_D = 0; pull toward the label vector: T_D = ybar)."""
    PX, T, PC, Yb, PD = _system()
    TD = np.random.default_rng(3).uniform(-1, 1, size=(len(PD), T.shape[1])) if pull else np.zeros((len(PD), 3))
    R = np.eye(PX.shape[1])
    l1, l2, l3 = lams
    W = mcc_solve(PX, T, PC, Yb, PD, TD, R, l1, l2, l3)
    # gradient of Eq. R1 / 2 at the solution
    grad = PX.T @ (PX @ W - T) + l1 * PC.T @ (PC @ W - Yb) + l2 * PD.T @ (PD @ W - TD) + l3 * R @ W
    assert np.abs(grad).max() < 1e-9
    f = mcc_objective(W, PX, T, PC, Yb, PD, TD, R, l1, l2, l3)
    rng = np.random.default_rng(1)
    for _ in range(5):  # and it is the minimum
        assert mcc_objective(W + 1e-2 * rng.normal(size=W.shape), PX, T, PC, Yb, PD, TD, R, l1, l2, l3) > f


def test_no_virtual_examples_is_ridge():
    PX, T, PC, Yb, PD = _system(seed=2)
    W = mcc_solve(PX, T, PC, Yb, PD, np.zeros((len(PD), 3)), np.eye(5), 0.0, 0.0, 0.7)
    assert np.allclose(W, np.linalg.solve(PX.T @ PX + 0.7 * np.eye(5), PX.T @ T))


def test_pull_reading_pulls_predictions_toward_the_cluster_label_vectors():
    """With a large λ2, ``pull`` fits the members' predictions to their centres' label vectors as well
    as a linear model can (the least-squares residual), where ``smooth`` only ties them to the
    centres' predictions and leaves a larger residual."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    Y = (X[:, :2] + 0.5 * rng.normal(size=(60, 2)) > 0).astype(np.int8)
    data = ArrayDataset({"X_train": X, "Y_train": Y}, {"task": "multilabel"}, None)
    fits = {r: MCC().fit(data, {"kind": "linear"}, MCCParams(clustering="global", n_clusters=4, lambda1=0.0,
                                                             lambda2=1e6, lambda3=1e-6, regulariser=r),
                         None, 0, lambda row: None) for r in ("smooth", "pull")}
    Z = (X - fits["pull"].arrays["mu"]) / fits["pull"].arrays["sd"]
    _, Ybar, member, centre = virtual_examples(Z, Y, "global", 4, np.random.default_rng([0, 2004]))
    Phi = np.hstack([Z, np.ones((len(Z), 1))])[member]
    best = np.linalg.lstsq(Phi, Ybar[centre], rcond=None)[0]
    rms = {r: np.sqrt(np.mean((MCC().predict(f, X, {"kind": "linear"}, None)[0][member] - Ybar[centre]) ** 2))
           for r, f in fits.items()}
    assert rms["pull"] == pytest.approx(np.sqrt(np.mean((Phi @ best - Ybar[centre]) ** 2)), rel=1e-3)
    assert rms["smooth"] > 1.2 * rms["pull"]


@pytest.mark.parametrize(("arch", "method_params"), [
    ({"kind": "linear"}, {"clustering": "per_label", "n_clusters": 3}),
    ({"kind": "rbf", "width_scale": 1.0}, {"clustering": "global", "n_clusters": 8}),
])
def test_mcc_through_the_family(tmp_path, arch, method_params):
    generate_embedded(tmp_path / "data", {"n_train": 80, "n_test": 60})
    build_architecture(tmp_path / "model", arch)
    family = registry.FAMILIES.get("classic")
    run = {"train": {"cv_folds": 3, "cv_grid": {"lambda1": [0.1, 1.0]}, "cv_metric": "ranking_loss"},
           "impl": "mcc", "params": method_params, "seed": 1, "method": "mcc",
           "evaluate": {"splits": ["test", "train"], "metrics": ["ranking_loss", "micro_f1"]}}
    family.train(run, dataset_dir=tmp_path / "data", model_dir=tmp_path / "model", out_dir=tmp_path / "ckpt",
                 log_csv=tmp_path / "log.csv", work_dir=tmp_path / "w", tracker=NullTracker())
    state = json.loads((tmp_path / "ckpt" / "trainer_state.json").read_text())
    best = min(state["cv"], key=lambda c: c["score"])  # ranking loss: lower is better
    assert state["params"]["lambda1"] == best["params"]["lambda1"]
    assert state["info"]["n_virtual"] > 0
    res = family.evaluate(run, dataset_dir=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")
    assert res["splits"]["test"]["n"] == 60
    assert res["splits"]["train"]["metrics"]["ranking_loss"] < 0.35


def test_params_are_checked():
    family = registry.FAMILIES.get("classic")
    with pytest.raises(ConfigError, match="clustering: 'kmeans' is not of type one of"):
        family.method_params({"impl": "mcc"}, {"clustering": "kmeans"}, "mcc.yaml: methods.mcc.params")
    with pytest.raises(ConfigError, match="lambda3 > 0"):
        family.method_params({"impl": "mcc"}, {"lambda3": 0.0}, "mcc.yaml: methods.mcc.params")
