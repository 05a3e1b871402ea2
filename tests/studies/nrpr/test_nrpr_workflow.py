"""The real Snakemake workflow for the nrpr study alone, on its embedded config shrunk to two seeds
and a few epochs: fetch -> model -> train -> evaluate -> summarize -> figures."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
from smokerun import snakemake  # noqa: E402  (tests/workflow/smokerun.py, the shared runner)

pytestmark = pytest.mark.workflow


def test_nrpr_embedded_workflow(root, tmp_path):
    wd = tmp_path / "wd"
    shutil.copytree(root / "config", wd / "config")
    shutil.copytree(root / "paper_figures" / "reported", wd / "paper_figures" / "reported")
    study_file = wd / "config" / "studies" / "nrpr.yaml"
    study = yaml.safe_load(study_file.read_text())
    emb = study["scales"]["embedded"]
    emb["seeds"] = [0, 1]  # two seeds: the figures' ± and claim lines need more than one
    emb["train"]["epochs"] = 40  # enough for r to go negative without the penalty
    study_file.write_text(yaml.safe_dump(study))
    snakemake(root, wd, "--cores", "2", "--config", "studies=[nrpr]")

    methods = [m for m, spec in study["methods"].items() if not spec.get("ablation")]
    for method in methods:
        for seed in (0, 1):
            run = wd / "results/embedded/nrpr/optdigits/nrpr-linear" / method / f"seed{seed}"
            ev = json.loads((run / "eval.json").read_text())
            metrics = ev["splits"]["test"]["metrics"]
            assert set(metrics) == {"accuracy", "macro_f1", "macro_auc_ovr"}
            assert all(0 <= v <= 1 for v in metrics.values())
            log = pd.read_csv(run / "train_log.csv")
            assert len(log) == 40 and "train/negative_risk_frac" in log
    summary = pd.read_csv(wd / "results/embedded/nrpr/summary.csv")
    assert set(summary.method) == set(methods) and (summary.n_seeds == 2).all()
    out = wd / "paper_figures/embedded/nrpr"
    table = pd.read_csv(out / "main_table.csv")
    assert set(table.method) == set(methods)
    acc = summary[(summary.method == "ure") & (summary.metric == "accuracy")]["mean"].iloc[0]
    assert table.loc[table.method == "ure", "Accuracy reproduced"].iloc[0].startswith(f"{100 * acc:.2f}")
    md = (out / "main_table.md").read_text()
    assert "the risk penalty (GCE, true θ) improves Accuracy (optdigits, nrpr-linear):" in md
    assert "n = 2 paired" in md  # the methods of one seed share its split: a paired test
    neg = pd.read_csv(out / "negative_risk.csv")
    assert set(neg.method) == set(methods) and (neg.epochs == 40).all()
    assert "makes r negative less often:" in (out / "negative_risk.md").read_text()
    for fig in ("main_table", "negative_risk"):
        assert (out / f"{fig}.png").stat().st_size > 0
