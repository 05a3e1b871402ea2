"""GraphGPO's tables and figures: the main comparison (GRPO, GiGPO, GraphGPO beside the paper's
numbers, §6.6), learning curves (the paper's "much faster early in training"), and the paper's
motivating statistics measured on our own rollouts (§3.5.1). Reproduced numbers come from
``summary.csv`` and train_log.csv; the paper's from ``paper_figures/reported/graphgpo.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.agentic import (
    MAIN_CELLS,
    cell,
    in_order,
    main_bars,
    main_runs,
    reproduced_row,
    model_label,
    ordering_claims,
    temperatures,
    validation_curve,
)
from repro.figures.claims import claim_line, welch
from repro.figures.style import COLORS, method_order, new_figure, save_figure, scale_note, write_table
from repro.figures.summary import read_train_logs
from repro.reported import load as reported_numbers

ORDER = ["warmstart", "grpo", "gigpo", "graphgpo"]
CELLS = MAIN_CELLS  # (label, benchmark, split, metric) of the main table
#: the paper's claims: (better, worse) on each benchmark's metrics (§6.6: success; WebShop's score
#: as well, the graded metric EFCA quotes and the one our small success rates cannot resolve)
CLAIMS = [("graphgpo", "gigpo"), ("gigpo", "grpo"), ("graphgpo", "grpo")]
HEADLINE = [("alfworld", "valid_seen", "success_rate_pct"), ("webshop", "test", "success_rate_pct"),
            ("webshop", "test", "score")]
REPORTED_MODELS = {"qwen2.5-1.5b-instruct": "1.5B", "qwen2.5-7b-instruct": "7B"}


def _scale_note(scale: str) -> str:
    return scale_note(scale, "HGPO's tiny Qwen2 warm starts on generated ALFWorld games and a generated WebShop "
                             "catalog, CPU", "Qwen2.5-Instruct on ALFWorld's release games and WebShop")


def claims(s: pd.DataFrame) -> list[str]:
    """Each of the paper's orderings on each benchmark's metrics, Welch's t over seeds."""
    return ordering_claims(s, HEADLINE, CLAIMS)


@registry.FIGURES.register("graphgpo/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """ALFWorld success (in / out of distribution) and WebShop score and success per method,
    reproduced mean ± std beside GraphGPO's own table (its re-runs of GRPO and GiGPO, §6.6)."""
    s = main_runs(pd.read_csv(summary))
    s = s[s.task_type == "all"].assign(model=lambda d: model_label(d, scale))
    s = in_order(s, ORDER)
    rep = reported_numbers(reported)
    rep = rep[rep.table == "graphgpo_table"]
    rows = []
    for (model, method), grp in s.groupby(["model", "method"], sort=False):
        row = reproduced_row(model, method, grp)
        for rep_model, size in REPORTED_MODELS.items():
            r = rep[(rep.method == method) & (rep.model == rep_model)]
            row[f"reported {size}: ALFWorld / WebShop succ."] = " / ".join(
                cell(r, b, sp, m, "{:.2f}") for b, sp, m in (("alfworld", "valid_seen", "success_rate_pct"),
                                                              ("webshop", "test", "success_rate_pct")))
        rows.append(row)
    lines = claims(s)
    write_table(pd.DataFrame(rows), out_dir / "main_table.csv", out_dir / "main_table.md",
                "GraphGPO main table: ALFWorld success (%) and WebShop score / success (%), GRPO, GiGPO, GraphGPO",
                [_scale_note(scale),
                 "reproduced: mean ± std over seeds from eval.json (ALFWorld valid_seen = in-distribution, "
                 "valid_unseen = out-of-distribution; WebShop test goals, score = mean task score x 100), "
                 f"episodes sampled at temperature {temperatures(s)} (the paper: 0.4). The warm start, GRPO "
                 "and GiGPO runs are HGPO's where both studies run (the same config; summary column study).",
                 "reported: GraphGPO's table as summarised by a paper note [S] (agentic-rl.md §6.6), its "
                 "own re-runs of GRPO and GiGPO (not the GiGPO paper's numbers); the split of its ALFWorld "
                 "column is not stated (here beside valid_seen, verl-agent's default validation split).",
                 *[f"claim: {line}" for line in lines]])
    main_bars(s, list(dict.fromkeys(s.method)), out_dir / "main_table.png", scale)


def early_claims(logs: pd.DataFrame, col: str = "rollout/success_rate") -> list[str]:
    """"Faster early": per seed, the mean training success over the first half of the iterations;
    GraphGPO vs GiGPO and vs GRPO with Welch's t over seeds, per benchmark."""
    if col not in logs:
        return []
    rows = logs.dropna(subset=[col])
    rows = rows[rows.iteration > 0]
    lines = []
    for bench, g in rows.groupby("benchmark"):
        half = g.iteration.max() / 2
        per_seed = g[g.iteration <= half].groupby(["method", "seed"])[col].mean() * 100
        stats = per_seed.groupby("method").agg(mean="mean", std="std", n_seeds="count").fillna({"std": 0.0})
        for other in ("gigpo", "grpo"):
            if "graphgpo" in stats.index and other in stats.index:
                lines.append(claim_line(f"{bench}: graphgpo learns faster early than {other} (training success, "
                                        f"iterations 1-{int(half)})", welch(stats.loc["graphgpo"], stats.loc[other]),
                                        digits=1, unit=" points"))
    return lines


@registry.FIGURES.register("graphgpo/learning_curves")
def learning_curves(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Training success per iteration (each iteration's own rollouts) and train-time validation
    success, mean ± std over seeds per method; the "faster early" claim tested on the first half."""
    logs = read_train_logs(train_logs)
    col = "rollout/success_rate"
    keys = ["benchmark", "method", "iteration"]
    train = (logs.dropna(subset=[col]).groupby(keys)[col].agg(["mean", "std", "count"]).reset_index()
             if col in logs else pd.DataFrame(columns=[*keys, "mean", "std", "count"]))
    train["std"] = train["std"].fillna(0.0)
    train[["mean", "std"]] = (100 * train[["mean", "std"]]).round(2)
    val = validation_curve(train_logs)
    table = pd.concat([train.assign(curve="training rollouts"), val.assign(curve="validation")], ignore_index=True)
    table = table.rename(columns={"count": "seeds"})[["curve", *keys, "mean", "std", "seeds"]]
    write_table(table, out_dir / "learning_curves.csv", out_dir / "learning_curves.md",
                "Success (%) vs iteration: training rollouts and train-time validation",
                [_scale_note(scale),
                 "from train_log.csv: training rollouts = each iteration's own batch at the training "
                 "temperature; validation = train-time validation (ALFWorld valid_seen, WebShop test goals).",
                 *[f"claim: {line}" for line in early_claims(logs)]])
    benches = list(dict.fromkeys(table.benchmark)) or ["alfworld"]
    fig, axes = new_figure(5.0 * len(benches), 3.6, ncols=len(benches))
    for ax, bench in zip(np.atleast_1d(axes), benches):
        for curve, style in (("training rollouts", "-"), ("validation", ":")):
            sub = table[(table.benchmark == bench) & (table.curve == curve)]
            for method, g in sub.groupby("method", sort=False):
                c = COLORS[method_order(table.method, ORDER).index(method) % len(COLORS)]
                ax.plot(g.iteration, g["mean"], style, marker="o", color=c, label=f"{method} ({curve})")
                ax.fill_between(g.iteration.astype(float), g["mean"] - g["std"], g["mean"] + g["std"],
                                color=c, alpha=0.15)
        ax.set_xlabel("iteration")
        ax.set_ylabel("success (%)")
        ax.set_title(f"{bench} ({scale} scale)")
        ax.legend(frameon=False, fontsize=6)
    save_figure(fig, out_dir / "learning_curves.png")


PROGRESS = {"graph/progress_in_failed": "progress steps in failed trajectories (%)",
            "graph/nonprogress_in_successful": "non-progress steps in successful trajectories (%)"}
#: train_log.csv column -> the metric of the paper's number in the reported file (table motivation)
REPORTED_PROGRESS = {"graph/progress_in_failed": "progress_in_failed_pct",
                     "graph/nonprogress_in_successful": "nonprogress_in_successful_pct"}


@registry.FIGURES.register("graphgpo/progress")
def progress(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """The paper's motivating statistics on our rollouts: per benchmark and method, the share of
    progress-making steps (d(s') < d(s)) in failed trajectories and of non-progress steps in
    successful ones, over the training iterations' batches (groups with a success only)."""
    logs = read_train_logs(train_logs)
    cols = [c for c in PROGRESS if c in logs]
    rep = reported_numbers(reported)
    rep = rep[rep.table == "motivation"]
    rows, means = [], []
    for (bench, method), g in (logs.dropna(subset=cols[:1]).groupby(["benchmark", "method"]) if cols else []):
        per_seed = g.groupby("seed")[cols].mean() * 100  # mean over iterations, per seed
        means.append(per_seed.mean())
        row = {"benchmark": bench, "method": method, "seeds": len(per_seed), "iterations": int(g.iteration.nunique())}
        for c in cols:
            row[PROGRESS[c]] = f"{per_seed[c].mean():.1f}" + (f" ± {per_seed[c].std():.1f}" if len(per_seed) > 1 else "")
            paper = rep[(rep.benchmark == bench) & (rep.metric == REPORTED_PROGRESS[c])]
            row[f"paper {PROGRESS[c].split(' (')[0]}"] = f"{paper.value.iloc[0]:.1f}" if len(paper) else "n/f"
        rows.append(row)
    df = pd.DataFrame(rows)
    write_table(df, out_dir / "progress.csv", out_dir / "progress.md",
                "How wrong trajectory-level credit is: progress inside failures, detours inside successes",
                [_scale_note(scale),
                 "from train_log.csv (diagnostic graph_progress on every training batch): a step makes "
                 "progress when d(s') < d(s) in its task's graph of all rollouts (the study's state keys: "
                 "ALFWorld's tracked world state in graphgpo runs, the raw observation in the others); "
                 "groups without a success have no distances and are left out. Mean over iterations, "
                 "± std over seeds.",
                 "paper: GraphGPO's ALFWorld statistics from a paper note [S] (agentic-rl.md §3.5.1), "
                 "measured on the paper's own rollouts."])
    fig, ax = new_figure(6.0, 3.4)
    if len(df):
        x = np.arange(len(df))
        for k, c in enumerate(cols):
            ax.bar(x + (k - 0.5) * 0.38, [m[c] for m in means], 0.38, color=COLORS[k], label=PROGRESS[c])
        ax.set_xticks(x, [f"{b}/{m}" for b, m in zip(df.benchmark, df.method)], rotation=20)
    ax.set_ylabel("% of steps")
    ax.set_title(f"Progress statistics ({scale} scale)")
    ax.legend(frameon=False, fontsize=7)
    save_figure(fig, out_dir / "progress.png")
