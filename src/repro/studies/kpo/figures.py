"""KPO's table and figure: Table 1's layout (avg@k / pass@k per test set, GRPO, GSPO, KPO clipped
and unclipped) beside the paper's quoted numbers (§6.8), and the stability diagnostics measured on
our own training runs (the paper's sign-switch frequency of the off-policy deviation before and
after filtering, §3.7.1; gradient norms and ratio spikes over training). Reproduced numbers come
from ``summary.csv`` and train_log.csv; the paper's from ``paper_figures/reported/kpo.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.agentic import cell, in_order, main_runs, metric_bars, ordering_claims, temperatures
from repro.figures.claims import claim_line, paired, welch
from repro.figures.style import COLORS, method_order, new_figure, save_figure, scale_note, write_table
from repro.figures.summary import read_train_logs
from repro.reported import load as reported_numbers

ORDER = ["warmstart", "grpo", "gspo", "kpo", "kpo_unclipped", "kpo_paper_q"]
METRICS = (("avg", "success_rate_pct"), ("pass", "pass_at_k_pct"))
#: the paper's claims: KPO (clipped) above each baseline in avg@k; and whether RL moved the warm
#: start at all (without it the comparison decides nothing)
CLAIMS = [("kpo", "grpo"), ("kpo", "gspo"), ("grpo", "warmstart"), ("gspo", "warmstart"), ("kpo", "warmstart")]


def _scale_note(scale: str) -> str:
    return scale_note(scale, "a tiny Qwen2 warm-started on generated word problems, CPU",
                      "Qwen3-4B on DAPO-Math, six test sets")


def claims(s: pd.DataFrame) -> list[str]:
    """KPO vs each baseline, and each method vs the warm start, on avg@k of every test set,
    Welch's t over seeds."""
    return ordering_claims(s, [("math", split, "success_rate_pct") for split in sorted(s.split.unique())], CLAIMS)


@registry.FIGURES.register("kpo/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """avg@k / pass@k (%) per test set and method, reproduced (mean ± std over seeds) beside the
    paper's Table 1 as quoted (AIME'24, AIME'25, MATH500; 'n/f' elsewhere)."""
    s = in_order(pd.read_csv(summary), ORDER)  # ablations too (KPO-unclipped is a row of the paper's table)
    s = s[s.task_type == "all"]
    ablation = set(s.method) - set(main_runs(s).method)
    rep = reported_numbers(reported)
    rep = rep[rep.table == "kpo_table1"]
    splits = list(dict.fromkeys(s.split))
    rows = []
    for method, grp in s.groupby("method", sort=False):
        row = {"method": method + (" (ablation)" if method in ablation else ""), "seeds": int(grp.n_seeds.max())}
        for split in splits:
            row[f"{split} avg@k / pass@k"] = " / ".join(cell(grp, "math", split, m) for _, m in METRICS)
            r = rep[rep.method == method]
            if len(r) and split in set(r.split):
                row[f"{split} reported"] = " / ".join(cell(r, "math", split, m, "{:.2f}") for _, m in METRICS)
        rows.append(row)
    for method in ("grpo", "gspo", "gmpo", "kpo"):  # the paper's rows on its own test sets
        r = rep[(rep.method == method) & rep.value.notna()]
        if len(r):
            rows.append({"method": f"{method} (reported, Qwen3-4B)", "seeds": "",
                         **{f"{sp} avg@k / pass@k": " / ".join(cell(r, "math", sp, m, "{:.2f}") for _, m in METRICS)
                            for sp in dict.fromkeys(r.split)}})
    write_table(pd.DataFrame(rows), out_dir / "main_table.csv", out_dir / "main_table.md",
                "KPO Table 1 layout: avg@k / pass@k (%) per test set",
                [_scale_note(scale),
                 f"reproduced: mean ± std over seeds from eval.json; k samples per problem (the study's "
                 f"evaluate.episodes_per_game) at temperature {temperatures(s)}, top_p as the paper's evaluation (0.7).",
                 "reported: KPO Table 1 (Qwen3-4B, avg@16 / pass@16) as quoted by two third-party documents "
                 "[S] (agentic-rl.md §6.8); AMC'23, Minerva, OlympiadBench and the unclipped rows were not found.",
                 *[f"claim: {line}" for line in claims(s)]])
    metric_bars([(sp, s[s.split == sp]) for sp in splits], METRICS, out_dir / "main_table.png", _scale_note(scale))


STABILITY = [("rollout/success_rate", "training reward (success)"), ("train/grad_norm", "gradient norm (mean)"),
             ("train/grad_norm_max", "gradient norm (max)"), ("train/ratio_spike_frac", "ratio spikes (share)")]
SWITCH = ("train/sign_switch_raw", "train/sign_switch_filtered")


def switch_claim(logs: pd.DataFrame, method: str = "kpo") -> list[str]:
    """The filter lowers the sign-switch rate of the off-policy deviation: per seed, the mean over
    iterations of raw minus filtered; a paired t over seeds (the same runs give both)."""
    if not set(SWITCH) <= set(logs) or method not in set(logs.method):
        return []
    g = logs[(logs.method == method)].dropna(subset=list(SWITCH))
    per_seed = g.groupby("seed")[list(SWITCH)].mean()
    if per_seed.empty:
        return []
    d = (per_seed[SWITCH[0]] - per_seed[SWITCH[1]]).to_numpy()
    return [claim_line(f"{method}: filtering lowers the sign-switch rate (raw {per_seed[SWITCH[0]].mean():.2f} -> "
                       f"filtered {per_seed[SWITCH[1]].mean():.2f}; paper 0.43 -> 0.01)", paired(d), digits=3)]


def spike_claims(logs: pd.DataFrame) -> list[str]:
    """KPO vs GRPO: the per-seed maximum gradient norm over training, Welch's t (lower is better)."""
    col = "train/grad_norm_max"
    if col not in logs:
        return []
    per_seed = logs.dropna(subset=[col]).groupby(["method", "seed"])[col].max()
    stats = per_seed.groupby("method").agg(mean="mean", std="std", n_seeds="count").fillna({"std": 0.0})
    return [claim_line(f"kpo has a lower peak gradient norm than {other}", welch(stats.loc["kpo"], stats.loc[other]),
                       higher_is_better=False, digits=3)
            for other in ("grpo", "gspo") if {"kpo", other} <= set(stats.index)]


@registry.FIGURES.register("kpo/stability")
def stability(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Per method and iteration (mean ± std over seeds): training reward, gradient norm (mean and
    max over the iteration's updates, before clipping), the share of tokens whose ratio leaves
    [1/2, 2]; for KPO the sign-switch rate of the off-policy deviation before and after filtering."""
    logs = read_train_logs(train_logs)
    logs = logs[logs.iteration > 0]
    cols = [c for c, _ in STABILITY] + [c for c in SWITCH if c in logs]
    long = logs.melt(id_vars=["method", "seed", "iteration"], value_vars=[c for c in cols if c in logs],
                     var_name="quantity").dropna(subset=["value"])
    table = (long.groupby(["quantity", "method", "iteration"]).value.agg(["mean", "std", "count"]).reset_index()
             .rename(columns={"count": "seeds"}))
    table["std"] = table["std"].fillna(0.0)
    table[["mean", "std"]] = table[["mean", "std"]].round(4)
    write_table(table, out_dir / "stability.csv", out_dir / "stability.md",
                "Training stability per iteration: reward, gradient norms, ratio spikes, sign switches",
                [_scale_note(scale),
                 "gradient norm: before clipping (clip 1.0); ratio spike: a token whose pi/pi_old leaves [1/2, 2]; "
                 "sign-switch rate: share of adjacent response tokens whose off-policy deviation changes sign, "
                 "over the off-policy updates (the on-policy first update has none).",
                 *[f"claim: {line}" for line in switch_claim(logs) + spike_claims(logs)]])
    panels = [(c, t) for c, t in STABILITY if c in logs] + ([("switch", "sign-switch rate (kpo)")]
                                                           if set(SWITCH) <= set(logs) else [])
    fig, axes = new_figure(3.0 * len(panels), 3.0, ncols=len(panels))
    axes = np.atleast_1d(axes)
    methods = method_order(table.method.unique(), ORDER)
    for ax, (col, title) in zip(axes, panels):
        series = ([(m, col, COLORS[i % len(COLORS)], "-") for i, m in enumerate(methods)] if col != "switch" else
                  [("kpo", SWITCH[0], COLORS[0], "--"), ("kpo", SWITCH[1], COLORS[1], "-")])
        for method, quantity, color, style in series:
            g = table[(table.quantity == quantity) & (table.method == method)]
            if len(g):
                label = method if col != "switch" else quantity.split("_")[-1]
                ax.plot(g.iteration, g["mean"], style, color=color, label=label)
                ax.fill_between(g.iteration, g["mean"] - g["std"], g["mean"] + g["std"], color=color, alpha=0.15)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.suptitle(_scale_note(scale), fontsize=7)
    save_figure(fig, out_dir / "stability.png")
