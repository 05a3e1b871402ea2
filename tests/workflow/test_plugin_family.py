"""A third trainer family from a plugin outside the package (tests/plugins/repro_toy) runs through
the real workflow: fetch -> model -> train -> evaluate -> summarize -> figure, with no file of
src/repro, workflow/ or the schemas naming it (the plug-in contract, repro.families)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from smokerun import snakemake

pytestmark = pytest.mark.workflow

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _tree(root: Path, wd: Path) -> None:
    (wd / "config" / "studies").mkdir(parents=True)
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg.update(studies=["toy"], seeds=None)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copy(PLUGINS / "toy.yaml", wd / "config" / "studies" / "toy.yaml")
    (wd / "paper_figures" / "reported").mkdir(parents=True)
    (wd / "paper_figures" / "reported" / "toy.csv").write_text(
        "study,table,benchmark,model,method,metric,split,setting,value,std,source,confidence,note\n"
        "toy,Table 1,sine,,last_value,mse,test,,0.1,,made up for the plugin test,none,\n")


def test_a_plugin_family_runs_through_the_workflow(root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    _tree(root, tmp_path)
    snakemake(root, tmp_path, "--cores", "2")
    mse = {}
    for method in ("last_value", "ar3"):
        for seed in (0, 1):
            e = json.loads((tmp_path / f"results/embedded/toy/sine/toy-ar-derived/{method}/seed{seed}/eval.json").read_text())
            assert e["provenance"]["dataset"]["manifest_sha256"] and e["provenance"]["train"]
            mse[method] = e["splits"]["test"]["metrics"]["mse"]
    assert mse["ar3"] < mse["last_value"]  # a sine is predictable from its last three values
    summary = pd.read_csv(tmp_path / "results/embedded/toy/summary.csv")
    assert set(summary.method) == {"last_value", "ar3"} and set(summary.n_seeds) == {2}
    table = pd.read_csv(tmp_path / "paper_figures/embedded/toy/main_table.csv")
    assert table.loc[table.method == "last_value", "mse (reported)"].item() == 0.1
    assert len(table.loc[table.method == "ar3", "mse per seed"].item().split()) == 2  # the figure got eval.json
    joined = summary.set_index(["method", "metric"]).reported_value  # the reported row leaves model empty: any
    assert joined["last_value", "mse"] == 0.1 and pd.isna(joined["last_value", "mae"])
    assert summary.loc[summary.method == "ar3", "reported_value"].isna().all()
    assert set(summary.impl) == {"last_value", "ar"} and not summary.ablation.any()
    assert (tmp_path / "paper_figures/embedded/toy/main_table.png").stat().st_size > 0
    derived = json.loads((tmp_path / "resources/models/toy-ar-derived/MANIFEST.json").read_text())
    base = json.loads((tmp_path / "resources/models/toy-ar/config.json").read_text())
    assert derived["base"]["manifest_sha256"] and base == {"kind": "ar"}  # one get_model job derived from another
    # nothing in the package, the workflow or the schemas names the plugin or its family
    named = subprocess.run(["grep", "-rlE", "repro_toy|toy_forecast|toyseries", str(root / "src" / "repro"),
                            str(root / "workflow"), str(root / "Snakefile")], capture_output=True, text=True)
    assert named.stdout == ""


def test_a_plugin_study_with_a_bad_method_fails_the_dry_run(root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    _tree(root, tmp_path)
    study = tmp_path / "config" / "studies" / "toy.yaml"
    study.write_text(study.read_text().replace("{impl: ar, params: {order: 3}}", "{impl: ar, params: {order: 0}}"))
    proc = snakemake(root, tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "toy.yaml: methods.ar3.params: order must be >= 1, got 0" in proc.stdout + proc.stderr


def test_parsing_imports_no_torch_and_no_study_dependency(root):
    """Loading the real config (what the Snakefile does while parsing) imports none of the heavy
    packages the jobs use."""
    code = ("import sys, yaml; from repro.config import load, run_table; "
            f"cfg = yaml.safe_load(open({str(root / 'config' / 'config.yaml')!r})); "
            f"run_table(load(cfg, {str(root)!r})); "
            "heavy = ('torch', 'transformers', 'matplotlib', 'scipy', 'sklearn', 'mlflow', 'alfworld', "
            "'textworld', 'huggingface_hub'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_package_fails_only_the_jobs_that_need_it(root, tmp_path, monkeypatch):
    """A method whose registered module needs an uninstalled package: the workflow still parses,
    the other methods' jobs run, and its train jobs fail with a message naming the package."""
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    _tree(root, tmp_path)
    study = tmp_path / "config" / "studies" / "toy.yaml"
    study.write_text(study.read_text().replace("  ar3: {impl: ar, params: {order: 3}}",
                                               "  ar3: {impl: ar, params: {order: 3}}\n"
                                               "  broken: {impl: needs_missing}"))
    assert snakemake(root, tmp_path, "-n", check=False).returncode == 0
    proc = snakemake(root, tmp_path, "--cores", "2", "--keep-going", check=False)
    assert proc.returncode != 0
    run = tmp_path / "results/embedded/toy/sine/toy-ar-derived"
    assert (run / "ar3/seed0/eval.json").exists() and (run / "last_value/seed1/eval.json").exists()
    assert not (run / "broken/seed0/eval.json").exists()
    log = (tmp_path / "logs/train/embedded/toy/sine/toy-ar-derived/broken/seed0.log").read_text()
    assert "toy forecaster 'needs_missing' needs the package 'repro_no_such_package', which is not installed" in log
