"""The generalised unbiased risk estimator for learning with augmented classes and NRPR's
risk-penalty regularisation (Shu, He, Wang, Wei, Xiang, Feng, AAAI 2023; other-papers.md §1.1-1.2).

Notation: K known classes ``0..K-1``; the augmented class is output ``K`` (the model has K+1
outputs); θ = share of known classes in the unlabelled (test-distribution) data.

    R̂(f) = θ·Ê_L[ℓ(f(x), y)] + ( Ê_U[ℓ(f(x), K)] − θ·Ê_L[ℓ(f(x), K)] )          (generalised URE)
                                  \\______________ r ______________/

r estimates (1−θ)·E_ac[ℓ(f(x), K)] >= 0 but turns negative on flexible models. NRPR minimises
R̂ when r >= 0 and R̂ + λ·(−r)^t otherwise (the authors' ``algorithms.py``).

Every loss here is a per-class loss matrix ``L[n, K+1]`` with ``L[i, k] = ℓ(f(x_i), k)``, so the
three expectations are column gathers and means (no loop over examples or classes).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from repro.registry import Registry

#: loss name -> fn(logits [n, K+1], q) -> per-class losses [n, K+1]
LOSSES = Registry("augmented-class loss")


@LOSSES.register("ce")
def ce_matrix(logits: torch.Tensor, q: float) -> torch.Tensor:
    """Cross-entropy ℓ(f, k) = −log softmax(f)_k. [n, K+1] -> [n, K+1]"""
    return -F.log_softmax(logits, dim=1)


@LOSSES.register("gce")
def gce_matrix(logits: torch.Tensor, q: float) -> torch.Tensor:
    """Generalised cross-entropy (Zhang & Sabuncu 2018) ℓ(f, k) = (1 − p_k^q)/q, computed as
    −expm1(q·log p_k)/q from the log-softmax: no ``p**q`` of an underflowed p (NaN gradients), and
    no cancellation near p_k = 1. [n, K+1] -> [n, K+1]

    The authors' ``utils_loss.gce_loss`` computes Σ_k (1 − (−log p_k)^q·Y_k)/q instead, which
    decreases as the cross-entropy grows; it is treated as a porting bug (other-papers.md §1.2)."""
    if not 0 < q <= 1:
        raise ValueError(f"GCE needs 0 < q <= 1, got q={q}")
    return -torch.expm1(q * F.log_softmax(logits, dim=1)) / q


@LOSSES.register("ovr_logistic")
def ovr_logistic_matrix(logits: torch.Tensor, q: float) -> torch.Tensor:
    """One-vs-rest logistic loss (EULAC's loss family, Zhang, Zhao & Zhou, NeurIPS 2019):
    ℓ(f, k) = ψ(f_k) + Σ_{j≠k} ψ(−f_j) with ψ(z) = log(1 + e^{−z}), i.e.
    Σ_j softplus(f_j) − f_k (ψ(z) − ψ(−z) = −z). [n, K+1] -> [n, K+1]"""
    return F.softplus(logits).sum(1, keepdim=True) - logits


def lac_risk(logits_l: torch.Tensor, y_l: torch.Tensor, logits_u: torch.Tensor, theta: float,
             loss: Callable[[torch.Tensor, float], torch.Tensor], q: float = 0.0,
             lam: float = 0.0, t: float = 1.0) -> dict[str, torch.Tensor]:
    """The generalised URE and its NRPR penalty on one batch.

    logits_l [n_l, K+1] and int labels y_l [n_l] (values < K) of the labelled rows; logits_u
    [n_u, K+1] of the unlabelled rows. Returns scalars: ``pos`` = θ·Ê_L[ℓ(f, y)], ``neg`` =
    θ·Ê_L[ℓ(f, K)], ``unl`` = Ê_U[ℓ(f, K)], ``r`` = unl − neg, ``ure`` = pos + r and
    ``objective`` = ure + λ·(−r)^t when r < 0 (else ure); λ = 0 is the plain URE. An empty part
    of a mini-batch contributes 0 to its terms.
    """
    aug = logits_l.shape[1] - 1
    if len(logits_l):
        lmat = loss(logits_l, q)  # [n_l, K+1]
        pos = theta * lmat.gather(1, y_l.long()[:, None]).mean()
        neg = theta * lmat[:, aug].mean()
    else:
        pos = neg = logits_l.new_zeros(())
    unl = loss(logits_u, q)[:, aug].mean() if len(logits_u) else logits_u.new_zeros(())
    r = unl - neg
    ure = pos + r
    penalty = lam * torch.clamp(-r, min=0.0) ** t if lam > 0 else ure.new_zeros(())
    objective = ure + penalty if bool(r < 0) else ure
    return {"pos": pos, "neg": neg, "unl": unl, "r": r, "ure": ure, "penalty": penalty * bool(r < 0),
            "objective": objective}
