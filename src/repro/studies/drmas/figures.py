"""Dr. MAS's tables and figure: Table 1's layout (single-agent GRPO, shared and non-shared GRPO and
Dr. MAS; avg@k / pass@k per test set) beside the paper's numbers (§6.7), the headline relative gain
computed as the paper does (mean over the settings, Dr. MAS over GRPO), Table 3's normalisation
ablation, and each agent's gradient norm over training (the paper's instability diagnosis:
global normalisation inflates the second moment of an agent's gradient, Lemma 4.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.agentic import cell, in_order, metric_bars, ordering_claims, temperatures
from repro.figures.claims import claim_line, welch
from repro.figures.style import COLORS, new_figure, save_figure, scale_note, write_table
from repro.figures.summary import read_train_logs
from repro.reported import load as reported_numbers

ORDER = ["warmstart", "single_grpo", "share_grpo", "share_drmas", "nonshare_grpo", "nonshare_drmas",
         "nonshare_mu_k", "nonshare_sigma_k"]
METRICS = (("avg", "success_rate_pct"), ("pass", "pass_at_k_pct"))
#: (Dr. MAS, its GRPO column) per setting, as the paper pairs them
PAIRS = [("share_drmas", "share_grpo"), ("nonshare_drmas", "nonshare_grpo")]
#: Table 3's ordering (search, non-sharing): (mu_k, sigma_k) above each mixed one, each above (mu, sigma)
TABLE3_PAIRS = [("nonshare_drmas", "nonshare_mu_k"), ("nonshare_drmas", "nonshare_sigma_k"),
                ("nonshare_mu_k", "nonshare_grpo"), ("nonshare_sigma_k", "nonshare_grpo")]
#: benchmark -> the team's agents in StepBatch.agent order (orchestra.py, search_team.py)
AGENTS = {"math": {0: "Solver", 1: "Verifier"}, "search": {0: "Verifier", 1: "Search", 2: "Answer"}}
#: the paper's headline relative gains (§6.7 "how the headline percentages are computed")
HEADLINE = {"math": {"avg": "+5.6%", "pass": "+4.6%"}, "search": {"avg": "+15.2%", "pass": "+13.1%"}}
#: benchmark -> (the paper's table of it, its (smaller, larger) models), §6.7
REPORTED_TABLES = {"math": ("drmas_table1", ("qwen3-4b", "qwen3-8b")),
                   "search": ("drmas_table2", ("qwen2.5-3b", "qwen2.5-7b"))}


def _note(scale: str) -> str:
    return scale_note(scale, "tiny Qwen2 teams on generated word problems (Solver, Verifier) and on a generated "
                      "knowledge base with BM25 search (Verifier, Search, Answer), CPU",
                      "Qwen3 4B / 8B teams on DAPO-Math, six test sets; Qwen2.5 3B / 7B on NQ + HotpotQA, seven")


def _row(s: pd.DataFrame, method: str, split: str, metric: str):
    g = s[(s.method == method) & (s.split == split) & (s.metric == metric) & (s.task_type == "all")]
    return g.iloc[0] if len(g) else None


def claims(s: pd.DataFrame) -> list[str]:
    """Dr. MAS vs GRPO in each setting on avg@k of every test set, Table 3's ordering of the
    normalisations where its runs exist (Welch over seeds), and the relative gain of the mean over
    the settings (the paper's headline arithmetic, §6.7)."""
    cells = [(b, split, "success_rate_pct") for b, split in s[["benchmark", "split"]].drop_duplicates().itertuples(index=False)]
    lines = ordering_claims(s, cells, PAIRS + TABLE3_PAIRS)
    for (bench, split), sb in s.groupby(["benchmark", "split"]):
        for label, metric in METRICS:
            got = [(_row(sb, d, split, metric), _row(sb, g, split, metric)) for d, g in PAIRS]
            if all(a is not None and b is not None for a, b in got):
                dr, gr = np.mean([a["mean"] for a, _ in got]), np.mean([b["mean"] for _, b in got])
                lines.append(f"{bench} {split}: headline relative gain ({label}@k, mean over shared and non-shared): "
                             f"{100 * (dr / gr - 1):+.1f}% (paper: {HEADLINE[bench][label]})" if gr else "")
    return [x for x in lines if x]


@registry.FIGURES.register("drmas/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """avg@k / pass@k (%) per method and test set, mean ± std over seeds, beside Table 1's average
    (Qwen3-4B and 8B) and Table 3 (search, 7B, non-sharing) where a method has it."""
    s = in_order(pd.read_csv(summary), ORDER)
    s = s[s.task_type == "all"]
    rep = reported_numbers(reported)
    splits = list(dict.fromkeys(s.split))
    rows = []
    for (bench, method), grp in s.groupby(["benchmark", "method"], sort=False):
        row = {"benchmark": bench, "method": method, "seeds": int(grp.n_seeds.max())}
        for split in splits:
            row[f"{split} avg@k / pass@k"] = " / ".join(cell(grp, bench, split, m) for _, m in METRICS)
        table, models = REPORTED_TABLES.get(bench, ("", ("", "")))
        for size, model in zip(("smaller", "larger"), models):
            r = rep[(rep.table == table) & (rep.method == method) & (rep.model == model)]
            row[f"reported {size} model, average"] = " / ".join(cell(r, bench, "average", m) for _, m in METRICS)
        r = rep[(rep.table == "drmas_table3") & (rep.method == method) & (rep.benchmark == bench)]
        row["reported Table 3 (search 7B)"] = " / ".join(cell(r, bench, "average", m) for _, m in METRICS)
        rows.append(row)
    write_table(pd.DataFrame(rows), out_dir / "main_table.csv", out_dir / "main_table.md",
                "Dr. MAS Tables 1 and 3 layout: avg@k / pass@k (%) per method",
                [_note(scale),
                 f"reproduced: mean ± std over seeds from eval.json, k samples per problem at temperature "
                 f"{temperatures(s)}, top_p as the evaluate block (the paper: 0.6 / 0.95, k = 16).",
                 "reported: Dr. MAS Table 1 (math, average over six test sets; smaller / larger model = Qwen3-4B / "
                 "8B), Table 2 (search, average over seven; Qwen2.5-3B / 7B) and Table 3 (search, Qwen2.5-7B, "
                 "non-sharing, average) (agentic-rl.md §6.7); 'n/f' where the paper has no such cell.",
                 *[f"claim: {line}" for line in claims(s)]])
    metric_bars([(f"{b}: {sp}", g) for (b, sp), g in s.groupby(["benchmark", "split"], sort=False)], METRICS,
                out_dir / "main_table.png", _note(scale))


def agent_norms(logs: pd.DataFrame) -> pd.DataFrame:
    """Long table of gradient norms per method, seed, iteration and agent: a non-shared run's
    per-worker-group norms (one agent each), a shared run's whole-model norm (agent 'all')."""
    parts = []
    wg_cols = [c for c in logs.columns if c.startswith("train/grad_norm_max/wg")]
    for bench, lb in logs.groupby("benchmark", sort=False):
        names = AGENTS.get(bench, {})
        for col in ["train/grad_norm_max"] + wg_cols:
            if col not in lb:
                continue
            d = lb.dropna(subset=[col])[["benchmark", "method", "seed", "iteration", col]]
            d = d.rename(columns={col: "grad_norm_max"})
            if col == "train/grad_norm_max":
                d = d[d.method.isin([m for m, g in lb.groupby("method") if not g[wg_cols].notna().any().any()])]
                agent = "all"
            else:
                k = int(col.rsplit("wg", 1)[1])
                agent = names.get(k, str(k))
            parts.append(d.assign(agent=agent))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["benchmark", "method", "seed", "iteration", "grad_norm_max", "agent"])


def norm_claims(norms: pd.DataFrame) -> list[str]:
    """Per agent, the peak gradient norm over training (per seed) under global normalisation vs
    Dr. MAS, non-shared agents (Proposition 4.3: the global one can grow without bound)."""
    peak = norms.groupby(["benchmark", "method", "agent", "seed"]).grad_norm_max.max().reset_index()
    lines = []
    for (bench, agent), g in peak.groupby(["benchmark", "agent"], sort=False):
        stats = g.groupby("method").grad_norm_max.agg(mean="mean", std="std", n_seeds="count").fillna({"std": 0.0})
        if {"nonshare_grpo", "nonshare_drmas"} <= set(stats.index):
            lines.append(claim_line(f"{bench} {agent}: peak gradient norm higher under global normalisation",
                                    welch(stats.loc["nonshare_grpo"], stats.loc["nonshare_drmas"]), digits=2))
    return lines


def calls_claims(logs: pd.DataFrame, last: int = 20) -> list[str]:
    """Agent calls per episode over the last ``last`` training iterations, Dr. MAS vs GRPO per
    setting (Welch over seeds): the paper's 7B non-shared search team under GRPO "learned to stop
    calling the search agent" (§6.7), which shows as shorter episodes."""
    col = "rollout/episode_length"
    if col not in logs:
        return []
    lines = []
    for bench, lb in logs.groupby("benchmark", sort=False):
        tail = lb[lb.iteration > lb.iteration.max() - last]
        per_seed = tail.groupby(["method", "seed"])[col].mean().reset_index()
        stats = per_seed.groupby("method")[col].agg(mean="mean", std="std", n_seeds="count").fillna({"std": 0.0})
        for dr, gr in PAIRS:
            if {dr, gr} <= set(stats.index):
                lines.append(claim_line(f"{bench}: {dr} makes more agent calls per episode than {gr} (last {last} "
                                        f"iterations; {stats.loc[dr, 'mean']:.2f} vs {stats.loc[gr, 'mean']:.2f})",
                                        welch(stats.loc[dr], stats.loc[gr]), digits=2))
    return lines


def moment_lines(logs: pd.DataFrame) -> list[str]:
    """Per benchmark and agent: the advantage second moment under global and agent-wise
    normalisation on the training batches (diagnostic ``agent_moments``), mean over iterations,
    runs and seeds: Lemma 4.2's inflation as our rollouts have it."""
    lines = []
    for bench, lb in logs.groupby("benchmark", sort=False):
        if "moment/global/agent1" in lb:  # team runs only (a single agent's batches have agent 0 alone)
            lb = lb[lb["moment/global/agent1"].notna()]
        for k, name in AGENTS.get(bench, {}).items():
            g, a = f"moment/global/agent{k}", f"moment/agent/agent{k}"
            if {g, a} <= set(lb) and lb[g].notna().any():
                lines.append(f"{bench} {name}: E[A^2] global {lb[g].mean():.2f} (max {lb[g].max():.2f}) vs agent-wise "
                             f"{lb[a].mean():.2f} over {int(lb[g].notna().sum())} training batches (Lemma 4.2: "
                             f"global inflates it where the agent's rewards differ from the group's)")
    return lines


@registry.FIGURES.register("drmas/grad_norms")
def grad_norms(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Each agent's gradient norm (max over an iteration's updates, before clipping) per iteration,
    mean ± std over seeds, for every method; the peak-norm claim per agent."""
    logs = read_train_logs(train_logs)
    norms = agent_norms(logs)
    table = (norms.groupby(["benchmark", "agent", "method", "iteration"]).grad_norm_max.agg(["mean", "std", "count"])
             .reset_index().rename(columns={"count": "seeds"}))
    table["std"] = table["std"].fillna(0.0)
    write_table(table.round(4), out_dir / "grad_norms.csv", out_dir / "grad_norms.md",
                "Per-agent gradient norms over training (max per iteration, before clipping)",
                [_note(scale), "non-shared runs: one worker group per agent; shared runs: the one model's norm "
                 "('all').", *[f"claim: {line}" for line in norm_claims(norms)],
                 *[f"claim: {line}" for line in calls_claims(logs)],
                 *[f"measured: {line}" for line in moment_lines(logs)]])
    panels = list(dict.fromkeys(zip(table.benchmark, table.agent)))
    fig, axes = new_figure(3.4 * max(len(panels), 1), 3.0, ncols=max(len(panels), 1))
    axes = np.atleast_1d(axes)
    for ax, (bench, agent) in zip(axes, panels):
        sel = table[(table.benchmark == bench) & (table.agent == agent)]
        for i, (method, g) in enumerate(sel.groupby("method", sort=False)):
            ax.plot(g.iteration, g["mean"], color=COLORS[i % len(COLORS)], label=method)
            ax.fill_between(g.iteration, g["mean"] - g["std"], g["mean"] + g["std"], color=COLORS[i % len(COLORS)],
                            alpha=0.15)
        ax.set_title(f"{bench}: {agent}", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("gradient norm (max)")
        ax.legend(fontsize=7)
    fig.suptitle(_note(scale), fontsize=7)
    save_figure(fig, out_dir / "grad_norms.png")
