"""ML-kNN (Zhang & Zhou, Pattern Recognition 40(7), 2007): the lazy multi-label baseline the
multi-label papers compare with. Written here (vectorised numpy) rather than taken from
``scikit-multilearn``, whose maintained fork brings five further dependencies (README).

For each label l, with m training examples, smoothing s and k neighbours::

    P(H1_l) = (s + sum_i y_il) / (2 s + m)                                        (Eq. 1)
    C_il    = #{ neighbours of x_i (itself excluded) with label l }   in {0, ..., k}
    P(E_j | H1_l) = (s + c1[j, l]) / (s (k + 1) + sum_p c1[p, l])                  (Eq. 2)
    P(E_j | H0_l) = (s + c0[j, l]) / (s (k + 1) + sum_p c0[p, l])

with c1[j, l] = #{i : y_il = 1, C_il = j} and c0 the same over y_il = 0. A test input with
counts C_l among its k nearest training examples scores the posterior
r_l = P(H1) P(E_C | H1) / (P(H1) P(E_C | H1) + P(H0) P(E_C | H0)) and gets label l when r_l > 1/2
(the paper's MAP rule, Eq. 3); the scores r rank the labels. Distances are Euclidean on the
train-standardised inputs of the model spec (``standardize``, as every multi-label learner here);
the kernel of an ``rbf`` spec is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repro.classic.family import Fitted
from repro.registry import LEARNERS
from repro.studies.multilabel.features import fit_scaler, sq_dists


def neighbours(Q: np.ndarray, B: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """Indices [n, k] of the k nearest rows of B [m, d] to each row of Q [n, d] (ties by index).
    With ``exclude_self`` (Q is B), row i never counts itself."""
    D = sq_dists(Q, B)
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    if k > B.shape[0] - exclude_self:
        raise ValueError(f"ML-kNN: k = {k} neighbours but only {B.shape[0] - exclude_self} training examples")
    idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    # argpartition leaves the k in any order and picks ties arbitrarily; sort (distance, index)
    # over the candidates so the result does not depend on the numpy version
    order = np.lexsort((idx, np.take_along_axis(D, idx, 1)), axis=1)
    return np.take_along_axis(idx, order, 1)


def label_counts(Y_neighbours: np.ndarray) -> np.ndarray:
    """C [n, q]: how many of each example's neighbours carry each label. Y_neighbours [n, k, q] 0/1."""
    return Y_neighbours.sum(1).astype(np.int64)


def count_table(C: np.ndarray, Y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(c1, c0) [k + 1, q]: how many examples with (c1) and without (c0) label l have C_il = j."""
    onehot = C[:, :, None] == np.arange(k + 1)                       # [n, q, k + 1]
    Yf = np.asarray(Y, float)[:, :, None]
    return (onehot * Yf).sum(0).T, (onehot * (1.0 - Yf)).sum(0).T


def posterior(C: np.ndarray, prior1: np.ndarray, like1: np.ndarray, like0: np.ndarray) -> np.ndarray:
    """r [n, q] (Eq. 3's posterior) from counts C [n, q], P(H1) [q] and P(E_j|H) [k + 1, q]."""
    cols = np.arange(C.shape[1])
    p1 = prior1 * like1[C, cols]
    p0 = (1.0 - prior1) * like0[C, cols]
    return p1 / (p1 + p0)


@dataclass(frozen=True)
class MLkNNParams:
    k: int = 10            # neighbours (the paper's default)
    smooth: float = 1.0    # s, Laplace smoothing (the paper's default)

    def __post_init__(self) -> None:
        if self.k < 1 or self.smooth <= 0:
            raise ValueError(f"ML-kNN needs k >= 1 and smooth > 0, got k={self.k}, smooth={self.smooth}")


class MLkNN:
    """Registered as learner ``mlknn``."""

    Params = MLkNNParams

    def fit(self, data, arch, params: MLkNNParams, cfg, seed, log_row) -> Fitted:
        X, Y = data.split("train")
        sc = fit_scaler(X, arch)
        Z, Y = sc(X), np.asarray(Y, np.int8)
        k, s, m = params.k, params.smooth, len(Y)
        C = label_counts(Y[neighbours(Z, Z, k, exclude_self=True)])
        c1, c0 = count_table(C, Y, k)
        prior1 = (s + Y.sum(0)) / (2 * s + m)
        like1 = (s + c1) / (s * (k + 1) + c1.sum(0))
        like0 = (s + c0) / (s * (k + 1) + c0.sum(0))
        return Fitted({"mu": sc.mu, "sd": sc.sd, "Z_train": Z, "Y_train": Y, "prior1": prior1,
                       "like1": like1, "like0": like0}, {"k": k, "smooth": s})

    def predict(self, fitted: Fitted, X, arch, params: MLkNNParams):
        a = fitted.arrays
        Z = (np.asarray(X, float) - a["mu"]) / a["sd"]
        C = label_counts(a["Y_train"][neighbours(Z, a["Z_train"], params.k)])
        r = posterior(C, a["prior1"], a["like1"], a["like0"])
        return r, (r > 0.5).astype(np.int8)


LEARNERS.register("mlknn")(MLkNN())
