"""The OOC-PLL figures on hand-made summaries and train logs: numbers and claims come from the inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from repro import plugins, registry

plugins.load_all()


#: per-seed offsets of each method's test accuracy (eval.json): the claims pair the seeds
OFFSETS = {"oocpll": (0.0, -0.01, 0.01), "proden": (0.0, 0.0, 0.0), "cc": (0.01, -0.01, 0.0)}


def _inputs(tmp: Path, oocpll_mean: float) -> tuple[Path, list[Path], Path]:
    means = {"proden": 0.90, "oocpll": oocpll_mean, "cc": 0.88}
    rows = [{"study": "oocpll", "scale": "embedded", "benchmark": "digits", "model": "m", "method": m, "split": "test",
             "temperature": None, "task_type": "all", "metric": "accuracy", "mean": v, "std": 0.01, "n_seeds": 3}
            for m, v in means.items()]
    tmp.mkdir(parents=True, exist_ok=True)
    summary = tmp / "summary.csv"
    pd.DataFrame(rows).to_csv(summary, index=False)
    logs = []
    for method in ("oocpll", "proden", "cc"):
        for seed in range(3):
            p = tmp / "results/embedded/oocpll/digits/m" / method / f"seed{seed}" / "train_log.csv"
            p.parent.mkdir(parents=True)
            warm = [1.0] * 4 + [0.0 if method == "oocpll" else 1.0] * 8
            df = pd.DataFrame({"epoch": range(1, 13), "train/warmup": warm,
                               "eval/test_accuracy": [0.5] * 2 + [0.8 + 0.01 * seed] * 10,
                               "select/precision_normal": 0.9, "select/chance_normal": 0.57,
                               "select/precision_closed": [0.1 * seed] * 12, "select/chance_closed": 0.14,
                               "select/precision_open": 0.2, "select/chance_open": 0.29})
            df.to_csv(p, index=False)
            (p.parent / "eval.json").write_text(json.dumps({
                "benchmark": "digits", "model": "m", "method": method, "seed": seed,
                "splits": {"test": {"metrics": {"accuracy": means[method] + OFFSETS[method][seed]}}}}))
            logs.append(p)
    return summary, logs, Path(__file__).resolve().parents[3] / "paper_figures" / "reported" / "oocpll.csv"


def test_main_table_reports_the_summary_and_checks_the_claims(tmp_path):
    summary, logs, reported = _inputs(tmp_path, 0.95)
    out = tmp_path / "figs"
    out.mkdir()
    registry.FIGURES.get("oocpll/main_table")(summary=summary, train_logs=logs, reported=reported, out_dir=out,
                                              scale="embedded")
    t = pd.read_csv(out / "main_table.csv")
    assert list(t.method) == ["oocpll", "proden", "cc"]
    assert list(t["test accuracy (%) reproduced"]) == ["95.0 ± 1.0", "90.0 ± 1.0", "88.0 ± 1.0"]
    assert set(t["last-10-epoch mean (%) reproduced"]) == {"81.0 ± 1.0"}
    assert set(t["reported (%)"]) == {"n/f"}
    md = (out / "main_table.md").read_text()
    # per-seed differences oocpll - proden: 0.05, 0.04, 0.06: mean 0.05, sd 0.01, t = 8.66, df = 2, p = 0.013
    assert "OOC-PLL beats PRODEN on test accuracy (digits, m): yes, Δ accuracy = +0.0500 ± 0.0058" in md
    assert "paired t = 8.66, df = 2.0, p = 0.013, n = 3 paired" in md
    summary, logs2, _ = _inputs(tmp_path / "worse", 0.85)
    registry.FIGURES.get("oocpll/main_table")(summary=summary, train_logs=logs2, reported=reported, out_dir=out,
                                              scale="embedded")
    assert "OOC-PLL beats PRODEN on test accuracy (digits, m): no, Δ accuracy = -0.0500" in (out / "main_table.md").read_text()


def test_selection_precision_curves(tmp_path):
    summary, logs, reported = _inputs(tmp_path, 0.95)
    out = tmp_path / "figs"
    out.mkdir()
    registry.FIGURES.get("oocpll/selection_precision")(summary=summary, train_logs=logs, reported=reported,
                                                       out_dir=out, scale="embedded")
    t = pd.read_csv(out / "selection_precision.csv")
    closed = t[(t.group == "closed") & (t.method == "oocpll") & (t.epoch == 12)].iloc[0]
    assert closed.precision_mean == 0.1 and closed.precision_std == 0.1 and closed.chance == 0.14 and closed.seeds == 3
    assert {4, 5, 12} <= set(t[t.method == "oocpll"].epoch)  # the warm-up boundary and the last epoch
    md = (out / "selection_precision.md").read_text()
    assert "digits oocpll, closed-set OOC selection above chance at the last epoch (12): no, 0.100" in md
    assert "digits oocpll, normal selection above chance at the last epoch (12): yes, 0.900" in md
    assert (out / "selection_precision.png").stat().st_size > 0
