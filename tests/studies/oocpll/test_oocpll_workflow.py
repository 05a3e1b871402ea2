"""The real Snakemake workflow for oocpll only, on the real embedded config shrunk to two seeds and a
short schedule (dry runs of both scales included)."""

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


def _workdir(root, wd):
    shutil.copytree(root / "config", wd / "config")
    shutil.copytree(root / "paper_figures" / "reported", wd / "paper_figures" / "reported")
    path = wd / "config" / "studies" / "oocpll.yaml"
    study = yaml.safe_load(path.read_text())
    emb = study["scales"]["embedded"]
    emb["seeds"] = [0, 1]                       # two seeds: the tables show a spread
    emb["train"]["epochs"] = 20                 # 60 in the real config; 8 of them warm-up here
    study["benchmarks"]["digits"]["overrides"]["embedded"]["method_params"]["oocpll"]["warmup"] = 8
    path.write_text(yaml.safe_dump(study))


def test_paper_dag_lists_the_grid(root, tmp_path):
    _workdir(root, tmp_path)
    proc = snakemake(root, tmp_path, "-n", "--quiet", "rules", "--configfile", str(tmp_path / "config" / "paper.yaml"),
                     "--config", "studies=[oocpll]")
    out = proc.stdout + proc.stderr
    for rule, count in (("fetch_dataset", 18), ("train", 54), ("evaluate", 54), ("plot_figure", 2)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), out[-3000:]


def test_embedded_run(root, tmp_path):
    _workdir(root, tmp_path)
    snakemake(root, tmp_path, "--cores", "2", "--config", "studies=[oocpll]")
    res = tmp_path / "results" / "embedded" / "oocpll" / "digits" / "mlp-oocpll-digits"
    for method in ("oocpll", "proden", "cc"):
        for seed in (0, 1):
            ev = json.loads((res / method / f"seed{seed}" / "eval.json").read_text())
            assert 0.0 <= ev["splits"]["test"]["metrics"]["accuracy"] <= 1.0
            log = pd.read_csv(res / method / f"seed{seed}" / "train_log.csv")
            assert len(log) == 20 and "select/precision_closed" in log
    summary = pd.read_csv(tmp_path / "results" / "embedded" / "oocpll" / "summary.csv")
    assert set(summary.method) == {"oocpll", "proden", "cc"} and (summary.n_seeds == 2).all()
    figs = tmp_path / "paper_figures" / "embedded" / "oocpll"
    table = pd.read_csv(figs / "main_table.csv")
    assert list(table.method) == ["oocpll", "proden", "cc"]
    mean = summary[summary.method == "oocpll"]["mean"].iloc[0]
    assert table["test accuracy (%) reproduced"].iloc[0].startswith(f"{100 * mean:.1f} ± ")
    assert "OOC-PLL beats PRODEN on test accuracy" in (figs / "main_table.md").read_text()
    sel = pd.read_csv(figs / "selection_precision.csv")
    assert set(sel.group) == {"normal", "closed", "open"} and set(sel.method) == {"oocpll", "proden", "cc"}
    assert (sel.seeds == 2).all() and 20 in set(sel.epoch)
    assert (figs / "selection_precision.png").stat().st_size > 0
