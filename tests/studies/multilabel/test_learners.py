"""Binary relevance and the shared feature maps: gradient check, separable-data sanity, the
whitened kernel fit reaching the plain kernel optimum, and a run through the classic family."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro.tracking import NullTracker
from repro import plugins, registry
from repro.classic.data import ArrayDataset
from repro.models.architecture import build_architecture
from repro.studies.multilabel.data import generate_embedded
from repro.studies.multilabel.features import check_arch, design, fit_design, mean_distance, rbf
from repro.studies.multilabel.learners import BinaryRelevance, BRParams, br_objective

plugins.load_all()



def _toy(n=120, d=5, q=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (X[:, :q] > 0).astype(np.int8)  # label j = sign of feature j: separable, independent labels
    return ArrayDataset({"X_train": X, "Y_train": Y, "X_test": X, "Y_test": Y}, {"task": "multilabel"}, None)


def test_rbf_and_mean_distance_by_hand():
    A = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert mean_distance(A) == pytest.approx(5.0)
    K = rbf(A, A, sigma=5.0)
    assert K[0, 1] == pytest.approx(np.exp(-25 / 50)) and np.allclose(np.diag(K), 1.0)


def test_check_arch_names_the_problem():
    with pytest.raises(ValueError, match="kind 'mlp' not supported"):
        check_arch({"kind": "mlp"})
    with pytest.raises(ValueError, match="unknown key\\(s\\) \\['hidden'\\]"):
        check_arch({"kind": "linear", "hidden": [3]})


def test_br_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    Phi, T = rng.normal(size=(20, 4)), np.sign(rng.normal(size=(20, 3)))
    R = np.eye(4) + 0.1
    W = rng.normal(size=(4, 3))
    f, g = br_objective(W, Phi, R, T, 0.3)
    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = 1e-6
        num[idx] = (br_objective(W + E, Phi, R, T, 0.3)[0] - br_objective(W - E, Phi, R, T, 0.3)[0]) / 2e-6
    assert np.allclose(g, num, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "rbf"])
def test_br_fits_separable_labels(kind):
    data = _toy()
    br = BinaryRelevance()
    fitted = br.fit(data, {"kind": kind}, BRParams(lam=1e-4), None, 0, lambda row: None)
    scores, labels = br.predict(fitted, data.arrays["X_test"], {"kind": kind}, BRParams())
    assert scores.shape == labels.shape == (120, 3)
    assert np.mean(labels == data.arrays["Y_test"]) > 0.95


def test_whitened_kernel_fit_reaches_the_kernel_optimum():
    """The rbf BR solves in whitened coordinates; its A must be stationary for the original
    objective in the dual coefficients (gradient K (.) + lam K A = 0, i.e. zero in K's range)."""
    data = _toy(n=60)
    fitted = BinaryRelevance().fit(data, {"kind": "rbf"}, BRParams(lam=0.05, max_iter=2000), None, 0, lambda r: None)
    K, R, _ = fit_design(data.arrays["X_train"], {"kind": "rbf"})
    _, g = br_objective(fitted.arrays["W"], K, R, 2.0 * data.arrays["Y_train"] - 1, 0.05)
    assert np.abs(g).max() < 1e-4


def test_br_through_the_family(tmp_path):
    generate_embedded(tmp_path / "data", {"n_train": 80, "n_test": 60})
    build_architecture(tmp_path / "model", {"kind": "linear"})
    family = registry.FAMILIES.get("classic")
    metrics = ["hamming_loss", "average_precision", "macro_f1"]
    run = {"train": {"cv_folds": 3, "cv_grid": {"lam": [0.01, 1.0]}, "cv_metric": "average_precision"},
           "impl": "binary_relevance", "params": {}, "seed": 0, "method": "br",
           "evaluate": {"splits": ["test"], "metrics": metrics}}
    family.train(run, dataset_dir=tmp_path / "data", model_dir=tmp_path / "model", out_dir=tmp_path / "ckpt",
                 log_csv=tmp_path / "log.csv", work_dir=tmp_path / "w", tracker=NullTracker())
    state = json.loads((tmp_path / "ckpt" / "trainer_state.json").read_text())
    assert len(state["cv"]) == 2 and state["params"]["lam"] in (0.01, 1.0)
    res = family.evaluate(run, dataset_dir=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")
    m = res["splits"]["test"]["metrics"]
    assert set(m) == set(metrics) and 0 <= m["hamming_loss"] < 0.3 and m["average_precision"] > 0.5
    # the checkpoint alone reproduces the scores
    with np.load(tmp_path / "ckpt" / "fitted.npz") as z:
        arrays = {k: z[k] for k in z.files}
    from repro.classic.data import load_dataset
    x = load_dataset(tmp_path / "data").split("test")[0]
    assert design(arrays, x, {"kind": "linear"}).shape == (60, x.shape[1] + 1)
