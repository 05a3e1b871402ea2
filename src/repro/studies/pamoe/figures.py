"""PA-MoE's tables and figures: success per method and task type beside the paper's claims (§6.9),
routing (switches per episode, expert use per task type; §3.8.1) and the simplicity-bias statistic
of the paper's Fig. 1 (task-type occupancy of the training batches). Reproduced numbers come from
``summary.csv``, eval.json and train_log.csv; the paper's from ``paper_figures/reported/pamoe.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import io as rio
from repro import registry
from repro.figures.agentic import (in_order, main_bars, main_runs, model_label, ordering_claims, reproduced_row,
                                   temperatures)
from repro.figures.claims import claim_line, welch
from repro.figures.style import COLORS, new_figure, save_figure, scale_note, write_table
from repro.figures.summary import read_train_logs
from repro.reported import load as reported_numbers

ORDER = ["warmstart", "gigpo", "gigpo_lora", "token_moe", "pamoe", "pamoe_sample"]
#: the paper's success claim: PA-MoE above single-network GiGPO (ours: the same-rank LoRA and the
#: full fine-tune) and above token routing (§6.9, §3.8.1)
SUCCESS_CLAIMS = [("pamoe", "gigpo_lora"), ("pamoe", "gigpo"), ("pamoe", "token_moe")]
CELLS = [("ALFWorld In", "alfworld", "valid_seen"), ("ALFWorld Out", "alfworld", "valid_unseen")]


def _scale_note(scale: str) -> str:
    return scale_note(scale, "HGPO's tiny Qwen2 warm start (frozen under the adapters) on generated ALFWorld games, CPU",
                      "Qwen2.5-Instruct on ALFWorld's release games")


def _metric(s: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    return s[(s.split == split) & (s.metric == metric) & (s.task_type == "all")].drop_duplicates("method") \
        .set_index("method")


def success_claims(s: pd.DataFrame) -> list[str]:
    return ordering_claims(s, [("alfworld", split, "success_rate_pct") for split in ("valid_seen", "valid_unseen")],
                           SUCCESS_CLAIMS)


@registry.FIGURES.register("pamoe/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """ALFWorld success in / out of distribution and per task type, per method, beside the
    paper's secondary-source numbers (gain over GiGPO, per-category success)."""
    s = main_runs(pd.read_csv(summary))
    s = in_order(s[s.benchmark == "alfworld"].assign(model=lambda d: model_label(d, scale)), ORDER)
    rep = reported_numbers(reported)
    rows = []
    for (model, method), grp in s.groupby(["model", "method"], sort=False):
        overall = grp[grp.task_type == "all"]
        row = reproduced_row(model, method, overall)
        for tt, g in grp[(grp.task_type != "all") & (grp.split == "valid_seen") &
                         (grp.metric == "success_rate_pct")].groupby("task_type"):
            row[f"In: {tt}"] = f"{g['mean'].iloc[0]:.1f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.loc[:, (table != "").any()]  # benchmarks without runs at this scale (WebShop, embedded)
    paper = [f"{r.method} {r.table} {r.setting or ''} {r.metric}: {r.value:g}".replace("  ", " ")
             for r in rep[rep.table.isin(["gain_over_gigpo", "per_task_type", "best"])].itertuples()
             if pd.notna(r.value)]
    write_table(table, out_dir / "main_table.csv", out_dir / "main_table.md",
                "PA-MoE main table: ALFWorld success (%) per method and task type",
                [_scale_note(scale),
                 "reproduced: mean ± std over seeds from eval.json (valid_seen = in-distribution, valid_unseen = "
                 f"out-of-distribution), episodes sampled at temperature {temperatures(s)} (the paper: 0.4); "
                 "per task type: valid_seen, mean over seeds. gigpo = every weight trained (HGPO's run); "
                 "gigpo_lora = one LoRA of the experts' total rank; token_moe = the same experts routed per token.",
                 "reported (secondary: a note on arXiv v1 and an aggregator, agentic-rl.md §6.9; model and split "
                 "mostly not given): " + "; ".join(paper),
                 "claims: one Welch test each at α = 0.05, not corrected for the six comparisons.",
                 *[f"claim: {line}" for line in success_claims(s)]])
    main_bars(s[s.task_type == "all"], list(dict.fromkeys(s.method)), out_dir / "main_table.png", scale)


def _eval_usage(evals: list[Path]) -> pd.DataFrame:
    """One row per (eval file, split, task type, expert): its share of the steps (eval.json ``experts``)."""
    rows = []
    for p in evals:
        e = rio.read_json(p)
        for split, res in e["splits"].items():
            for tt, shares in res.get("experts", {}).get("share_by_task_type", {}).items():
                rows += [{"method": e["method"], "seed": e["seed"], "split": split, "task_type": tt, "expert": k,
                          "share": v} for k, v in enumerate(shares)]
    return pd.DataFrame(rows, columns=["method", "seed", "split", "task_type", "expert", "share"])


def switch_claims(s: pd.DataFrame, logs: pd.DataFrame) -> list[str]:
    """PA-MoE switches experts less often than token routing: evaluation (valid_seen, summary) and
    training batches (per seed, the mean over iterations), Welch over seeds; lower is better."""
    lines = []
    g = _metric(s, "valid_seen", "switches_per_episode")
    if {"pamoe", "token_moe"} <= set(g.index):
        lines.append(claim_line("pamoe switches less than token_moe (valid_seen, per episode, a step's expert = "
                                "its tokens' majority for token_moe)", welch(g.loc["pamoe"], g.loc["token_moe"]),
                                higher_is_better=False, digits=2))
    col = "moe/switches_per_episode"
    if col in logs:
        per_seed = logs[logs.iteration > 0].dropna(subset=[col]).groupby(["method", "seed"])[col].mean()
        stats = per_seed.groupby("method").agg(mean="mean", std="std", n_seeds="count").fillna({"std": 0.0})
        if {"pamoe", "token_moe"} <= set(stats.index):
            lines.append(claim_line("pamoe switches less than token_moe (training batches)",
                                    welch(stats.loc["pamoe"], stats.loc["token_moe"]), higher_is_better=False,
                                    digits=2))
    return lines


@registry.FIGURES.register("pamoe/routing")
def routing(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str,
            evals: list[Path] = ()) -> None:
    """Switches per episode (evaluation and training) for PA-MoE and token routing beside the
    paper's ≈45 / 3 / 8.4, and each expert's share of the steps per task type."""
    s = pd.read_csv(summary)
    s = s[s.benchmark == "alfworld"]
    logs = read_train_logs(train_logs)
    rep = reported_numbers(reported)
    rep = rep[rep.table == "switches"].set_index("method")
    rows = []
    for method in [m for m in ORDER if m in set(s.method)]:
        row = {"method": method}
        for metric, label in (("switches_per_episode", "switches / episode"),
                              ("token_switches_per_episode", "token switches / episode")):
            for split in ("valid_seen", "valid_unseen"):
                g = s[(s.method == method) & (s.split == split) & (s.metric == metric)]
                if len(g):
                    spread = f" ± {g['std'].iloc[0]:.2f}" if g["n_seeds"].iloc[0] > 1 else ""
                    row[f"{label} ({split})"] = f"{g['mean'].iloc[0]:.2f}{spread}"
        if "moe/switches_per_episode" in logs:
            tr = logs[(logs.method == method) & (logs.iteration > 0)]["moe/switches_per_episode"].dropna()
            if len(tr):
                row["switches / episode (training)"] = f"{tr.mean():.2f}"
        if len(row) > 1:
            row["paper"] = f"{rep.loc[method, 'value']:g}" if method in rep.index else "n/f"
            rows.append(row)
    use = _eval_usage(list(evals))
    use = use[(use.split == "valid_seen") & (use.seed == use.seed.min())]  # expert k of one seed is not k of another
    shares = (use.groupby(["method", "task_type", "expert"]).share.mean().unstack("expert")
              if len(use) else pd.DataFrame())
    share_lines = [f"{m} {tt}: " + " / ".join(f"{v:.2f}" for v in r) for (m, tt), r in shares.iterrows()]
    write_table(pd.DataFrame(rows), out_dir / "routing.csv", out_dir / "routing.md",
                "Routing: expert switches per episode, PA-MoE (per step) vs token-level routing",
                [_scale_note(scale),
                 "switches / episode: consecutive steps of one episode written by different experts (PA-MoE: "
                 "the router's choice; token_moe: the expert most of the step's response tokens chose at the "
                 "first adapted projection); token switches: changes between consecutive response tokens of "
                 "the episode. Evaluation: eval.json, mean ± std over seeds; training: train_log.csv, mean "
                 "over iterations and seeds.",
                 "paper: ≈45 (token routing, in step equivalents of ~1200 token switches; conversion not given), "
                 "3 (trajectory routing, not built here), 8.4 (PA-MoE) per episode, a note on arXiv v1 [S] (§3.8.1).",
                 "expert share of the valid_seen steps per task type (experts 0..K-1), the lowest seed "
                 "(experts are not aligned across seeds): "
                 + ("; ".join(share_lines) or "n/a"),
                 *[f"claim: {line}" for line in switch_claims(s, logs)]])
    fig, axes = new_figure(10.0, 3.6, ncols=2)
    ax = axes[0]
    g = s[(s.split == "valid_seen") & (s.metric == "switches_per_episode")].drop_duplicates("method")
    g = g.set_index("method").reindex([m for m in ORDER if m in set(g.method)])
    ax.bar(range(len(g)), g["mean"], yerr=g["std"].fillna(0), color=COLORS[: len(g)], capsize=3)
    ax.set_xticks(range(len(g)), g.index)
    ax.set_ylabel("expert switches per episode")
    ax.set_title(f"valid_seen ({scale} scale)")
    ax = axes[1]
    pam = shares.loc["pamoe"] if len(shares) and "pamoe" in shares.index.get_level_values(0) else pd.DataFrame()
    if len(pam):
        im = ax.imshow(pam.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_yticks(range(len(pam)), [t.replace("_then_place_in_recep", "") for t in pam.index], fontsize=6)
        ax.set_xticks(range(pam.shape[1]), [f"expert {k}" for k in pam.columns], fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.05)
    ax.set_title("PA-MoE: expert share per task type")
    save_figure(fig, out_dir / "routing.png")


@registry.FIGURES.register("pamoe/occupancy")
def occupancy(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """The paper's Fig. 1 statistic on our training batches: per task type, the share of iterations
    whose batch it makes up more than 50% of (rows), and its mean share, per method."""
    logs = read_train_logs(train_logs)
    cols = [c for c in logs if c.startswith("share/")]
    rep = reported_numbers(reported)
    rep = rep[rep.table == "fig1_occupancy"]
    rows = []
    for method, g in (logs[logs.iteration > 0].dropna(subset=cols[:1]).groupby("method") if cols else []):
        for c in cols:
            rows.append({"method": method, "task_type": c.removeprefix("share/"), "batches": len(g),
                         "occupancy_pct": round(100 * float((g[c] > 0.5).mean()), 1),
                         "mean_share_pct": round(100 * float(g[c].mean()), 1)})
    df = pd.DataFrame(rows, columns=["method", "task_type", "batches", "occupancy_pct", "mean_share_pct"])
    paper = "; ".join(f"{r.setting}: {r.value:g}%" for r in rep.itertuples())
    write_table(df, out_dir / "occupancy.csv", out_dir / "occupancy.md",
                "Simplicity bias: task-type occupancy of the training batches (the paper's Fig. 1 statistic)",
                [_scale_note(scale),
                 "occupancy = % of training iterations whose batch the task type makes up more than 50% of "
                 "(share of step rows, diagnostic task_shares); mean share = its mean share of the rows. "
                 "Tasks are drawn uniformly from the train games, as verl-agent's sampler.",
                 f"paper (arXiv v3 Fig. 1 caption [F], its single network): {paper or 'n/f'}; whether a batch "
                 "is counted in episodes or steps is not stated [I]."])
    fig, ax = new_figure(7.0, 3.4)
    if len(df):
        piv = df.pivot(index="task_type", columns="method", values="mean_share_pct")
        x = np.arange(len(piv))
        w = 0.8 / max(piv.shape[1], 1)
        for k, m in enumerate(piv.columns):
            ax.bar(x + (k - (piv.shape[1] - 1) / 2) * w, piv[m], w, color=COLORS[k % len(COLORS)], label=m)
        ax.set_xticks(x, [t.replace("_then_place_in_recep", "") for t in piv.index], rotation=20, fontsize=7)
        ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("mean share of the batch's steps (%)")
    ax.set_title(f"Task types in the training batches ({scale} scale)")
    ax.legend(frameon=False, fontsize=7)
    save_figure(fig, out_dir / "occupancy.png")
