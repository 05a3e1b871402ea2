"""MCC: multiple cluster centres as virtual examples for multi-label learning (Shu, Lv, Feng et al.,
arXiv 2004.08113; other-papers.md §9).

What is known from the paper [F]: the real examples are clustered, the cluster centres serve as
virtual examples carrying local label correlations and label importance, and a regulariser
following the cluster assumption ties real examples to virtual ones and makes the learned function
locally smooth. The objective is **reconstructed** [I] (§9.2) and every choice is a parameter:

* clustering (``clustering``): ``per_label`` runs k-means on the positive examples of each label
  (``n_clusters`` centres per label, as LIFT does), ``global`` runs one k-means on all examples
  (``n_clusters`` centres in all);
* virtual labels: centre k gets ybar_k = 2 * mean(y_i of its members) - 1 in [-1, 1] (real-valued:
  label importance within the cluster);
* model f(x) = phi(x) W, linear (phi = [z, 1]) or kernel (phi = k(., B) over the basis
  B = [training inputs; centres], regulariser tr(W^T K_BB W)) per the model spec;
* objective (Eq. R1, §9.2), targets T = 2Y - 1::

    min_W ||Phi_X W - T||^2 + lambda1 ||Phi_C W - Ybar||^2
          + lambda2 sum_{(i,k)} ||phi(x_i) W - phi(c_k) W||^2 + lambda3 tr(W^T R W)

  where (i, k) runs over the memberships (example i in cluster k; per-label clustering gives one
  membership per positive label of i). ``regulariser: pull`` is §9.4's label-side reading of the
  cluster assumption: the λ2 term becomes sum_{(i,k)} ||phi(x_i) W - ybar_k||^2 (real predictions
  pulled toward their cluster's label vector) instead of toward the centre's prediction;
* closed form (Eq. R2)::

    W = (Phi_X^T Phi_X + lambda1 Phi_C^T Phi_C + lambda2 Phi_D^T Phi_D + lambda3 R)^-1
        (Phi_X^T T + lambda1 Phi_C^T Ybar + lambda2 Phi_D^T T_D),
    smooth: Phi_D = rows phi(x_i) - phi(c_k), T_D = 0;  pull: Phi_D = rows phi(x_i), T_D = rows ybar_k.

``lambda1 = lambda2 = 0`` is the same least-squares learner without virtual examples (the
ablation baseline ``mcc_novirtual``). Prediction: labels f(x) > 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from repro.classic.family import Fitted
from repro.registry import LEARNERS
from repro.studies.multilabel.features import (
    design,
    fit_scaler,
    linear_features,
    mean_distance,
    rbf,
    sign_labels,
    sq_dists,
)


def kmeans(Z: np.ndarray, k: int, rng: np.random.Generator, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding. Z [n, d] -> (centres [k, d], assignment int[n]).

    A cluster that empties keeps its previous centre. ``k`` is capped at n.
    """
    n = len(Z)
    k = min(int(k), n)
    C = np.empty((k, Z.shape[1]))
    C[0] = Z[rng.integers(n)]
    d2 = sq_dists(Z, C[:1])[:, 0]
    for c in range(1, k):                                   # k-means++: sample far points
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        C[c] = Z[rng.choice(n, p=p)]
        d2 = np.minimum(d2, sq_dists(Z, C[c:c + 1])[:, 0])
    assign = np.full(n, -1)
    for _ in range(iters):
        new = np.argmin(sq_dists(Z, C), axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(C)
        np.add.at(sums, assign, Z)
        C = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], C)
    return C, assign


def virtual_examples(Z: np.ndarray, Y: np.ndarray, clustering: str, n_clusters: int, rng: np.random.Generator,
                     iters: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cluster centres and their labels, and the example-centre memberships.

    Z [n, d] inputs, Y {0,1}[n, q]. Returns (C [m, d], Ybar [m, q] in [-1, 1], member int[r],
    centre int[r]): membership r ties example ``member[r]`` to centre ``centre[r]``.
    """
    if clustering == "global":
        groups = [np.arange(len(Z))]
    else:  # per label: the positives of each label (labels without positives add nothing)
        groups = [np.flatnonzero(Y[:, j]) for j in range(Y.shape[1])]
    Cs, Ybars, members, centres = [], [], [], []
    m = 0
    for idx in groups:
        if len(idx) == 0:
            continue
        C, a = kmeans(Z[idx], n_clusters, rng, iters)
        counts = np.bincount(a, minlength=len(C))
        ysum = np.zeros((len(C), Y.shape[1]))
        np.add.at(ysum, a, Y[idx])
        keep = counts > 0
        remap = np.cumsum(keep) - 1                      # drop empty clusters
        Cs.append(C[keep])
        Ybars.append(sign_labels(ysum[keep] / counts[keep, None]))
        members.append(idx)
        centres.append(m + remap[a])
        m += int(keep.sum())
    return np.vstack(Cs), np.vstack(Ybars), np.concatenate(members), np.concatenate(centres)


def mcc_solve(PX: np.ndarray, T: np.ndarray, PC: np.ndarray, Ybar: np.ndarray, PD: np.ndarray, TD: np.ndarray,
              R: np.ndarray, lambda1: float, lambda2: float, lambda3: float) -> np.ndarray:
    """Closed form Eq. R2. PX [n, p], T [n, q], PC [m, p], Ybar [m, q], PD [r, p], TD [r, q],
    R [p, p] -> W [p, q]."""
    A = PX.T @ PX + lambda1 * PC.T @ PC + lambda2 * PD.T @ PD + lambda3 * R
    return np.linalg.solve(0.5 * (A + A.T), PX.T @ T + lambda1 * PC.T @ Ybar + lambda2 * PD.T @ TD)


def mcc_objective(W, PX, T, PC, Ybar, PD, TD, R, lambda1, lambda2, lambda3) -> float:
    """Value of Eq. R1 at W (for the train log and the tests)."""
    return float(np.sum((PX @ W - T) ** 2) + lambda1 * np.sum((PC @ W - Ybar) ** 2)
                 + lambda2 * np.sum((PD @ W - TD) ** 2) + lambda3 * np.sum(W * (R @ W)))


@dataclass(frozen=True)
class MCCParams:
    clustering: Literal["per_label", "global"] = "per_label"  # k-means per label on its positives, or once
    # the lambda2 term (§9.4, both [I]): members' predictions toward their centre's (smoothness) or
    # toward the centre's label vector
    regulariser: Literal["smooth", "pull"] = "smooth"
    n_clusters: int = 5       # centres per label (per_label) or in all (global) [I]
    lambda1: float = 1.0      # weight of the virtual examples' fit [I]
    lambda2: float = 0.1      # weight of the smoothness term between members and centres [I]
    lambda3: float = 1.0      # ridge weight [I]
    kmeans_iters: int = 50    # Lloyd iterations (stops earlier at a fixed point)

    def __post_init__(self) -> None:
        if self.n_clusters < 1 or self.kmeans_iters < 1:
            raise ValueError(f"n_clusters and kmeans_iters must be >= 1, got {self.n_clusters}, {self.kmeans_iters}")
        if min(self.lambda1, self.lambda2) < 0 or self.lambda3 <= 0:
            raise ValueError(f"need lambda1, lambda2 >= 0 and lambda3 > 0, got "
                             f"{self.lambda1}, {self.lambda2}, {self.lambda3}")


class MCC:
    """Registered as learner ``mcc``."""

    Params = MCCParams

    def fit(self, data, arch, params: MCCParams, cfg, seed, log_row) -> Fitted:
        X, Y = data.split("train")
        sc = fit_scaler(X, arch)
        Z, T = sc(X), sign_labels(Y)
        use_virtual = params.lambda1 > 0 or params.lambda2 > 0
        if use_virtual:
            C, Ybar, member, centre = virtual_examples(Z, np.asarray(Y), params.clustering, params.n_clusters,
                                                       np.random.default_rng([seed, 2004]), params.kmeans_iters)
        else:  # the baseline: no clustering at all
            C, Ybar = np.zeros((0, Z.shape[1])), np.zeros((0, Y.shape[1]))
            member = centre = np.zeros(0, int)
        state = {"mu": sc.mu, "sd": sc.sd}
        if arch["kind"] == "linear":
            PX, PC = linear_features(Z), linear_features(C)
            R = np.eye(PX.shape[1])
        else:
            B = np.vstack([Z, C])                            # basis: training inputs and centres
            sigma = float(arch.get("width_scale", 1.0)) * mean_distance(Z)
            PX, PC, R = rbf(Z, B, sigma), rbf(C, B, sigma), rbf(B, B, sigma)
            # deviation: K_BB + 1e-8 I keeps the system solvable when the basis repeats a point
            # (a one-member cluster's centre is that example); 1e-8 is far below any lambda3 * K
            R[np.diag_indices_from(R)] += 1e-8
            state.update(Z_basis=B, sigma=np.array(sigma))
        if params.regulariser == "smooth":
            PD, TD = PX[member] - PC[centre], np.zeros((len(member), T.shape[1]))
        else:
            PD, TD = PX[member], Ybar[centre]
        lams = (params.lambda1, params.lambda2, params.lambda3)
        W = mcc_solve(PX, T, PC, Ybar, PD, TD, R, *lams)
        obj = mcc_objective(W, PX, T, PC, Ybar, PD, TD, R, *lams)
        log_row({"epoch": 1, "objective": obj, "n_virtual": float(len(C)), "n_memberships": float(len(member))})
        return Fitted({**state, "W": W, "centres": C, "centre_labels": Ybar},
                      {"n_virtual": int(len(C)), "objective": obj})

    def predict(self, fitted: Fitted, X, arch, params):
        scores = design(fitted.arrays, X, arch) @ fitted.arrays["W"]
        return scores, (scores > 0).astype(np.int8)


LEARNERS.register("mcc")(MCC())
