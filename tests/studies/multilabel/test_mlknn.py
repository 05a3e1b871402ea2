"""ML-kNN: the posterior on a case computed by hand, the vectorised counts against a loop over
examples and labels, and a run through the classic family."""

from __future__ import annotations

import numpy as np
import pytest

from repro import plugins, registry
from repro.classic.data import ArrayDataset
from repro.models.architecture import build_architecture
from repro.studies.multilabel.data import generate_embedded
from repro.studies.multilabel.mlknn import MLkNN, MLkNNParams, neighbours
from repro.tracking import NullTracker

plugins.load_all()

RAW = {"kind": "linear", "standardize": False}


def _data(X, Y, Xte=None, Yte=None):
    Xte = X if Xte is None else Xte
    Yte = Y if Yte is None else Yte
    return ArrayDataset({"X_train": X, "Y_train": Y, "X_test": Xte, "Y_test": Yte}, {"task": "multilabel"}, None)


def test_posterior_by_hand():
    # two clusters on a line; label 1 on the left one. k = 2, s = 1:
    # counts C = 2, 2, 2 (left), 0, 0, 0 (right) -> c1 = [0, 0, 3], c0 = [3, 0, 0];
    # P(H1) = (1 + 3) / (2 + 6) = 1/2; P(E|H1) = (1 + c1) / (3 + 3) = [1, 1, 4] / 6, P(E|H0) = [4, 1, 1] / 6
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    Y = np.array([[1], [1], [1], [0], [0], [0]], np.int8)
    m = MLkNN()
    fitted = m.fit(_data(X, Y), RAW, MLkNNParams(k=2, smooth=1.0), None, 0, lambda r: None)
    a = fitted.arrays
    assert a["prior1"] == pytest.approx([0.5])
    assert a["like1"][:, 0] == pytest.approx(np.array([1, 1, 4]) / 6)
    assert a["like0"][:, 0] == pytest.approx(np.array([4, 1, 1]) / 6)
    # x = 0.5: neighbours 0 and 1 (C = 2) -> r = (4/6) / (4/6 + 1/6) = 0.8
    # x = 5.9: neighbours 2 and 10 (C = 1) -> r = 1/2, not above 1/2 -> label 0
    # x = 11.4: neighbours 11 and 12 (C = 0) -> r = (1/6) / (1/6 + 4/6) = 0.2
    r, lab = m.predict(fitted, np.array([[0.5], [5.9], [11.4]]), RAW, MLkNNParams(k=2))
    assert r[:, 0] == pytest.approx([0.8, 0.5, 0.2])
    assert lab[:, 0].tolist() == [1, 0, 0]


def test_neighbours_exclude_self_and_break_ties_by_index():
    X = np.array([[0.0], [1.0], [1.0], [3.0]])
    assert neighbours(X, X, 2, exclude_self=True).tolist() == [[1, 2], [2, 0], [1, 0], [1, 2]]
    with pytest.raises(ValueError, match="k = 4 neighbours but only 3 training examples"):
        neighbours(X, X, 4, exclude_self=True)


def test_counts_match_a_loop_reference():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 4)), (rng.random((40, 5)) < 0.3).astype(np.int8)
    k, s = 5, 0.7
    fitted = MLkNN().fit(_data(X, Y), RAW, MLkNNParams(k=k, smooth=s), None, 0, lambda r: None)
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    c1, c0 = np.zeros((k + 1, 5)), np.zeros((k + 1, 5))
    for i in range(40):
        nb = np.argsort(D[i], kind="stable")[:k]
        for lab in range(5):
            (c1 if Y[i, lab] else c0)[Y[nb, lab].sum(), lab] += 1
    assert fitted.arrays["like1"] == pytest.approx((s + c1) / (s * (k + 1) + c1.sum(0)))
    assert fitted.arrays["like0"] == pytest.approx((s + c0) / (s * (k + 1) + c0.sum(0)))
    assert fitted.arrays["prior1"] == pytest.approx((s + Y.sum(0)) / (2 * s + 40))


def test_bad_params_name_the_value():
    with pytest.raises(ValueError, match="k >= 1 and smooth > 0, got k=0"):
        MLkNNParams(k=0)


def test_mlknn_through_the_family(tmp_path):
    generate_embedded(tmp_path / "data", {"n_train": 120, "n_test": 80})
    build_architecture(tmp_path / "model", {"kind": "rbf"})
    family = registry.FAMILIES.get("classic")
    metrics = ["ranking_loss", "average_precision", "hamming_loss"]
    run = {"train": {}, "impl": "mlknn", "params": {"k": 10}, "seed": 0, "method": "mlknn",
           "evaluate": {"splits": ["test"], "metrics": metrics}}
    family.train(run, dataset_dir=tmp_path / "data", model_dir=tmp_path / "model", out_dir=tmp_path / "ckpt",
                 log_csv=tmp_path / "log.csv", work_dir=tmp_path / "w", tracker=NullTracker())
    m = family.evaluate(run, dataset_dir=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")["splits"]["test"]["metrics"]
    # the generated labels depend on the inputs: neighbours must rank them better than chance (0.5)
    assert m["ranking_loss"] < 0.4 and m["average_precision"] > 0.5
