"""The claim lines of the multi-label figures are computed from per-seed results, in the right
direction for lower-is-better metrics."""

from __future__ import annotations

import pandas as pd

from repro.studies.multilabel.figures import paired_claim


def _seeds(a_vals, b_vals, metric):
    rows = [{"benchmark": "b", "model": "m", "method": meth, "seed": s, "metric": metric, "value": v}
            for meth, vals in (("a", a_vals), ("c", b_vals)) for s, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_paired_claim_higher_is_better():
    (line,) = paired_claim(_seeds([0.7, 0.8, 0.9], [0.6, 0.8, 0.7], "average_precision"), "a", "c",
                           "average_precision", "a beats c")
    # differences 0.1, 0, 0.2: mean 0.1, standard error 0.1 / sqrt(3) = 0.0577, t = 1.73, df = 2, p = 0.23
    assert line.startswith("a beats c (b, m): not shown (p ≥ 0.05), Δ average_precision = +0.1000 ± 0.0577")
    assert line.endswith("paired t = 1.73, df = 2.0, p = 0.23, n = 3 paired)")
    (line,) = paired_claim(_seeds([0.7, 0.8, 0.9], [0.5, 0.62, 0.71], "average_precision"), "a", "c",
                           "average_precision", "a beats c")
    assert line.startswith("a beats c (b, m): yes, Δ average_precision = +0.1900 ± 0.0058")
    assert "a better on 3 of 3 seeds" in line


def test_paired_claim_lower_is_better():
    (line,) = paired_claim(_seeds([0.3, 0.2], [0.2, 0.1], "hamming_loss"), "a", "c", "hamming_loss", "a beats c")
    assert line.startswith("a beats c (b, m): no, Δ hamming_loss = +0.1000 ± 0.0000")
    assert "a better on 0 of 2 seeds" in line
    (missing,) = paired_claim(_seeds([0.3], [0.2], "hamming_loss"), "a", "zz", "hamming_loss", "x")
    assert "not measured" in missing
