"""CAMEL: collaboration based multi-label learning (Feng, An, He; AAAI 2019; other-papers.md §10).

Step 1, label correlations by sparse reconstruction in label space (sparse reconstruction [F];
the exact form [I], λ and ρ [F] from a third-party re-implementation's README). For every label j::

    s_j = argmin_s  1/2 ||y_j - Y_{-j} s||^2 + lam_j ||s||_1,   lam_j = lasso_ratio * ||y_j^T Y_{-j}||_inf

with lasso_ratio = 1/100, solved by ADMM with rho = 1 (Eq. C1). S [q, q] holds s_j in column j
with a zero diagonal; labels are coded {0, 1} here (co-occurrence) [I].

Step 2, collaborative training [I] (a reconstruction consistent with the README's two
regularisers). With S~ = (1 - alpha) I + alpha S, targets T = 2Y - 1 and an RBF kernel K::

    min_{G, A}  1/2 ||G S~ - T||^2 + lambda1/2 ||K A - G||^2 + lambda2/2 tr(A^T K A)     (Eq. C2)

minimised by alternating exact block updates from G = T::

    A = (K + (lambda2 / lambda1) I)^-1 G                                             (Eq. C3)
    G = (T S~^T + lambda1 K A)(S~ S~^T + lambda1 I)^-1                               (Eq. C4)

Prediction: scores k(x)^T A S~ (each label's own prediction k(x)^T A mixed with the other labels'
through S~), labels scores > 0. alpha = 0 removes the collaboration (kernel ridge per label).
With a linear model spec, K A becomes Phi W and tr(A^T K A) becomes ||W||^2 (Eq. C3 becomes the
ridge solution W = (Phi^T Phi + (lambda2/lambda1) I)^-1 Phi^T G).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repro.classic.family import Fitted
from repro.registry import LEARNERS
from repro.studies.multilabel.features import design, fit_design, sign_labels


def soft_threshold(V: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Elementwise prox of t * |.|: sign(v) * max(|v| - t, 0); ``t`` broadcasts over V."""
    return np.sign(V) * np.maximum(np.abs(V) - t, 0.0)


def lasso_lambdas(Y: np.ndarray, ratio: float) -> np.ndarray:
    """lam_j = ratio * ||y_j^T Y_{-j}||_inf for every label j. Y [n, q] -> [q]."""
    G = Y.T @ Y
    np.fill_diagonal(G, 0.0)
    return ratio * np.abs(G).max(0)


def label_correlations(Y: np.ndarray, ratio: float = 0.01, rho: float = 1.0, iters: int = 2000,
                       tol: float = 1e-8) -> tuple[np.ndarray, int]:
    """Eq. C1 for all labels at once by ADMM. Y [n, q] (0/1) -> (S [q, q], zero diagonal; iterations).

    Each column j is a lasso of y_j on every label with the constraint s_jj = 0; since all
    columns share the design Y, the x-step (Y^T Y + rho I)^-1 is one matrix for all of them, and
    the z-step is the soft threshold with the diagonal held at 0 (the prox of lam_j ||.||_1 plus
    the constraint), which is exactly the lasso on Y_{-j}.
    """
    Y = np.asarray(Y, float)
    q = Y.shape[1]
    GY = Y.T @ Y                                           # [q, q]; column j = Y^T y_j
    lam = lasso_lambdas(Y, ratio)                         # [q]
    Minv = np.linalg.inv(GY + rho * np.eye(q))
    Z = np.zeros((q, q))
    U = np.zeros((q, q))
    off = ~np.eye(q, dtype=bool)
    it = 0
    for it in range(1, iters + 1):
        Xs = Minv @ (GY + rho * (Z - U))                   # x-step
        Z_old = Z
        Z = soft_threshold(Xs + U, lam[None, :] / rho) * off   # z-step, s_jj = 0
        U = U + Xs - Z                                     # dual step
        r = np.linalg.norm(Xs - Z)
        s = rho * np.linalg.norm(Z - Z_old)
        if r < tol * max(1.0, np.linalg.norm(Z)) and s < tol * max(1.0, np.linalg.norm(U)):
            break
    return Z, it


_S_CACHE: dict[tuple, tuple[np.ndarray, int]] = {}


def cached_label_correlations(Y: np.ndarray, ratio: float, rho: float, iters: int) -> tuple[np.ndarray, int]:
    """``label_correlations`` memoised on the label matrix: cross-validation refits every grid
    candidate on the same folds, whose S does not depend on alpha or lambda2."""
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    key = (Y.shape, Y.tobytes(), ratio, rho, iters)
    if key not in _S_CACHE:
        if len(_S_CACHE) >= 16:
            _S_CACHE.clear()
        _S_CACHE[key] = label_correlations(Y, ratio, rho, iters)
    S, it = _S_CACHE[key]
    return S.copy(), it


def collaboration(S: np.ndarray, alpha: float) -> np.ndarray:
    """S~ = (1 - alpha) I + alpha S. [q, q]."""
    return (1.0 - alpha) * np.eye(len(S)) + alpha * S


def camel_objective(G, A, Phi, R, T, St, lambda1, lambda2, b=0.0) -> float:
    """Eq. C2 at (G, A, b) with Phi = K, R = K (kernel) or Phi = [z, 1], R = I (linear); ``b`` [q]
    the unpenalised intercept (0: none)."""
    return float(0.5 * np.sum((G @ St - T) ** 2) + 0.5 * lambda1 * np.sum((Phi @ A + b - G) ** 2)
                 + 0.5 * lambda2 * np.sum(A * (R @ A)))


def a_operator(Phi: np.ndarray, kernel: bool, c: float, bias: bool = False) -> np.ndarray:
    """The linear map of Eq. C3, A = Op @ G. Kernel: (K + c I)^-1 [n, n]; linear: (Phi^T Phi + c I)^-1 Phi^T.
    With an unpenalised intercept b (``bias``; b = mean over rows of G - Phi A, profiled out): the
    same on the centred residual, H = I - 11^T / n: kernel (H K + c I)^-1 H; linear (Phi^T H Phi + c I)^-1 Phi^T H."""
    if bias:
        H = np.eye(len(Phi)) - 1.0 / len(Phi)
        if kernel:
            return np.linalg.solve(H @ Phi + c * np.eye(len(Phi)), H)
        return np.linalg.solve(Phi.T @ H @ Phi + c * np.eye(Phi.shape[1]), Phi.T @ H)
    if kernel:
        w, V = np.linalg.eigh(Phi)
        return (V / (np.maximum(w, 0.0) + c)) @ V.T
    p = Phi.shape[1]
    return np.linalg.solve(Phi.T @ Phi + c * np.eye(p), Phi.T)


def camel_fit(Phi: np.ndarray, R: np.ndarray, T: np.ndarray, St: np.ndarray, lambda1: float, lambda2: float,
              kernel: bool, n_iter: int, tol: float, log=None, bias: bool = False
              ) -> tuple[np.ndarray, np.ndarray, list[float]] | tuple[np.ndarray, np.ndarray, list[float], np.ndarray]:
    """Alternate Eq. C3 and C4 from G = T. Returns (A, G, objective after each iteration), and the
    intercept b [q] as a fourth item with ``bias`` (Phi A + b replaces Phi A in Eq. C2-C4)."""
    Op = a_operator(Phi, kernel, lambda2 / lambda1, bias)
    Ginv = np.linalg.inv(St @ St.T + lambda1 * np.eye(len(St)))
    G = T.copy()
    history: list[float] = []
    A = np.zeros((Phi.shape[1], T.shape[1]))
    b = np.zeros(T.shape[1])
    for it in range(1, n_iter + 1):
        A = Op @ G                                          # Eq. C3
        if bias:
            b = (G - Phi @ A).mean(0)                       # the intercept's block minimiser
        G = (T @ St.T + lambda1 * (Phi @ A + b)) @ Ginv     # Eq. C4
        history.append(camel_objective(G, A, Phi, R, T, St, lambda1, lambda2, b))
        if log is not None:
            log({"epoch": it, "objective": history[-1]})
        if it > 1 and history[-2] - history[-1] <= tol * max(abs(history[-2]), 1.0):
            break
    return (A, G, history, b) if bias else (A, G, history)


@dataclass(frozen=True)
class CAMELParams:
    alpha: float = 0.5          # collaboration weight: S~ = (1 - alpha) I + alpha S
    lambda1: float = 1.0        # "lambda1 = 1" (README, other-papers.md §10.1)
    lambda2: float = 0.01       # kernel ridge weight; the paper's grid is in the study config
    lasso_ratio: float = 0.01   # lam_j = lasso_ratio * ||y_j^T Y_{-j}||_inf (README)
    admm_rho: float = 1.0       # "rho = 1" (README; not stated in the paper)
    admm_iters: int = 2000
    n_iter: int = 50            # alternating iterations (stops early, relative tolerance ``tol``) [I]
    tol: float = 1e-6
    # an unpenalised intercept per label in the fitted model (Phi A + b; §10.4: "the exact placement
    # of a bias term remains [I]"); false: the model without one (the package's first version)
    bias: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.lambda1 <= 0 or self.lambda2 <= 0 or self.admm_rho <= 0 or self.lasso_ratio < 0:
            raise ValueError("need lambda1, lambda2, admm_rho > 0 and lasso_ratio >= 0, got "
                             f"{self.lambda1}, {self.lambda2}, {self.admm_rho}, {self.lasso_ratio}")
        if self.n_iter < 1 or self.admm_iters < 1:
            raise ValueError(f"n_iter and admm_iters must be >= 1, got {self.n_iter}, {self.admm_iters}")


class CAMEL:
    """Registered as learner ``camel``."""

    Params = CAMELParams

    def fit(self, data, arch, params: CAMELParams, cfg, seed, log_row) -> Fitted:
        X, Y = data.split("train")
        Phi, R, state = fit_design(X, arch)
        S, admm_it = cached_label_correlations(Y, params.lasso_ratio, params.admm_rho, params.admm_iters)
        St = collaboration(S, params.alpha)
        out = camel_fit(Phi, R, sign_labels(Y), St, params.lambda1, params.lambda2, arch["kind"] == "rbf",
                        params.n_iter, params.tol, log_row, bias=params.bias)
        A, hist = out[0], out[2]
        b = out[3] if params.bias else np.zeros(Y.shape[1])
        return Fitted({**state, "A": A, "b": b, "S": S, "S_tilde": St},
                      {"admm_iterations": admm_it, "iterations": len(hist), "objective": hist[-1],
                       "S_nonzero": int(np.count_nonzero(S))})

    def predict(self, fitted: Fitted, X, arch, params):
        b = fitted.arrays.get("b", 0.0)
        scores = (design(fitted.arrays, X, arch) @ fitted.arrays["A"] + b) @ fitted.arrays["S_tilde"]
        return scores, (scores > 0).astype(np.int8)


LEARNERS.register("camel")(CAMEL())
