"""The ``METRICS`` registry entries every classic study can name in ``evaluate.metrics``.

A metric is ``fn(y, scores, labels) -> float``: ``y`` the true labels (int[n] for multi-class,
{0,1}[n, q] for multi-label), ``scores`` float[n, q] (higher = more likely), ``labels`` the
learner's predictions (int[n], or {0,1}[n, q]). ``higher_is_better`` tells cross-validation and
the figures which way is good. Studies register metrics of their own in their package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from repro.metrics import multilabel as ml
from repro.registry import METRICS


@dataclass(frozen=True)
class Metric:
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    higher_is_better: bool
    description: str

    def __call__(self, y: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> float:
        return float(self.fn(np.asarray(y), np.asarray(scores), np.asarray(labels)))


def register_metric(name: str, higher_is_better: bool, description: str):
    """Decorator: register ``fn(y, scores, labels)`` under ``name``."""

    def deco(fn):
        METRICS.register(name)(Metric(fn, higher_is_better, description))
        return fn

    return deco


def one_hot(y: np.ndarray, q: int) -> np.ndarray:
    """int[n] class ids -> bool[n, q]; a multi-label {0,1}[n, q] passes through as bool."""
    if y.ndim == 2:
        return y.astype(bool)
    out = np.zeros((len(y), q), bool)
    out[np.arange(len(y)), y] = True
    return out


@register_metric("accuracy", True, "share of examples whose predicted class is the true one")
def accuracy(y, scores, labels) -> float:
    if y.ndim != 1:
        raise ValueError("accuracy is for multi-class labels int[n]; for multi-label use hamming_loss")
    return float(np.mean(labels == y))


@register_metric("macro_f1", True, "mean over classes (labels) of the per-class F1 (0 where undefined)")
def macro_f1(y, scores, labels) -> float:
    q = scores.shape[1]
    return ml.macro_f1(one_hot(labels, q), one_hot(y, q))


@register_metric("micro_f1", True, "F1 of all (example, class) cells pooled (= accuracy for multi-class)")
def micro_f1(y, scores, labels) -> float:
    q = scores.shape[1]
    return ml.micro_f1(one_hot(labels, q), one_hot(y, q))


@register_metric("hamming_loss", False, "share of (example, label) cells predicted wrong")
def hamming_loss(y, scores, labels) -> float:
    _, yb = ml.check_inputs(scores, y)
    return ml.hamming_loss(labels.astype(bool), yb)


def _ranking(name: str, higher: bool, description: str) -> None:
    fn = ml.RANKING[name]
    register_metric(name, higher, description)(lambda y, scores, labels: fn(*ml.check_inputs(scores, y)))


_ranking("one_error", False, "share of examples whose top-scored label is irrelevant")
_ranking("coverage", False, "ranks needed to cover every relevant label, minus 1, divided by q")
_ranking("ranking_loss", False, "share of (relevant, irrelevant) label pairs ordered wrongly")
_ranking("average_precision", True, "per relevant label, share of relevant labels ranked at or above")
