"""CAMEL (other-papers.md §10.1): the ADMM lasso against sklearn's Lasso, the alternating closed
forms (each an exact block minimiser, the objective never increasing), the alpha = 0 reduction to
kernel ridge, and runs through the classic family."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro.tracking import NullTracker
from repro import plugins, registry
from repro.classic.data import ArrayDataset
from repro.models.architecture import build_architecture
from repro.studies.camel.method import (
    CAMEL,
    CAMELParams,
    a_operator,
    camel_fit,
    camel_objective,
    collaboration,
    label_correlations,
    lasso_lambdas,
    soft_threshold,
)
from repro.studies.multilabel.data import generate_embedded, generate_latent, EMBEDDED_DEFAULTS
from repro.studies.multilabel.features import fit_design, sign_labels

plugins.load_all()



def _labels(n=300, seed=0):
    return generate_latent({**EMBEDDED_DEFAULTS, "seed": seed, "n_train": n, "n_test": 0})[1].astype(float)


def test_soft_threshold_by_hand():
    assert np.allclose(soft_threshold(np.array([-3.0, -0.5, 0.0, 0.2, 2.0]), 1.0), [-2.0, 0.0, 0.0, 0.0, 1.0])


def test_lambda_rule_by_hand():
    Y = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0.0]])
    # y_0^T Y_{-0} = [2, 1] -> 0.02; y_1^T Y_{-1} = [2, 0] -> 0.02; y_2^T Y_{-2} = [1, 0] -> 0.01
    assert np.allclose(lasso_lambdas(Y, 0.01), [0.02, 0.02, 0.01])


@pytest.mark.parametrize("ratio", [0.01, 0.1])
def test_admm_matches_sklearn_lasso(ratio):
    from sklearn.linear_model import Lasso

    Y = _labels()
    n, q = Y.shape
    S, iters = label_correlations(Y, ratio=ratio, rho=1.0, iters=20000, tol=1e-10)
    assert iters < 20000 and np.allclose(np.diag(S), 0.0)
    lam = lasso_lambdas(Y, ratio)
    for j in range(q):
        others = [k for k in range(q) if k != j]
        # sklearn: (1 / 2n) ||y - X s||^2 + a ||s||_1, i.e. ours divided by n with a = lam / n
        ref = Lasso(alpha=lam[j] / n, fit_intercept=False, tol=1e-12, max_iter=100000).fit(Y[:, others], Y[:, j])
        assert np.allclose(S[others, j], ref.coef_, atol=1e-5), j
    assert 0 < np.count_nonzero(S) < q * (q - 1)  # sparse, not empty


def _problem(seed=0, n=50, q=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = (rng.random((n, q)) < 0.4).astype(float)
    K, R, _ = fit_design(X, {"kind": "rbf"})
    S, _ = label_correlations(Y, 0.01)
    return K, R, sign_labels(Y), collaboration(S, 0.6)


def test_alternating_updates_decrease_the_objective():
    K, R, T, St = _problem()
    l1, l2 = 1.0, 0.05
    Op = a_operator(K, True, l2 / l1)
    G = T.copy()
    A = np.zeros_like(T)
    last = camel_objective(G, A, K, R, T, St, l1, l2)
    for _ in range(15):
        A = Op @ G                                                      # Eq. C3
        after_a = camel_objective(G, A, K, R, T, St, l1, l2)
        # exact block minimiser in A: the gradient K (lambda1 (K A - G) + lambda2 A) vanishes
        assert np.abs(K @ (l1 * (K @ A - G) + l2 * A)).max() < 1e-8
        G = (T @ St.T + l1 * K @ A) @ np.linalg.inv(St @ St.T + l1 * np.eye(len(St)))   # Eq. C4
        after_g = camel_objective(G, A, K, R, T, St, l1, l2)
        assert np.abs((G @ St - T) @ St.T + l1 * (G - K @ A)).max() < 1e-8  # exact in G
        assert after_a <= last + 1e-9 and after_g <= after_a + 1e-9
        last = after_g
    # camel_fit does the same and logs a non-increasing objective
    rows = []
    _, _, hist = camel_fit(K, R, T, St, l1, l2, True, 30, 0.0, rows.append)
    assert len(rows) == 30 and np.all(np.diff(hist) <= 1e-9) and hist[-1] == pytest.approx(rows[-1]["objective"])


def test_the_intercept_is_the_exact_block_minimiser_and_the_objective_still_falls():
    """With ``bias``: for fixed G, (A, b) minimise lambda1/2 ||K A + 1 b^T - G||^2 + lambda2/2 tr(A^T K A)
    jointly (both gradients vanish), and the alternation never raises the objective."""
    K, R, T, St = _problem()
    l1, l2 = 1.0, 0.05
    G = T + 0.3
    for kernel, Phi in ((True, K), (False, np.c_[K[:, :5], np.ones(len(K))])):
        Rm = K if kernel else np.eye(Phi.shape[1])
        A = a_operator(Phi, kernel, l2 / l1, bias=True) @ G
        b = (G - Phi @ A).mean(0)
        resid = Phi @ A + b - G
        assert np.abs(resid.sum(0)).max() < 1e-8                               # d/db = 0
        assert np.abs(Phi.T @ (l1 * resid) + l2 * (Rm @ A)).max() < 1e-7 * max(1.0, np.abs(Phi).max())  # d/dA = 0
    rows = []
    A, G, hist, b = camel_fit(K, R, T, St, l1, l2, True, 30, 0.0, rows.append, bias=True)
    assert len(rows) == 30 and np.all(np.diff(hist) <= 1e-9) and b.shape == (T.shape[1],)
    # a constant shift of every target is taken by the intercept, not by the kernel weights
    A2, _, _, b2 = camel_fit(K, R, T + 5.0, np.eye(T.shape[1]), l1, l2, True, 200, 1e-14, bias=True)
    A1, _, _, b1 = camel_fit(K, R, T, np.eye(T.shape[1]), l1, l2, True, 200, 1e-14, bias=True)
    assert np.allclose(A2, A1, atol=1e-6) and np.allclose(b2 - b1, 5.0, atol=1e-6)


def test_linear_a_step_is_ridge():
    rng = np.random.default_rng(3)
    Phi, G = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    A = a_operator(Phi, False, 0.3) @ G
    assert np.allclose(Phi.T @ (Phi @ A - G) + 0.3 * A, 0.0, atol=1e-10)


def test_alpha_zero_is_kernel_ridge():
    """With S~ = I, minimising Eq. C2 over G gives G = (T + lambda1 K A) / (1 + lambda1), leaving
    lambda1 / (2 (1 + lambda1)) ||K A - T||^2 + lambda2/2 tr(A^T K A): kernel ridge with weight
    lambda2 (1 + lambda1) / lambda1 (0.2 here)."""
    K, R, T, _ = _problem(seed=1)
    A, _, _ = camel_fit(K, R, T, np.eye(T.shape[1]), 1.0, 0.1, True, 5000, 1e-15)
    ridge = np.linalg.solve(K + 0.2 * np.eye(len(K)), T)
    assert np.allclose(K @ A, K @ ridge, atol=1e-4)


def test_predictions_mix_the_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    Y = _labels(80)
    data = ArrayDataset({"X_train": X, "Y_train": Y.astype(np.int8)}, {"task": "multilabel"}, None)
    camel = CAMEL()
    f = camel.fit(data, {"kind": "rbf"}, CAMELParams(alpha=0.7, lambda2=0.1), None, 0, lambda r: None)
    scores, labels = camel.predict(f, X[:5], {"kind": "rbf"}, CAMELParams())
    K, _, _ = fit_design(X, {"kind": "rbf"})
    own = K[:5] @ f.arrays["A"] + f.arrays["b"]  # each label's own fit, intercept included
    assert np.allclose(scores, own @ (0.3 * np.eye(Y.shape[1]) + 0.7 * f.arrays["S"]))
    g = camel.fit(data, {"kind": "rbf"}, CAMELParams(alpha=0.7, lambda2=0.1, bias=False), None, 0, lambda r: None)
    assert not g.arrays["b"].any() and not np.allclose(g.arrays["A"], f.arrays["A"])
    assert np.array_equal(labels, scores > 0)


def test_camel_through_the_family(tmp_path):
    generate_embedded(tmp_path / "data", {"n_train": 90, "n_test": 60})
    build_architecture(tmp_path / "model", {"kind": "rbf", "width_scale": 1.0})
    family = registry.FAMILIES.get("classic")
    metrics = ["one_error", "hamming_loss", "coverage", "ranking_loss", "average_precision", "macro_f1", "micro_f1"]
    run = {"train": {"cv_folds": 3, "cv_grid": {"alpha": [0.0, 0.5], "lambda2": [0.1, 1.0]},
                     "cv_metric": "average_precision"},
           "impl": "camel", "params": {"lambda1": 1.0}, "seed": 0, "method": "camel",
           "evaluate": {"splits": ["test"], "metrics": metrics}}
    family.train(run, dataset_dir=tmp_path / "data", model_dir=tmp_path / "model", out_dir=tmp_path / "ckpt",
                 log_csv=tmp_path / "log.csv", work_dir=tmp_path / "w", tracker=NullTracker())
    state = json.loads((tmp_path / "ckpt" / "trainer_state.json").read_text())
    assert [c["params"] for c in state["cv"]] == [{"alpha": a, "lambda2": b} for a in (0.0, 0.5) for b in (0.1, 1.0)]
    best = max(state["cv"], key=lambda c: c["score"])["params"]
    assert {k: state["params"][k] for k in best} == best
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,objective") and len(log) >= 3
    res = family.evaluate(run, dataset_dir=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")
    m = res["splits"]["test"]["metrics"]
    assert set(m) == set(metrics) and m["average_precision"] > 0.45
