"""A paper's claim stated as measured, the same way in every study's tables.

The verdict is "yes" or "no" only when the difference is at least two standard errors from zero,
else "not shown" (within noise): one seed, or a spread as large as the effect, shows nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def verdict(delta: float, se: float, higher_is_better: bool = True) -> str:
    """"yes" (better by >= 2 standard errors), "no" (worse by as much), else "not shown"."""
    if not np.isfinite(se):
        return "not shown (one seed)"
    if delta == 0 or abs(delta) < 2 * se:
        return "not shown (within 2 standard errors)"
    return "yes" if (delta > 0) == higher_is_better else "no"


def mean_difference(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """(mean_a - mean_b, its standard error from the two seed spreads, seeds) from two rows of
    ``summary.csv`` (``mean``, ``std``, ``n_seeds``); the standard error is NaN with one seed."""
    n = int(min(a["n_seeds"], b["n_seeds"]))
    se = float(np.sqrt(a["std"] ** 2 / a["n_seeds"] + b["std"] ** 2 / b["n_seeds"])) if n > 1 else float("nan")
    return float(a["mean"] - b["mean"]), se, n


def paired_difference(d: np.ndarray) -> tuple[float, float, int]:
    """(mean, standard error, n) of per-seed differences ``d`` [n] (seeds both methods ran)."""
    d = np.asarray(d, float)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se, len(d)
