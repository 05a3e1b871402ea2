"""NRPR's risk: the per-class losses (GCE computed stably), the generalised URE and the penalty."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro.studies.nrpr.risk import LOSSES, ce_matrix, gce_matrix, lac_risk, ovr_logistic_matrix


def test_losses_registered():
    assert LOSSES.names() == ["ce", "gce", "ovr_logistic"]


def test_gce_matches_its_definition_and_is_stable():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    p = torch.softmax(logits, 1)
    q = 0.1
    assert torch.allclose(gce_matrix(logits, q), (1 - p**q) / q, atol=1e-6)
    # q -> 0 recovers the cross-entropy, q = 1 the MAE-like 1 - p
    assert torch.allclose(gce_matrix(logits, 1e-6), ce_matrix(logits, 0.0), atol=1e-4)
    assert torch.allclose(gce_matrix(logits, 1.0), 1 - p, atol=1e-6)
    # extreme logits: p underflows to 0 in float32; the naive p**q has a NaN gradient there
    big = torch.tensor([[0.0, 200.0, -200.0]], requires_grad=True)
    gce_matrix(big, q).sum().backward()
    assert torch.isfinite(big.grad).all()
    assert gce_matrix(big.detach(), q)[0, 2].item() == pytest.approx(1 / q, rel=1e-6)  # p = 0 -> 1/q
    naive = big.detach().clone().requires_grad_(True)
    ((1 - torch.softmax(naive, 1) ** q) / q).sum().backward()
    assert not torch.isfinite(naive.grad).all()  # what the stable form avoids


def test_authors_gce_is_not_a_loss():
    """utils_loss.gce_loss: Σ_k (1 − (−log p_k)^q·Y_k)/q decreases when the true class gets less
    likely, the bug other-papers.md §1.2 notes; our GCE increases."""
    y = torch.tensor([[1.0, 0.0]])

    def authors(logits):
        return ((1 - (-torch.log_softmax(logits, 1)) ** 0.1 * y).sum(1) / 0.1).item()

    good, bad = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    assert authors(bad) < authors(good)
    assert gce_matrix(bad, 0.1)[0, 0] > gce_matrix(good, 0.1)[0, 0]


def test_ovr_logistic_is_the_one_vs_rest_sum():
    logits = torch.tensor([[1.0, -2.0, 0.5]])
    psi = lambda z: math.log1p(math.exp(-z))  # noqa: E731
    f = logits[0].tolist()
    expected = [psi(f[k]) + sum(psi(-f[j]) for j in range(3) if j != k) for k in range(3)]
    assert np.allclose(ovr_logistic_matrix(logits, 0.0)[0].numpy(), expected, atol=1e-6)


def _terms(lam):
    # two labelled rows (classes 0 and 1 of K = 2 known), two unlabelled rows; K+1 = 3 outputs
    logits_l = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    logits_u = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0]], requires_grad=True)
    out = lac_risk(logits_l, torch.tensor([0, 1]), logits_u, 0.5, ce_matrix, 0.0, lam, 1.0)
    return out, logits_l, logits_u


def test_ure_terms_by_hand():
    out, _, _ = _terms(0.0)
    lse = lambda v: math.log(sum(math.exp(x) for x in v))  # noqa: E731
    l_y = [lse([2, 0, 0]) - 2, lse([0, 1, 0]) - 1]  # -log p_y
    l_k_l = [lse([2, 0, 0]), lse([0, 1, 0])]  # -log p_K (logit 0)
    l_k_u = lse([0, 0, 3]) - 3
    assert out["pos"].item() == pytest.approx(0.5 * np.mean(l_y), rel=1e-6)
    assert out["neg"].item() == pytest.approx(0.5 * np.mean(l_k_l), rel=1e-6)
    assert out["unl"].item() == pytest.approx(l_k_u, rel=1e-6)
    r = l_k_u - 0.5 * np.mean(l_k_l)
    assert r < 0  # the unlabelled rows are confidently augmented: the estimate went negative
    assert out["r"].item() == pytest.approx(r, rel=1e-6)
    assert out["objective"].item() == pytest.approx(0.5 * np.mean(l_y) + r, rel=1e-6)


def test_penalty_reverses_the_gradient_of_a_negative_risk_term():
    plain, _, u0 = _terms(0.0)
    pen, _, u1 = _terms(1.2)
    r = plain["r"].item()
    assert pen["objective"].item() == pytest.approx(plain["objective"].item() + 1.2 * (-r), rel=1e-6)
    assert pen["penalty"].item() == pytest.approx(-1.2 * r, rel=1e-6)
    plain["objective"].backward()
    pen["objective"].backward()
    # t = 1: on a negative-risk batch, pos + r + λ(−r) = pos + (1 − λ) r; the unlabelled rows enter
    # only through r, so their gradient is the plain one times (1 − λ) = −0.2
    assert torch.allclose(u1.grad, -0.2 * u0.grad, atol=1e-7)


def test_penalty_inactive_when_risk_term_is_nonnegative():
    logits_l = torch.tensor([[2.0, 0.0, 0.0]])
    logits_u = torch.tensor([[2.0, 0.0, 0.0]])  # unlabelled row looks known: ℓ(·, K) is large
    out = lac_risk(logits_l, torch.tensor([0]), logits_u, 0.5, ce_matrix, 0.0, 1.2, 1.0)
    assert out["r"].item() > 0
    assert out["objective"].item() == pytest.approx(out["ure"].item())
    assert out["penalty"].item() == 0.0


def test_empty_parts_of_a_batch_contribute_zero():
    out = lac_risk(torch.zeros((0, 3)), torch.zeros(0, dtype=torch.long), torch.zeros((2, 3)), 0.5, ce_matrix)
    assert out["pos"].item() == 0.0 and out["neg"].item() == 0.0
    assert out["unl"].item() == pytest.approx(math.log(3))
