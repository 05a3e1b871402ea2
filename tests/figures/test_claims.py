"""Claim verdicts: Welch's t-test for unpaired seeds, the paired t-test for shared seeds; 'yes'/'no'
only at p < 0.05, with t, df, p and n stated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from repro.figures.claims import paired, verdict, welch


def _row(values) -> pd.Series:
    v = np.asarray(values, float)
    return pd.Series({"mean": v.mean(), "std": v.std(ddof=1) if len(v) > 1 else 0.0, "n_seeds": len(v)})


def test_welch_matches_scipy_on_the_samples():
    a, b = [0.91, 0.88, 0.93, 0.90, 0.89], [0.85, 0.84, 0.80, 0.83]
    t = welch(_row(a), _row(b))
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert t.p == pytest.approx(ref.pvalue, rel=1e-9) and t.delta / t.se == pytest.approx(ref.statistic)
    assert t.df == pytest.approx(ref.df) and t.n == "5 vs 4"
    assert verdict(t) == "yes" and verdict(t, higher_is_better=False) == "no"
    assert "Welch t = " in t.describe() and f"df = {ref.df:.1f}" in t.describe() and "n = 5 vs 4" in t.describe()


def test_paired_matches_scipy():
    a, b = np.array([0.9, 0.8, 0.85, 0.7]), np.array([0.88, 0.79, 0.80, 0.71])
    t = paired(a - b)
    ref = stats.ttest_rel(a, b)
    assert t.p == pytest.approx(ref.pvalue, rel=1e-9) and t.df == 3 and t.n == "4 paired"


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([0.5, 0.6, 0.55], [0.52, 0.58, 0.57], "not shown (p ≥ 0.05)"),  # a spread as large as the effect
    ([0.9], [0.1, 0.2], "not shown (one seed)"),
    ([0.5, 0.5], [0.4, 0.4], "yes"),                                 # no spread: the difference is exact
    ([0.5, 0.5], [0.5, 0.5], "not shown (p ≥ 0.05)"),
])
def test_verdicts(a, b, expected):
    assert verdict(welch(_row(a), _row(b))) == expected
