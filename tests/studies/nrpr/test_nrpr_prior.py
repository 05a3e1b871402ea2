"""The KM mixture-proportion estimator: its simplex QP against a general solver, and KM1 on mixtures
with a known proportion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from repro.studies.nrpr.prior import (SimplexProjector, estimate_known_prior, kernel_mixture_proportion,
                                      squared_distances)


def test_simplex_projection_matches_a_general_solver():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 1))
    kmat = np.exp(-squared_distances(x, x) / (2 * 0.2**2))  # narrow: u is far from the simplex
    u = np.concatenate([np.full(15, 1.6 / 15), np.full(10, -0.6 / 10)])  # sums to 1, negative tail
    ours = SimplexProjector(kmat).distance_sq(u)
    res = minimize(lambda v: (u - v) @ kmat @ (u - v), np.full(25, 1 / 25), jac=lambda v: -2 * kmat @ (u - v),
                   bounds=[(0, None)] * 25, constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    assert res.success
    assert ours == pytest.approx(res.fun, rel=1e-3, abs=1e-7)
    assert ours > 1e-4  # u is off the simplex


def test_distance_is_zero_on_the_simplex():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 2))
    kmat = np.exp(-squared_distances(x, x))
    v = rng.dirichlet(np.ones(20))
    assert SimplexProjector(kmat).distance_sq(v) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("kappa", [0.3, 0.7])
def test_km1_recovers_a_known_proportion(kappa):
    """Mixture F = κ·N(0, 1) + (1 − κ)·N(4, 1), component H = N(0, 1): κ* = κ."""
    rng = np.random.default_rng(2)
    n_mix, n_comp = 1000, 500
    k = int(kappa * n_mix)
    mixture = np.concatenate([rng.normal(0, 1, (k, 1)), rng.normal(4, 1, (n_mix - k, 1))])
    component = rng.normal(0, 1, (n_comp, 1))
    est = kernel_mixture_proportion(mixture, component)
    assert est.km1 == pytest.approx(kappa, abs=0.05)
    assert est.km2 == pytest.approx(kappa, abs=0.08)


def test_known_prior_from_svm_scores():
    """The full θ estimator (cross-fitted SVM scores, then KM1) on separable classes: the
    unlabelled set has 40% known-class points."""
    rng = np.random.default_rng(3)
    known = lambda n: rng.normal(0, 1, (n, 5))  # noqa: E731
    x_l = known(200)
    x_u = np.concatenate([known(160), rng.normal(3, 1, (240, 5))])
    assert estimate_known_prior(x_l, x_u).km1 == pytest.approx(0.4, abs=0.08)


def test_km_rejects_tiny_samples():
    with pytest.raises(ValueError, match="needs >= 2"):
        kernel_mixture_proportion(np.zeros((1, 1)), np.zeros((5, 1)))
