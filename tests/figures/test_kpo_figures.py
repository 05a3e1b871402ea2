"""KPO's figures from hand-made summary rows and train logs: the Table 1 layout with reproduced and
reported cells, ablation rows marked, the claims with their tests (Welch over seeds; a paired t
for the filter's sign switches), and the stability table and plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro.studies.kpo.figures import main_table, stability

ROOT = Path(__file__).resolve().parents[2]


def summary(path: Path) -> Path:
    rows = []
    for method, avg, ablation in (("warmstart", (30.0, 1.0), False), ("grpo", (40.0, 2.0), False),
                                  ("kpo", (50.0, 2.0), False), ("kpo_unclipped", (10.0, 3.0), True)):
        for metric, (mean, std) in (("success_rate_pct", avg), ("pass_at_k_pct", (avg[0] + 20, avg[1]))):
            rows.append({"study": "kpo", "scale": "embedded", "benchmark": "math", "model": "tiny", "method": method,
                         "split": "test", "temperature": 1.0, "task_type": "all", "metric": metric, "mean": mean,
                         "std": std, "n_seeds": 3, "impl": "grpo", "ablation": ablation})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def logs(tmp: Path) -> list[Path]:
    out = []
    rng = np.random.default_rng(0)
    for method in ("grpo", "kpo"):
        for seed in range(3):
            d = tmp / "results/embedded/kpo/math/tiny" / method / f"seed{seed}"
            d.mkdir(parents=True)
            it = np.arange(0, 6)
            df = pd.DataFrame({"iteration": it, "rollout/success_rate": 0.2 + 0.01 * it,
                               "train/grad_norm": 1.0 + rng.random(6), "train/grad_norm_max": 2.0 + rng.random(6),
                               "train/ratio_spike_frac": 0.001 * rng.random(6)})
            if method == "kpo":
                df["train/sign_switch_raw"] = 0.45 + 0.01 * rng.random(6)
                df["train/sign_switch_filtered"] = 0.1 + 0.01 * rng.random(6)
            df.loc[0, df.columns[1:]] = np.nan
            df.to_csv(d / "train_log.csv", index=False)
            out.append(d / "train_log.csv")
    return out


def test_main_table_and_claims(tmp_path):
    main_table(summary=summary(tmp_path / "summary.csv"), train_logs=[], out_dir=tmp_path, scale="embedded",
               reported=ROOT / "paper_figures" / "reported" / "kpo.csv")
    table = pd.read_csv(tmp_path / "main_table.csv")
    assert table.loc[table.method == "kpo", "test avg@k / pass@k"].item() == "50.0 ± 2.0 / 70.0 ± 2.0"
    assert "kpo_unclipped (ablation)" in set(table.method)
    assert table.loc[table.method == "kpo (reported, Qwen3-4B)", "aime24 avg@k / pass@k"].item() == "37.91 / 63.33"
    md = (tmp_path / "main_table.md").read_text()
    assert "claim: math: kpo > grpo (test success_rate_pct): yes, +10.0" in md and "n = 3 vs 3" in md
    assert "claim: math: grpo > warmstart (test success_rate_pct): yes" in md
    assert (tmp_path / "main_table.png").stat().st_size > 0


def test_stability_table_and_filter_claim(tmp_path):
    stability(summary=tmp_path / "unused.csv", train_logs=logs(tmp_path), out_dir=tmp_path, scale="embedded",
              reported=ROOT / "paper_figures" / "reported" / "kpo.csv")
    t = pd.read_csv(tmp_path / "stability.csv")
    assert set(t.quantity) >= {"train/grad_norm", "train/sign_switch_raw", "train/sign_switch_filtered"}
    assert (t[t.quantity == "rollout/success_rate"].seeds == 3).all() and t.iteration.min() == 1
    md = (tmp_path / "stability.md").read_text()
    assert "filtering lowers the sign-switch rate" in md and "yes" in md and "paired" in md
    assert "kpo has a lower peak gradient norm than grpo" in md
    assert (tmp_path / "stability.png").stat().st_size > 0
