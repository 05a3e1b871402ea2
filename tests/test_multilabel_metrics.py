"""The seven multi-label metrics on hand-computed cases, and against scikit-learn where the
conventions coincide (scikit-learn is installed with mlflow)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from repro.metrics import multilabel as ml

# 3 examples x 4 labels; scores rank labels per example
SCORES = np.array([[0.9, 0.8, 0.1, -0.5],    # ranks 1 2 3 4
                   [0.2, 0.7, -0.1, 0.4],    # ranks 3 1 4 2
                   [-0.3, -0.2, 0.5, 0.6]])  # ranks 4 3 2 1
LABELS = np.array([[1, 0, 1, 0],
                   [1, 0, 0, 1],
                   [0, 0, 0, 1]])


def test_hand_computed_values():
    r = ml.evaluate(SCORES, LABELS)
    # predictions (score > 0): [1 1 1 0], [1 1 0 1], [0 0 1 1]; wrong cells 1 + 1 + 1 = 3 of 12
    assert r["hamming_loss"] == pytest.approx(3 / 12)
    # top labels: 0 (relevant), 1 (irrelevant), 3 (relevant)
    assert r["one_error"] == pytest.approx(1 / 3)
    # deepest relevant rank: 3, 3, 1 -> (2 + 2 + 0) / 3 / q
    assert r["coverage"] == pytest.approx((2 + 2 + 0) / 3 / 4)
    # wrong (relevant, irrelevant) pairs: ex0 (2 vs 1) 1 of 4; ex1 (0 vs 1), (3 vs 1) 2 of 4; ex2 none of 3
    assert r["ranking_loss"] == pytest.approx((1 / 4 + 2 / 4 + 0) / 3)
    # ex0: relevant at ranks 1, 3 -> (1/1 + 2/3)/2; ex1: ranks 3, 2 -> (2/3 + 1/2)/2; ex2: rank 1 -> 1
    assert r["average_precision"] == pytest.approx(((1 + 2 / 3) / 2 + (2 / 3 + 1 / 2) / 2 + 1) / 3)
    # per label (tp, fp, fn): (2,0,0) (0,2,0) (1,1,0) (2,0,0) -> F1 1, 0, 2/3, 1
    assert r["macro_f1"] == pytest.approx((1 + 0 + 2 / 3 + 1) / 4)
    assert r["micro_f1"] == pytest.approx(2 * 5 / (2 * 5 + 3 + 0))
    assert list(r) == [*ml.LOWER_IS_BETTER, *ml.HIGHER_IS_BETTER]


def test_perfect_and_constant_scorers():
    perfect = ml.evaluate(np.where(LABELS == 1, 1.0, -1.0), LABELS)
    assert perfect["hamming_loss"] == perfect["one_error"] == perfect["ranking_loss"] == 0.0
    assert perfect["average_precision"] == perfect["micro_f1"] == 1.0
    const = ml.evaluate(np.zeros((3, 4)), LABELS)  # ties count against the ranking
    assert const["ranking_loss"] == 1.0 and const["coverage"] == pytest.approx(3 / 4)


def test_examples_without_a_ranking_are_skipped():
    labels = np.vstack([LABELS, [[0, 0, 0, 0], [1, 1, 1, 1]]])
    scores = np.vstack([SCORES, np.ones((2, 4))])
    a, b = ml.evaluate(SCORES, LABELS), ml.evaluate(scores, labels)
    for k in ("one_error", "ranking_loss", "average_precision"):
        assert a[k] == pytest.approx(b[k]), k
    # coverage keeps the all-relevant example (deepest rank 4 -> 3/4), skips the empty one
    assert b["coverage"] == pytest.approx((a["coverage"] * 3 + 3 / 4) / 4)


def test_against_scikit_learn_on_random_data():
    rng = np.random.default_rng(0)
    n, q = 300, 9
    labels = (rng.random((n, q)) < 0.3).astype(int)
    labels[labels.sum(1) == 0, 0] = 1  # every example has a relevant and an irrelevant label
    labels[labels.sum(1) == q, 0] = 0
    scores = np.round(rng.normal(size=(n, q)) + labels, 1)  # rounding makes ties
    r = ml.evaluate(scores, labels)
    preds = scores > 0
    assert r["hamming_loss"] == pytest.approx(skm.hamming_loss(labels, preds))
    assert r["macro_f1"] == pytest.approx(skm.f1_score(labels, preds, average="macro", zero_division=0))
    assert r["micro_f1"] == pytest.approx(skm.f1_score(labels, preds, average="micro"))
    assert r["coverage"] * q == pytest.approx(skm.coverage_error(labels, scores) - 1)
    assert r["average_precision"] == pytest.approx(skm.label_ranking_average_precision_score(labels, scores))
    # sklearn counts tied (relevant, irrelevant) pairs differently (not as wrong); without ties both agree
    untied = scores + rng.normal(scale=1e-6, size=scores.shape)
    assert ml.ranking_loss(untied, labels.astype(bool)) == pytest.approx(skm.label_ranking_loss(labels, untied))
    assert ml.ranking_loss(scores, labels.astype(bool)) >= skm.label_ranking_loss(labels, scores)


def test_chunked_pairwise_metrics_equal_one_pass(monkeypatch):
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=(50, 6)), rng.random((50, 6)) < 0.4
    whole = (ml.ranking_loss(scores, labels), ml.average_precision(scores, labels))
    monkeypatch.setattr(ml, "_pairwise", lambda fn, s, y: np.concatenate([fn(s[i:i + 1], y[i:i + 1]) for i in range(len(s))]))
    assert (ml.ranking_loss(scores, labels), ml.average_precision(scores, labels)) == pytest.approx(whole)


@pytest.mark.parametrize("scores, labels, match", [
    (np.zeros((2, 3)), np.zeros((2, 4)), "must both be"),
    (np.zeros(3), np.zeros(3), "must both be"),
    (np.zeros((2, 3)), np.full((2, 3), 2), "0/1"),
    (np.full((2, 3), np.nan), np.zeros((2, 3)), "NaN"),
])
def test_bad_inputs_are_refused(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        ml.evaluate(scores, labels)


def test_ranks_count_labels_scored_at_least_as_high():
    """The sort-based ranks equal the definition, counted pair by pair, with many ties."""
    from repro.metrics.multilabel import ranks

    rng = np.random.default_rng(3)
    for q in (1, 2, 5, 9):
        s = rng.integers(0, 3, (40, q)).astype(float)
        assert np.array_equal(ranks(s), (s[:, None, :] >= s[:, :, None]).sum(2))
