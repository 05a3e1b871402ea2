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


def test_identical_runs_state_t_zero_and_an_exact_difference_an_infinite_t():
    assert paired(np.zeros(4)).describe() == "paired t = 0.00, df = 3.0, p = 1, n = 4 paired"
    assert paired(np.full(4, -0.1)).describe().startswith("paired t = -inf, df = 3.0, p = 0")


@pytest.mark.parametrize("kind", ["Welch", "paired"])
def test_at_three_seeds_a_real_difference_is_found_and_none_is_invented(kind):
    """On synthetic seed samples with known means (n = 3 a side, 2,000 draws): a difference of 6 σ is
    called in nearly every draw, equal means are called in about α of them (the test's size)."""
    rng = np.random.default_rng(0)

    def called(delta: float) -> float:
        hits = 0
        for _ in range(2000):
            a, b = rng.normal(delta, 1.0, 3), rng.normal(0.0, 1.0, 3)
            t = welch(_row(a), _row(b)) if kind == "Welch" else paired(a - b)
            hits += verdict(t) in ("yes", "no")
        return hits / 2000

    assert called(6.0) > 0.9
    assert 0.03 < called(0.0) < 0.07


def test_the_detectable_difference_is_found_with_80_percent_power():
    """Paired seeds (n = 5, σ = 1): a true difference of ``detectable_difference`` is called "yes" in
    about 80 % of 2,000 synthetic draws, half of it far less often; at large df it is (z_.975 + z_.8) · SE."""
    from repro.figures.claims import detectable_difference

    rng = np.random.default_rng(1)
    d = detectable_difference(1 / np.sqrt(5), 4)

    def called(delta: float) -> float:
        return np.mean([verdict(paired(rng.normal(delta, 1.0, 5))) == "yes" for _ in range(2000)])

    assert 0.76 < called(d) < 0.84 and called(d / 2) < 0.4
    assert detectable_difference(0.5, 1e6) == pytest.approx(0.5 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)),
                                                           rel=1e-3)


def test_claim_lines_parse_back_into_table_rows(tmp_path):
    from repro.figures.claims import (
        BEGIN,
        END,
        claim_line,
        detectable_difference,
        parse_claims,
        replace_claims_block,
    )

    a, b = _row([0.9, 0.92, 0.91]), _row([0.8, 0.82, 0.79])
    lines = [claim_line("digits: A beats B", welch(a, b), scale=100, digits=1, unit=" points", paper="+3.0 (Table 2)"),
             claim_line("B below A", paired(np.array([0.1, 0.12, 0.09])), higher_is_better=False,
                        label="Δ acc = ", detail="mean ± standard error; A better on 3 of 3 seeds"),
             claim_line("one seed", welch(_row([0.5]), b))]
    page = "# T\n\n" + "\n".join(f"- claim: {x}" if i else f"- {x}" for i, x in enumerate(lines)) + "\n\n| a |\n|---|\n"
    rows = parse_claims(page)
    assert [r["verdict"] for r in rows] == ["shown", "contradicted", "not shown (one seed)"]
    assert rows[0]["claim"] == "digits: A beats B" and rows[0]["paper"] == "+3.0 (Table 2)"
    assert rows[0]["ours"] == "+10.7 ± 1.1 points" and rows[0]["n"] == "3 vs 3" and rows[0]["test"].startswith("Welch t = ")
    assert rows[1]["paper"] == "—" and rows[1]["n"] == "3 paired" and rows[1]["ours"].startswith("Δ acc = +0.10")
    assert rows[2]["n"] == "1 vs 3" and rows[2]["test"] == "Welch t-test undefined (n = 1 vs 3)"
    assert rows[0]["detectable"].endswith(" points") and rows[2]["detectable"] == "—"
    df = float(rows[0]["test"].split("df = ")[1].split(",")[0])
    assert float(rows[0]["detectable"].split()[0]) == pytest.approx(detectable_difference(1.1, df), abs=0.05)
    (tmp_path / "main_table.md").write_text(page)
    readme = f"# Study\n\n{BEGIN}\nstale\n{END}\n\nafter\n"
    out = replace_claims_block(readme, tmp_path)
    assert out.endswith(f"{END}\n\nafter\n") and "stale" not in out and out.count("| digits: A beats B |") == 1
    assert replace_claims_block(out, tmp_path) == out
    with pytest.raises(ValueError, match="needs one claims block"):
        replace_claims_block("# no markers\n", tmp_path, "x/README.md")


def test_every_generated_claims_table_matches_its_evidence_folder(monkeypatch):
    """A README's claims block is exactly what `repro claims-table` makes from the folder it names:
    no hand edits, no stale numbers after the evidence figures change."""
    import re
    from pathlib import Path

    from repro.figures.claims import BEGIN, replace_claims_block

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # the block names its folder relative to the repository root
    readmes = [p for p in sorted((root / "src" / "repro" / "studies").glob("*/README.md")) if BEGIN in p.read_text()]
    assert {p.parent.name for p in readmes} >= {"nrpr", "oocpll", "mcc", "camel"}
    # a supplementary evidence run's own README (e.g. HGPO at 20 iterations, GraphGPO on its runs)
    readmes += [p for p in sorted((root / "paper_figures" / "evidence").rglob("README.md")) if BEGIN in p.read_text()]
    ev = root / "paper_figures" / "evidence"
    assert {ev / "hgpo-20it" / "README.md", ev / "hgpo-20it" / "graphgpo" / "README.md"} <= set(readmes)
    for p in readmes:
        text = p.read_text()
        folder = re.search(r"Generated from `([^`]+)`", text.split(BEGIN, 1)[1])[1]
        assert replace_claims_block(text, Path(folder), str(p)) == text, f"{p}: rerun repro claims-table"
