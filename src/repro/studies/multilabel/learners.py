"""Binary relevance (BR): the standard multi-label baseline of the MCC and CAMEL papers.

One independent L2-regularised logistic regression per label (labels ignore each other), fitted
jointly (the objective separates over labels) by L-BFGS::

    min_W  (1/n) sum_{i,j} log(1 + exp(-t_ij f_j(x_i))) + (lam/2) tr(W^T R W),   f(x) = phi(x) W

with t = 2y - 1 in {-1, +1}, phi and R from the model spec (``features.fit_design``: linear
[z, 1] with R = I, or an RBF kernel with R = K). Prediction: scores f(x), labels f(x) > 0.
Which base learner the papers' BR used was not found [I]; logistic regression is the common one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repro.classic.family import Fitted
from repro.registry import LEARNERS
from repro.studies.multilabel.features import design, fit_design, sign_labels


def br_objective(W: np.ndarray, Phi: np.ndarray, R: np.ndarray, T: np.ndarray, lam: float
                 ) -> tuple[float, np.ndarray]:
    """(objective, gradient [p, q]) of the BR logistic objective. Phi [n, p], R [p, p], T ±1 [n, q]."""
    n = len(Phi)
    m = T * (Phi @ W)                                   # margins [n, q]
    loss = np.logaddexp(0.0, -m).sum() / n
    RW = R @ W
    g = Phi.T @ (-T * np.exp(-np.logaddexp(0.0, m))) / n + lam * RW   # d softplus(-m)/dm = -sigmoid(-m)
    return float(loss + 0.5 * lam * np.sum(W * RW)), g


@dataclass(frozen=True)
class BRParams:
    lam: float = 0.01      # L2 weight lam of the objective above
    max_iter: int = 300    # L-BFGS iterations

    def __post_init__(self) -> None:
        if self.lam < 0 or self.max_iter < 1:
            raise ValueError(f"need lam >= 0 and max_iter >= 1, got lam={self.lam}, max_iter={self.max_iter}")


class BinaryRelevance:
    """Registered as learner ``binary_relevance``."""

    Params = BRParams

    def fit(self, data, arch, params: BRParams, cfg, seed, log_row) -> Fitted:
        from scipy.optimize import minimize  # noqa: PLC0415 (keeps the import off the evaluate path)

        X, Y = data.split("train")
        Phi, R, state = fit_design(X, arch)
        T = sign_labels(Y)
        back = None
        if arch["kind"] == "rbf":
            # whiten the kernel model (same optimum, far better conditioned for L-BFGS): with
            # K = V diag(w) V^T, f = K A = Phi' B for Phi' = V sqrt(w), B = sqrt(w) V^T A, and
            # tr(A^T K A) = ||B||^2; directions with w <= 1e-10 max(w) carry no function and are dropped
            w, V = np.linalg.eigh(R)
            keep = w > 1e-10 * w.max()
            Phi, R = V[:, keep] * np.sqrt(w[keep]), np.eye(int(keep.sum()))
            back = V[:, keep] / np.sqrt(w[keep])             # A = back @ B
        shape = (Phi.shape[1], T.shape[1])

        def fun(w):
            f, g = br_objective(w.reshape(shape), Phi, R, T, params.lam)
            return f, g.ravel()

        res = minimize(fun, np.zeros(shape).ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": params.max_iter})
        log_row({"epoch": int(res.nit), "objective": float(res.fun)})
        W = res.x.reshape(shape)
        return Fitted({**state, "W": W if back is None else back @ W}, {"iterations": int(res.nit), "converged": bool(res.success)})

    def predict(self, fitted: Fitted, X, arch, params):
        scores = design(fitted.arrays, X, arch) @ fitted.arrays["W"]
        return scores, (scores > 0).astype(np.int8)


LEARNERS.register("binary_relevance")(BinaryRelevance())
