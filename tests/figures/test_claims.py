"""Claim verdicts: 'yes'/'no' only beyond two standard errors, computed from the seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repro.figures.claims import mean_difference, paired_difference, verdict


@pytest.mark.parametrize(("delta", "se", "higher", "expected"), [
    (0.05, 0.01, True, "yes"), (-0.05, 0.01, True, "no"), (-0.05, 0.01, False, "yes"),
    (0.015, 0.01, True, "not shown (within 2 standard errors)"), (0.0, 0.0, True, "not shown (within 2 standard errors)"),
    (0.3, float("nan"), True, "not shown (one seed)"), (0.01, 0.0, True, "yes"),
])
def test_verdict(delta, se, higher, expected):
    assert verdict(delta, se, higher) == expected


def test_differences_by_hand():
    a = pd.Series({"mean": 0.9, "std": 0.02, "n_seeds": 4})
    b = pd.Series({"mean": 0.8, "std": 0.04, "n_seeds": 4})
    delta, se, n = mean_difference(a, b)
    assert (round(delta, 10), n) == (0.1, 4) and se == pytest.approx(np.sqrt(0.0004 / 4 + 0.0016 / 4))
    one = a.copy()
    one["n_seeds"] = 1
    assert np.isnan(mean_difference(one, b)[1])
    mean, se, n = paired_difference(np.array([0.1, 0.3, 0.2]))
    assert (round(mean, 10), n) == (0.2, 3) and se == pytest.approx(0.1 / np.sqrt(3))
