"""A paper's claim stated as measured, the same way in every study's tables.

A claim compares two methods on one metric over seeds. Unpaired runs (each method its own seeds
and data draws) use Welch's t-test on the two seed samples; runs that share seeds and data use the
paired t-test on the per-seed differences. The verdict is "yes" or "no" only when the two-sided p
is below ``ALPHA``; otherwise "not shown" (one seed, or a spread as large as the effect, shows
nothing). Every verdict says the test, its t, degrees of freedom, p and n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05  # two-sided


@dataclass(frozen=True)
class Test:
    """A difference of means (a − b), its standard error and the t-test on it."""

    kind: str       # "Welch" or "paired"
    delta: float
    se: float       # NaN with fewer than two seeds on a side
    df: float       # Welch–Satterthwaite (Welch) or n − 1 (paired); NaN when undefined
    p: float        # two-sided; NaN when undefined
    n: str          # "5 vs 5" (Welch) or "5 paired"

    def describe(self) -> str:
        if not np.isfinite(self.p):
            return f"{self.kind} t-test undefined (n = {self.n})"
        return f"{self.kind} t = {self.delta / self.se if self.se > 0 else np.inf:.2f}, df = {self.df:.1f}, " \
               f"p = {self.p:.2g}, n = {self.n}"


def _p(t: float, df: float) -> float:
    from scipy.stats import t as student  # scipy: only when a figure states a claim

    return float(2 * student.sf(abs(t), df))


def welch(a: pd.Series, b: pd.Series) -> Test:
    """Welch's t-test from two rows of ``summary.csv`` (``mean``, ``std`` (Bessel), ``n_seeds``)."""
    na, nb = int(a["n_seeds"]), int(b["n_seeds"])
    delta = float(a["mean"] - b["mean"])
    n = f"{na} vs {nb}"
    if min(na, nb) < 2:
        return Test("Welch", delta, float("nan"), float("nan"), float("nan"), n)
    va, vb = float(a["std"]) ** 2 / na, float(b["std"]) ** 2 / nb
    se = float(np.sqrt(va + vb))
    if se == 0.0:  # no spread on either side: any difference is exact, none is nothing
        return Test("Welch", delta, 0.0, float(na + nb - 2), 0.0 if delta else 1.0, n)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return Test("Welch", delta, se, float(df), _p(delta / se, df), n)


def paired(d: np.ndarray) -> Test:
    """The paired t-test of per-seed differences ``d`` [n] (seeds both methods ran on the same data)."""
    d = np.asarray(d, float)
    n = len(d)
    if n < 2:
        return Test("paired", float(d.mean()) if n else float("nan"), float("nan"), float("nan"), float("nan"),
                    f"{n} paired")
    se = float(d.std(ddof=1) / np.sqrt(n))
    mean = float(d.mean())
    if se == 0.0:
        return Test("paired", mean, 0.0, float(n - 1), 0.0 if mean else 1.0, f"{n} paired")
    return Test("paired", mean, se, float(n - 1), _p(mean / se, n - 1), f"{n} paired")


def claim_line(what: str, test: Test, *, higher_is_better: bool = True, scale: float = 1.0, digits: int = 2,
               label: str = "", unit: str = "", detail: str = "") -> str:
    """One claim as measured: ``what: verdict, <label>+d ± se<unit> (<detail>; <test>)``, the
    difference (a − b) and its standard error multiplied by ``scale`` (e.g. 100 for points)."""
    spread = f" ± {scale * test.se:.{digits}f}" if np.isfinite(test.se) else ""
    return (f"{what}: {verdict(test, higher_is_better)}, {label}{scale * test.delta:+.{digits}f}{spread}{unit} "
            f"({detail + '; ' if detail else ''}{test.describe()})")


def verdict(test: Test, higher_is_better: bool = True) -> str:
    """"yes" (better, p < ALPHA), "no" (worse, p < ALPHA), else "not shown"."""
    if not np.isfinite(test.p):
        return "not shown (one seed)"
    if test.p >= ALPHA:
        return f"not shown (p ≥ {ALPHA:g})"
    return "yes" if (test.delta > 0) == higher_is_better else "no"
