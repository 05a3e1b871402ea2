"""The seven multi-label metrics of the MCC and CAMEL papers, implemented once (other-papers.md §9-10).

Inputs: ``scores`` float[n, q] (higher = more relevant), ``labels`` {0, 1}[n, q] and, for the
threshold metrics, binary ``predictions`` [n, q] (default ``scores > 0``, the sign rule both papers
predict with). Definitions follow the multi-label literature (Zhang & Zhou, TKDE 2014):

* Hamming loss: share of (example, label) cells predicted wrong.
* One-error: share of examples whose top-scored label is irrelevant.
* Coverage: how far down the ranking one must go to cover every relevant label,
  ``max rank(relevant) − 1``, **divided by q** (the scale of the papers' tables, e.g. CAMEL's 0.446
  on yeast's 14 labels; the unnormalised value is ``coverage · q``).
* Ranking loss: share of (relevant, irrelevant) label pairs ordered wrongly.
* Average precision: for each relevant label, the share of relevant labels ranked at or above it.
* Macro-F1 (mean of per-label F1) and micro-F1 (F1 of all cells pooled).

Ties in scores count against the ranking (a label's rank is the number of labels scored at least as
high), so a constant scorer gets no credit. Examples with no relevant label, or with every label
relevant, have no ranking to judge: one-error, ranking loss and average precision skip them, and
coverage skips examples with no relevant label (our choice, as common evaluation code does; it
changes numbers only on such examples). A label with no positive and no predicted positive has
F1 = 0 in the macro mean (sklearn's ``zero_division=0``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

LOWER_IS_BETTER = ("hamming_loss", "one_error", "coverage", "ranking_loss")
HIGHER_IS_BETTER = ("average_precision", "macro_f1", "micro_f1")


def check_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be [n_examples, n_labels]")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1 (relevant = 1)")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores, labels.astype(bool)


def ranks(scores: np.ndarray) -> np.ndarray:
    """rank[i, j] = number of labels of example i scored >= scores[i, j] (1 = top; ties pessimistic). [n, q]

    Sort each row descending; a position's rank is one past the last position of its run of equal
    scores (a reversed running minimum of the run ends), scattered back to the labels.
    """
    n, q = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    desc = np.take_along_axis(scores, order, axis=1)
    run_end = np.ones((n, q), bool)
    run_end[:, :-1] = desc[:, :-1] != desc[:, 1:]
    ends = np.where(run_end, np.arange(q), q)
    last = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    out = np.empty((n, q), np.int64)
    np.put_along_axis(out, order, last + 1, axis=1)
    return out


def _pairwise(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``fn`` over row chunks of at most ~16M label pairs (its [n, q, q] intermediates bounded)."""
    step = max(1, 2**24 // max(1, s.shape[1] ** 2))
    return np.concatenate([fn(s[lo:lo + step], y[lo:lo + step]) for lo in range(0, len(s), step)])


def _rankable(labels: np.ndarray) -> np.ndarray:
    k = labels.sum(1)
    return (k > 0) & (k < labels.shape[1])


def hamming_loss(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions, bool) != labels))


def one_error(scores: np.ndarray, labels: np.ndarray) -> float:
    keep = _rankable(labels)
    top = np.argmax(scores[keep], axis=1)  # first of tied maxima
    return float(np.mean(~labels[keep][np.arange(keep.sum()), top])) if keep.any() else float("nan")


def coverage(scores: np.ndarray, labels: np.ndarray) -> float:
    keep = labels.any(1)
    if not keep.any():
        return float("nan")
    r = np.where(labels[keep], ranks(scores[keep]), 0)
    return float(np.mean((r.max(1) - 1) / labels.shape[1]))


def ranking_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    keep = _rankable(labels)
    if not keep.any():
        return float("nan")
    def per_example(s, y):  # pairs (relevant a, irrelevant b) with s_a <= s_b
        wrong = (s[:, :, None] <= s[:, None, :]) & y[:, :, None] & ~y[:, None, :]
        return wrong.sum((1, 2)) / (y.sum(1) * (~y).sum(1))

    return float(np.mean(_pairwise(per_example, scores[keep], labels[keep])))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    keep = _rankable(labels)
    if not keep.any():
        return float("nan")
    def per_example(s, y):  # for relevant j: relevant labels scored >= s_j, over rank(j)
        above = ((s[:, None, :] >= s[:, :, None]) & y[:, None, :]).sum(2)
        return np.where(y, above / ranks(s), 0.0).sum(1) / y.sum(1)

    return float(np.mean(_pairwise(per_example, scores[keep], labels[keep])))


def _f1(tp, fp, fn) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def macro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    p = np.asarray(predictions, bool)
    tp, fp, fn = (p & labels).sum(0), (p & ~labels).sum(0), (~p & labels).sum(0)
    return float(np.mean(_f1(tp, fp, fn)))


def micro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    p = np.asarray(predictions, bool)
    return float(_f1((p & labels).sum(), (p & ~labels).sum(), (~p & labels).sum()))


RANKING: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "one_error": one_error, "coverage": coverage, "ranking_loss": ranking_loss,
    "average_precision": average_precision}
THRESHOLD: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "hamming_loss": hamming_loss, "macro_f1": macro_f1, "micro_f1": micro_f1}


def evaluate(scores, labels, predictions=None, threshold: float = 0.0) -> dict[str, float]:
    """All seven metrics; ``predictions`` default to ``scores > threshold``."""
    scores, labels = check_inputs(scores, labels)
    preds = scores > threshold if predictions is None else np.asarray(predictions, bool)
    if preds.shape != labels.shape:
        raise ValueError(f"predictions {preds.shape} must match labels {labels.shape}")
    out = {name: fn(scores, labels) for name, fn in RANKING.items()}
    out.update({name: fn(preds, labels) for name, fn in THRESHOLD.items()})
    return {k: out[k] for k in (*LOWER_IS_BETTER, *HIGHER_IS_BETTER)}
