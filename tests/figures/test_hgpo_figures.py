"""The HGPO study's tables from hand-made summary / train-log inputs: the main table keeps the
main methods in the paper's order beside the reported values, the ablation figure lays out K and
alpha, and the context-inconsistency figure averages the logged measures over seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repro import plugins, registry
from repro.figures.claims import parse_claims

ROOT = Path(__file__).resolve().parents[2]
REPORTED = ROOT / "paper_figures" / "reported" / "hgpo.csv"
METHODS = ["hgpo", "grpo", "warmstart", "ppo", "rloo", "gigpo", "hgpo_k0", "hgpo_k1", "hgpo_k4",
           "gigpo_k4", "hgpo_a0", "hgpo_a2"]


@pytest.fixture()
def summary(tmp_path) -> Path:
    rows = []
    cells = [("alfworld", "valid_seen", "success_rate_pct", 0), ("alfworld", "valid_unseen", "success_rate_pct", 0),
             ("webshop", "test", "score", 50), ("webshop", "test", "success_rate_pct", 30)]
    # what summarize carries from each run's config: impl, ablation, and the settings that differ
    settings = {"hgpo": ("hgpo", False, 2, 1.0), "gigpo": ("gigpo", False, 2, None),
                "hgpo_k0": ("hgpo", True, 0, 1.0), "hgpo_k1": ("hgpo", True, 1, 1.0),
                "hgpo_k4": ("hgpo", True, 4, 1.0), "gigpo_k4": ("gigpo", True, 4, None),
                "hgpo_a0": ("hgpo", True, 2, 0.0), "hgpo_a2": ("hgpo", True, 2, 2.0)}
    for i, m in enumerate(METHODS):
        impl, ablation, k, alpha = settings.get(m, (m, False, 2, None))
        for bench, split, metric, offset in cells:
            rows.append({"study": "hgpo", "scale": "embedded", "benchmark": bench, "model": f"tiny-{bench}",
                         "method": m, "split": split, "temperature": 1.0, "task_type": "all",
                         "metric": metric, "mean": 10.0 + i + offset, "std": 1.0, "n_seeds": 3,
                         "impl": impl, "ablation": ablation, "train.history_length": k,
                         "params.length_weight_alpha": alpha})
    p = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def _figure(name: str, summary: Path, train_logs: list[Path], out: Path) -> None:
    plugins.load_all()
    registry.FIGURES.get(f"hgpo/{name}")(summary=summary, train_logs=train_logs, reported=REPORTED,
                                         out_dir=out, scale="embedded")
    for ext in ("csv", "md", "png"):
        assert (out / f"{name}.{ext}").stat().st_size > 0


def test_main_table_orders_main_methods_and_shows_reported(summary, tmp_path):
    _figure("main_table", summary, [], tmp_path)
    t = pd.read_csv(tmp_path / "main_table.csv")
    assert list(t.method) == ["warmstart", "ppo", "rloo", "grpo", "gigpo", "hgpo"]  # no ablation runs
    assert set(t.model) == {"tiny (one per benchmark)"}  # one row per method at the embedded scale
    row = t.set_index("method").loc["ppo"]
    assert row["GiGPO paper: ALFWorld all / WebShop score / succ. (1.5B)"] == "54.4 ± 3.1 / 73.8 ± 3.0 / 51.5 ± 2.9"
    assert row["ALFWorld In reported (1.5B)"] == "n/f"
    i = METHODS.index("ppo")
    assert row["ALFWorld In reproduced"] == f"{10.0 + i:.1f} ± 1.0" and row["WebShop score reproduced"] == f"{60.0 + i:.1f} ± 1.0"
    assert row["WebShop succ. reproduced"] == f"{40.0 + i:.1f} ± 1.0"
    assert t.set_index("method").loc["hgpo", "ALFWorld In reported (1.5B)"] == "92.77"
    # the claims: each RL method against the warm start, then Table 1's order, on all four cells
    claims = parse_claims((tmp_path / "main_table.md").read_text())
    assert len(claims) == 8 * 4
    assert {c["claim"] for c in claims} >= {"alfworld: hgpo > warmstart (valid_seen success_rate_pct)",
                                            "webshop: hgpo > gigpo (test score)"}
    paper = {c["claim"]: c["paper"] for c in claims}  # Table 1's numbers where it has both methods
    assert paper["alfworld: hgpo > gigpo (valid_seen success_rate_pct)"] == "92.77 vs 90.16"
    assert paper["alfworld: hgpo > warmstart (valid_seen success_rate_pct)"] == "—"


def test_ablation_table_lays_out_k_and_alpha(summary, tmp_path):
    _figure("ablation", summary, [], tmp_path)
    t = pd.read_csv(tmp_path / "ablation.csv")
    seen = t[t.split == "valid_seen"].set_index("run")
    assert seen.loc["hgpo_k4", "K"] == 4 and seen.loc["hgpo_k4", "mean"] == 10.0 + METHODS.index("hgpo_k4")
    assert seen.loc["hgpo_a2", "alpha"] == 2.0 and seen.loc["hgpo_a2", "K"] == 2
    assert seen.loc["hgpo_k4", "reported (1.5B)"] == "94.85"
    assert seen.loc["hgpo_a0", "reported (1.5B)"] == "n/f"  # no published alpha ablation
    shop = t[t.benchmark == "webshop"].set_index("run")  # the score, not the success rate
    assert set(shop.metric) == {"score"} and shop.loc["hgpo_k1", "mean"] == 60.0 + METHODS.index("hgpo_k1")
    assert shop.loc["hgpo_k4", "reported (1.5B)"] == "90.64" and shop.loc["gigpo", "reported (1.5B)"] == "n/f"
    assert len(t) == 3 * 8 and (tmp_path / "ablation.png").stat().st_size > 0
    # main runs first, then the K runs (HGPO, then GiGPO), then the alpha runs
    assert list(dict.fromkeys(t.run)) == ["hgpo", "gigpo", "hgpo_k0", "hgpo_k1", "hgpo_k4", "gigpo_k4",
                                          "hgpo_a0", "hgpo_a2"]


def test_context_figure_averages_over_seeds(tmp_path):
    logs = []
    for seed, frac in ((0, 0.2), (1, 0.4)):  # one benchmark, two seeds
        p = tmp_path / f"results/embedded/hgpo/alfworld/tiny/gigpo/seed{seed}/train_log.csv"
        p.parent.mkdir(parents=True)
        pd.DataFrame({"iteration": [0, 1, 2], "context/inconsistent_group_frac": [None, frac, frac / 2],
                      "context/adv_gap_inconsistent": [None, 1.0, 0.5],
                      "context/adv_gap_consistent": [None, 0.1, 0.1]}).to_csv(p, index=False)
        logs.append(p)
    _figure("context_inconsistency", tmp_path / "unused.csv", logs, tmp_path / "out")
    t = pd.read_csv(tmp_path / "out" / "context_inconsistency.csv")
    assert list(t.iteration) == [1, 2] and list(t.seeds) == [2, 2]
    assert t["inconsistent step groups (%)"].tolist() == pytest.approx([30.0, 15.0])


@pytest.mark.parametrize("effect, verdict", [(0.2, "yes"), (0.0, "not shown")])
def test_context_claim_compares_against_shuffled_contexts(tmp_path, effect, verdict):
    """The figure states HGPO's premise as a test that can fail: eta^2 of the step return between
    contexts against its shuffled-context null, one-sample t over the runs (methods x seeds)."""
    rng = np.random.default_rng(1)
    logs = []
    for method in ("grpo", "hgpo"):
        for seed in range(3):
            p = tmp_path / f"results/embedded/hgpo/alfworld/tiny/{method}/seed{seed}/train_log.csv"
            p.parent.mkdir(parents=True)
            null = 0.3 + 0.01 * rng.normal(size=4)
            pd.DataFrame({"iteration": [1, 2, 3, 4], "context/inconsistent_group_frac": [0.5] * 4,
                          "context/return_context_share": null + effect + 0.01 * rng.normal(size=4),
                          "context/return_context_share_null": null}).to_csv(p, index=False)
            logs.append(p)
    _figure("context_inconsistency", tmp_path / "unused.csv", logs, tmp_path / "out")
    md = (tmp_path / "out" / "context_inconsistency.md").read_text()
    line = next(x for x in md.splitlines() if "beyond chance" in x)
    assert f": {verdict}" in line and "n = 6 paired" in line


def test_task_types_of_a_webshop_only_run_says_it_has_none(summary, tmp_path):
    """A run of WebShop alone (benchmarks: {hgpo: [webshop]}) still writes the page, saying why it is empty."""
    s = pd.read_csv(summary)
    s = s[s.benchmark == "webshop"].assign(task_type="x")  # rows that are not "all" but not ALFWorld's
    s.to_csv(summary, index=False)
    _figure("task_types", summary, [], tmp_path)
    assert "no ALFWorld evaluation in this run's summary" in (tmp_path / "task_types.md").read_text()
    assert pd.read_csv(tmp_path / "task_types.csv").empty
