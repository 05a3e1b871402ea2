"""The real Snakemake workflow for mcc only, on the real embedded config shrunk to two seeds, a
smaller generated dataset and 2-fold CV over two candidates (and the paper-scale dry run)."""

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
STUDY = "mcc"


def shrink_multilabel(root: Path, wd: Path, study: str) -> dict:
    """Copy the real config into ``wd`` and shrink ``study`` (and the generated data); returns it."""
    shutil.copytree(root / "config", wd / "config")
    shutil.copytree(root / "paper_figures" / "reported", wd / "paper_figures" / "reported")
    path = wd / "config" / "studies" / f"{study}.yaml"
    data = yaml.safe_load(path.read_text())
    data["datasets"]["multilabel/embedded"] = {"seed": 0, "n_train": 80, "n_test": 100}  # 200/600 in the real config
    data["scales"]["embedded"]["seeds"] = [0, 1]          # two seeds: the tables show a spread
    for m in data["methods"].values():                    # 2 folds x 2 candidates (real: 5 folds, full grid)
        tr = m.get("train", {}).get("embedded")
        if not tr:                                        # a method without tuning (ML-kNN)
            continue
        key = sorted(tr["cv_grid"])[0]
        tr.update(cv_folds=2, cv_grid={key: tr["cv_grid"][key][:2]})
    path.write_text(yaml.safe_dump(data))
    return data


def check_outputs(wd: Path, study: str, data: dict, figures: list[str]) -> pd.DataFrame:
    methods = [m for m, spec in data["methods"].items() if not spec.get("ablation")]
    model = data["scales"]["embedded"]["models"][0]
    for method in methods:
        for seed in (0, 1):
            e = json.loads((wd / f"results/embedded/{study}/synthetic/{model}/{method}/seed{seed}/eval.json").read_text())
            m = e["splits"]["test"]["metrics"]
            assert set(m) == set(data["scales"]["embedded"]["evaluate"]["metrics"])
            assert 0 <= m["hamming_loss"] <= 1 and 0 < m["average_precision"] <= 1
    s = pd.read_csv(wd / f"results/embedded/{study}/summary.csv")
    assert set(s.method) == set(methods) and (s.n_seeds == 2).all() and set(s.benchmark) == {"synthetic"}
    for fig in figures:
        for ext in ("csv", "md", "png"):
            assert (wd / f"paper_figures/embedded/{study}/{fig}.{ext}").stat().st_size > 0
    return s


def test_mcc_embedded_workflow(root, tmp_path):
    data = shrink_multilabel(root, tmp_path, STUDY)
    snakemake(root, tmp_path, "--cores", "2", "--config", f"studies=[{STUDY}]")
    s = check_outputs(tmp_path, STUDY, data, data["figures"])
    table = pd.read_csv(tmp_path / "paper_figures/embedded/mcc/main_table.csv")
    assert list(table.method) == ["mcc", "mcc_novirtual", "br"]
    ap = s[(s.method == "mcc") & (s.metric == "average_precision")]
    assert table.loc[table.method == "mcc", "Avg. precision↑"].iloc[0].startswith(f"{ap['mean'].iloc[0]:.3f}")
    md = (tmp_path / "paper_figures/embedded/mcc/main_table.md").read_text()
    assert "claim: MCC beats BR on average precision (synthetic, ml-linear): " in md and "n = 2 paired" in md


def test_mcc_paper_dry_run_lists_the_mulan_runs(root, tmp_path):
    shutil.copytree(root / "config", tmp_path / "config")
    shutil.copytree(root / "paper_figures" / "reported", tmp_path / "paper_figures" / "reported")
    proc = snakemake(root, tmp_path, "-n", "--config", f"studies=[{STUDY}]", "--configfile",
                     str(tmp_path / "config" / "paper.yaml"))
    for bench in ("image", "yeast", "scene", "enron"):
        assert f"results/paper/mcc/{bench}/ml-linear/mcc/seed4/eval.json" in proc.stdout
    assert "results/paper/mcc/synthetic" not in proc.stdout
