"""The real Snakemake workflow for camel only, on the real embedded config shrunk to two seeds, a
smaller generated dataset and 2-fold CV over two candidates (and the paper-scale dry run)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mcc"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
from smokerun import snakemake  # noqa: E402  (tests/workflow/smokerun.py, the shared runner)
from test_mcc_workflow import check_outputs, shrink_multilabel  # noqa: E402  (the shared shrink)

pytestmark = pytest.mark.workflow
STUDY = "camel"


def test_camel_embedded_workflow(root, tmp_path):
    data = shrink_multilabel(root, tmp_path, STUDY)
    snakemake(root, tmp_path, "--cores", "2", "--config", f"studies=[{STUDY}]")
    check_outputs(tmp_path, STUDY, data, data["figures"])
    table = pd.read_csv(tmp_path / "paper_figures/embedded/camel/main_table.csv")
    rep = table[table.source == "reported"]
    assert set(rep.benchmark) == {"image", "yeast", "scene", "enron"}
    assert rep.loc[rep.benchmark == "yeast", "Avg. precision↑"].iloc[0] == "0.775 ± 0.013"
    assert list(table[table.source == "reproduced"].method) == ["camel", "camel_alpha0", "br", "mlknn"]
    md = (tmp_path / "paper_figures/embedded/camel/main_table.md").read_text()
    assert "claim: CAMEL beats BR on average precision (synthetic, ml-rbf): " in md
    assert "claim: CAMEL beats ML-kNN on average precision (synthetic, ml-rbf): " in md
    conv = pd.read_csv(tmp_path / "paper_figures/embedded/camel/convergence.csv")
    assert set(conv.method) == {"camel", "camel_alpha0"} and (conv.relative_mean <= 1 + 1e-9).all()
    assert "objective non-increasing in every run: yes (4 runs)" in (
        tmp_path / "paper_figures/embedded/camel/convergence.md").read_text()


def test_camel_paper_dry_run_lists_the_mulan_runs(root, tmp_path):
    shutil.copytree(root / "config", tmp_path / "config")
    shutil.copytree(root / "paper_figures" / "reported", tmp_path / "paper_figures" / "reported")
    proc = snakemake(root, tmp_path, "-n", "--config", f"studies=[{STUDY}]", "--configfile",
                     str(tmp_path / "config" / "paper.yaml"))
    for bench in ("image", "yeast", "scene", "enron"):
        for method in ("camel", "camel_alpha0", "br", "mlknn"):
            assert f"results/paper/camel/{bench}/ml-rbf/{method}/seed0/eval.json" in proc.stdout
