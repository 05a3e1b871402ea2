"""Feature maps shared by the multi-label learners (MCC, CAMEL, binary relevance).

The run's base "model" is an architecture spec (``resources/models/<name>/config.json``):

* ``{"kind": "linear"}``: phi(x) = [z, 1], z the train-standardised input (a bias column appended);
* ``{"kind": "rbf", "width_scale": s}``: k(x, x') = exp(-||z - z'||^2 / (2 sigma^2)) with
  sigma = s * (mean pairwise Euclidean distance of the training inputs) [I] (a common choice in the
  multi-label kernel literature; the CAMEL and MCC papers' widths were not found).

Both standardise each feature with the training mean and std (``standardize: false`` turns it off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("linear", "rbf")
ARCH_KEYS = {"kind", "width_scale", "standardize"}


def check_arch(arch: dict[str, Any]) -> None:
    """Fail early, naming the key, on a spec these learners cannot use."""
    unknown = sorted(set(arch) - ARCH_KEYS)
    if unknown:
        raise ValueError(f"model config.json: unknown key(s) {unknown}; allowed: {sorted(ARCH_KEYS)}")
    if arch.get("kind") not in KINDS:
        raise ValueError(f"model config.json: kind {arch.get('kind')!r} not supported by the multi-label "
                         f"learners; allowed: {', '.join(KINDS)}")
    if arch["kind"] == "rbf" and not float(arch.get("width_scale", 1.0)) > 0:
        raise ValueError(f"model config.json: width_scale must be > 0, got {arch.get('width_scale')!r}")


def sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """||a_i - b_j||^2, clipped at 0 (rounding). A [n, d], B [m, d] -> [n, m]."""
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.maximum(d, 0.0)


def rbf(A: np.ndarray, B: np.ndarray, sigma: float) -> np.ndarray:
    """RBF kernel exp(-||a - b||^2 / (2 sigma^2)). [n, d], [m, d] -> [n, m]."""
    return np.exp(-sq_dists(A, B) / (2.0 * sigma * sigma))


def mean_distance(Z: np.ndarray, max_points: int = 2000) -> float:
    """Mean Euclidean distance over distinct pairs of rows of Z [n, d] (the first ``max_points``)."""
    Z = Z[:max_points]
    n = len(Z)
    if n < 2:
        raise ValueError("the RBF width needs at least 2 training examples")
    d = np.sqrt(sq_dists(Z, Z))
    return float(d.sum() / (n * (n - 1)))


@dataclass
class Scaler:
    """Per-feature standardisation fitted on the training inputs (``mu``, ``sd`` [d])."""

    mu: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, standardize: bool = True) -> "Scaler":
        X = np.asarray(X, float)
        if not standardize:
            return cls(np.zeros(X.shape[1]), np.ones(X.shape[1]))
        sd = X.std(0)
        return cls(X.mean(0), np.where(sd > 1e-12, sd, 1.0))  # constant features stay 0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, float) - self.mu) / self.sd


def linear_features(Z: np.ndarray) -> np.ndarray:
    """phi(z) = [z, 1]: [n, d] -> [n, d + 1]."""
    return np.hstack([Z, np.ones((len(Z), 1))])


def sign_labels(Y: np.ndarray) -> np.ndarray:
    """{0, 1}[n, q] -> {-1, +1}[n, q] float targets (the papers' sign coding)."""
    return 2.0 * np.asarray(Y, float) - 1.0


def fit_scaler(X: np.ndarray, arch: dict[str, Any]) -> Scaler:
    """The spec's checked, train-fitted standardisation (identity with ``standardize: false``)."""
    check_arch(arch)
    return Scaler.fit(X, bool(arch.get("standardize", True)))


def fit_design(X: np.ndarray, arch: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Training design of a model f(x) = phi(x) W under ``arch``.

    Returns (Phi [n, p], R [p, p], state): linear: Phi = [z, 1], R = I (so ||W||^2);
    rbf: Phi = K(Z, Z) [n, n], R = K (so tr(W^T K W) = ||W||^2 in the RKHS, W = the dual
    coefficients). ``state`` (arrays, saved in the checkpoint) is what ``design`` needs at test time.
    """
    sc = fit_scaler(X, arch)
    Z = sc(X)
    state = {"mu": sc.mu, "sd": sc.sd}
    if arch["kind"] == "linear":
        Phi = linear_features(Z)
        return Phi, np.eye(Phi.shape[1]), state
    sigma = float(arch.get("width_scale", 1.0)) * mean_distance(Z)
    K = rbf(Z, Z, sigma)
    return K, K, {**state, "Z_basis": Z, "sigma": np.array(sigma)}


def design(state: dict[str, np.ndarray], X: np.ndarray, arch: dict[str, Any]) -> np.ndarray:
    """Test-time Phi [m, p] for inputs X [m, d] from a fitted ``state`` (see ``fit_design``)."""
    Z = (np.asarray(X, float) - state["mu"]) / state["sd"]
    if arch["kind"] == "linear":
        return linear_features(Z)
    return rbf(Z, state["Z_basis"], float(state["sigma"]))
