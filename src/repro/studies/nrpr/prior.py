"""Class prior θ of the known classes in the unlabelled data: the kernel mixture-proportion
estimator KM1/KM2 (Ramaswamy, Scott & Tewari, ICML 2016), as NRPR's code applies it on UCI data
(``utils_func.KernelPriorEstimator``; other-papers.md §1.2):

1. score every labelled and unlabelled point by a 5-fold cross-fitted RBF-SVM separating labelled
   (+1) from unlabelled (−1) points (γ = 1 / median squared distance of the fold's training points);
2. treat the unlabelled scores as a mixture F = κ·H + (1−κ)·G of the labelled scores' distribution
   H and an unknown G, and estimate κ* (the largest such κ = θ) by KM on the 1-D scores.

KM: with a Gaussian kernel matrix ``Kmat`` over the N mixture then M component points, and
``u_λ = [λ/N·1_N ; (1−λ)/M·1_M]``, d(λ) = min_{v in the simplex} ||u_λ − v||_Kmat is the RKHS
distance of λF + (1−λ)H to the distributions on the sample. d is 0 up to λ* = 1/(1−κ*) and grows
after; KM bisects for the λ where its slope crosses a threshold ν·||F̂ − Ĥ||: KM1 uses
ν₁ = (0.75·d'(1) + 0.25·||F̂ − Ĥ||)/||F̂ − Ĥ||, KM2 ν₂ = 1/√min(N, M)/||F̂ − Ĥ||.
κ = (λ − 1)/λ.

The simplex-constrained quadratic program is solved as a non-negative least-squares problem on a
low-rank square root of the kernel matrix with the equality Σv = 1 as a heavily weighted row
(Lawson & Hanson's weighting method); the authors call cvxopt's ``coneqp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n, d], [m, d] -> [n, m] squared Euclidean distances (clipped at 0)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


class SimplexProjector:
    """min_v (u − v)ᵀ Kmat (u − v) over the probability simplex, for many u with one Kmat [n, n]."""

    def __init__(self, kmat: np.ndarray, rel_tol: float = 1e-10, weight: float = 1e3) -> None:
        s, vecs = np.linalg.eigh((kmat + kmat.T) / 2.0)
        keep = s > rel_tol * s.max()
        self.root = (vecs[:, keep] * np.sqrt(s[keep])).T  # [r, n]: rootᵀ root ≈ Kmat
        self.weight = weight * float(np.sqrt(s.max()))
        self.n = kmat.shape[0]

    def distance_sq(self, u: np.ndarray) -> float:
        """Squared K-distance from ``u`` [n] (sums to 1, may have negative entries) to the simplex."""
        from scipy.optimize import nnls  # noqa: PLC0415

        a = np.vstack([self.root, np.full((1, self.n), self.weight)])
        b = np.concatenate([self.root @ u, [self.weight]])
        v, _ = nnls(a, b, maxiter=50 * self.n)
        diff = self.root @ (u - v)
        return float(diff @ diff)


def _u(lam: float, n: int, m: int) -> np.ndarray:
    return np.concatenate([np.full(n, lam / n), np.full(m, (1.0 - lam) / m)])


def _best_kernel(mixture: np.ndarray, component: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Gaussian width among median·logspace(-1, 1, 5) maximising ||F̂ − Ĥ||_RKHS; (width, Kmat, dist)."""
    x = np.concatenate([mixture, component])
    d2 = squared_distances(x, x)
    median = float(np.sqrt(np.median(d2)))
    diff = np.concatenate([np.full(len(mixture), 1.0 / len(mixture)), np.full(len(component), -1.0 / len(component))])
    best = None
    for width in np.logspace(-1, 1, 5) * median:
        kmat = np.exp(-d2 / (2.0 * width**2))
        dist = float(np.sqrt(max(diff @ kmat @ diff, 0.0)))
        if best is None or dist > best[2]:
            best = (float(width), kmat, dist)
    return best


@dataclass(frozen=True)
class MixtureProportion:
    km1: float
    km2: float
    kernel_width: float
    rkhs_distance: float


def kernel_mixture_proportion(mixture: np.ndarray, component: np.ndarray, epsilon: float = 0.04,
                              lambda_upper: float = 8.0) -> MixtureProportion:
    """KM1 and KM2 estimates of κ* in F = κ*·H + (1−κ*)·G from samples ``mixture`` [N, d] ~ F and
    ``component`` [M, d] ~ H. Bisection on λ in [1, ``lambda_upper``] to width ``epsilon``."""
    mixture = np.asarray(mixture, np.float64).reshape(len(mixture), -1)
    component = np.asarray(component, np.float64).reshape(len(component), -1)
    n, m = len(mixture), len(component)
    if n < 2 or m < 2:
        raise ValueError(f"KM needs >= 2 mixture and >= 2 component points, got {n} and {m}")
    width, kmat, dist = _best_kernel(mixture, component)
    if dist <= 0:
        raise ValueError("mixture and component samples are identical in the RKHS; κ* is not identifiable")
    proj = SimplexProjector(kmat)

    def d(lam: float) -> float:
        return float(np.sqrt(max(proj.distance_sq(_u(lam, n, m)), 0.0)))

    begin_slope = (d(1.05) - d(1.0)) / 0.05

    def bisect(nu: float) -> float:
        lo, hi = 1.0, lambda_upper
        while hi - lo > epsilon:
            mid = (lo + hi) / 2.0
            slope = (d(mid + epsilon / 2.0) - d(mid)) * 2.0 / epsilon
            lo, hi = (lo, mid) if slope > nu * dist else (mid, hi)
        return (lo + hi) / 2.0

    nu1 = ((1 - 0.25) * begin_slope + 0.25 * dist) / dist
    nu2 = 1.0 / np.sqrt(min(n, m)) / dist
    if nu2 > 0.9:
        nu2 = nu1
    lam1, lam2 = bisect(nu1), bisect(nu2)
    return MixtureProportion(km1=(lam1 - 1) / lam1, km2=(lam2 - 1) / lam2, kernel_width=width, rkhs_distance=dist)


def svm_scores(x_labeled: np.ndarray, x_unlabeled: np.ndarray, folds: int = 5, seed: int = 2020
               ) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted RBF-SVM decision scores (labelled +1 vs unlabelled −1): ([n_l], [n_u]).
    Each fold's γ = 1 / median squared distance of its training points (``KernelPriorEstimator``)."""
    from sklearn.model_selection import KFold  # noqa: PLC0415
    from sklearn.svm import SVC  # noqa: PLC0415

    x = np.concatenate([x_labeled, x_unlabeled]).reshape(len(x_labeled) + len(x_unlabeled), -1)
    y = np.concatenate([np.ones(len(x_labeled)), -np.ones(len(x_unlabeled))])
    score = np.zeros(len(x))
    for tr, te in KFold(n_splits=folds, shuffle=True, random_state=seed).split(x):
        gamma = 1.0 / np.median(squared_distances(x[tr], x[tr]))
        score[te] = SVC(kernel="rbf", gamma=gamma).fit(x[tr], y[tr]).decision_function(x[te])
    return score[: len(x_labeled)], score[len(x_labeled):]


def estimate_known_prior(x_labeled: np.ndarray, x_unlabeled: np.ndarray, folds: int = 5, seed: int = 2020
                         ) -> MixtureProportion:
    """θ̂ = share of the known classes in the unlabelled data: KM on cross-fitted SVM scores, with the
    unlabelled scores as the mixture and the labelled ones as the component (the authors take KM1)."""
    s_l, s_u = svm_scores(x_labeled, x_unlabeled, folds, seed)
    return kernel_mixture_proportion(s_u[:, None], s_l[:, None])
