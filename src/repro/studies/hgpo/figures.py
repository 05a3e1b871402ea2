"""HGPO paper tables and figures: Table 1 (ALFWorld in/out of distribution), training curves and
per-task-type success. Reproduced numbers come from ``summary.csv`` (built from ``eval.json``);
reported numbers from ``paper_figures/reported/hgpo.csv``, shown beside them, never instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.style import COLORS, new_figure, save_figure, write_table

SPLIT_LABEL = {"valid_seen": "In (valid_seen)", "valid_unseen": "Out (valid_unseen)"}


def _scale_note(scale: str) -> str:
    if scale == "embedded":
        return ("scale: embedded (tiny Qwen2 on generated ALFWorld games, CPU). Reproduced numbers show "
                "each method's effect in miniature; they are not comparable in level to the paper's.")
    return "scale: paper (Qwen2.5-Instruct on ALFWorld's release games)."


def _temperatures(summary: pd.DataFrame) -> str:
    temps = summary["temperature"].dropna().unique() if "temperature" in summary else []
    return ", ".join(f"{t:g}" for t in sorted(temps)) or "n/a"


@registry.FIGURES.register("hgpo/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Table 1: success (%) per method and split, reproduced mean ± std beside the reported values."""
    s = pd.read_csv(summary)
    s = s[s.task_type == "all"]
    rep = pd.read_csv(reported)
    rep = rep[(rep.protocol == "hgpo_table1") & (rep.task_type == "all") & (rep.history_length == 2)]
    rows = []
    for (model, method), grp in s.groupby(["model", "method"], sort=False):
        row = {"model": model, "method": method, "seeds": int(grp.n_seeds.max())}
        for split in ("valid_seen", "valid_unseen"):
            g = grp[grp.split == split]
            row[f"{SPLIT_LABEL[split]} reproduced"] = (
                f"{g['mean'].iloc[0]:.1f} ± {g['std'].iloc[0]:.1f}" if len(g) else "")
        for split in ("valid_seen", "valid_unseen"):
            r = rep[(rep.method == method) & (rep.split == split)
                    & (rep.model == "qwen2.5-1.5b-instruct")]
            row[f"{SPLIT_LABEL[split]} reported (1.5B)"] = f"{r['value'].iloc[0]:.2f}" if len(r) else "n/f"
        rows.append(row)
    df = pd.DataFrame(rows)
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "HGPO Table 1: ALFWorld success (%), GRPO vs GiGPO vs HGPO (K = 2)",
                [_scale_note(scale),
                 "reproduced: mean ± std over seeds, from eval.json (valid_seen = in-distribution, "
                 "valid_unseen = out-of-distribution), episodes sampled at temperature "
                 f"{_temperatures(s)} (the paper evaluates at 0.4).",
                 "reported: HGPO Table 1 for Qwen2.5-1.5B-Instruct as quoted by third-party reproduction "
                 "notes (paper_figures/reported/hgpo.csv has every source); 'n/f' = not found.",
                 "warmstart = the base model before RL (for the paper, the prompted Instruct model)."])
    fig, ax = new_figure()
    methods = list(df.method)
    x = np.arange(len(methods))
    for k, split in enumerate(("valid_seen", "valid_unseen")):
        g = s[s.split == split].set_index("method").reindex(methods)
        ax.bar(x + (k - 0.5) * 0.38, g["mean"], 0.38, yerr=g["std"], capsize=3, color=COLORS[k],
               label=f"{SPLIT_LABEL[split]} (reproduced)")
    ax.set_xticks(x, methods)
    ax.set_ylabel("success (%)")
    ax.set_title(f"ALFWorld success by method ({scale} scale)")
    ax.legend(frameon=False)
    save_figure(fig, out_dir / "main_table.png")


def _read_logs(train_logs: list[Path]) -> pd.DataFrame:
    frames = []
    for p in train_logs:
        df = pd.read_csv(p)
        parts = p.parts  # results/<scale>/<study>/<benchmark>/<model>/<method>/seed<seed>/train_log.csv
        df["method"], df["seed"] = parts[-3], int(parts[-2].removeprefix("seed"))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@registry.FIGURES.register("hgpo/eval_curve")
def eval_curve(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Train-time validation success (valid_seen) vs iteration: mean ± band over seeds per method."""
    logs = _read_logs(train_logs)
    col = "eval/valid_seen/success_rate"
    v = logs.dropna(subset=[col]) if col in logs else logs.iloc[0:0]
    agg = (v.groupby(["method", "iteration"])[col].agg(["mean", "std", "count"]).reset_index()
           if len(v) else pd.DataFrame(columns=["method", "iteration", "mean", "std", "count"]))
    agg["std"] = agg["std"].fillna(0.0)
    agg[["mean", "std"]] = (100 * agg[["mean", "std"]]).round(2)
    write_table(agg.rename(columns={"count": "seeds"}), out_dir / "eval_curve.csv", out_dir / "eval_curve.md",
                "Train-time validation success (valid_seen, %) vs iteration",
                [_scale_note(scale), "from train_log.csv (train-time validation, sampled at the "
                 "validation temperature); final numbers come from eval.json, see main_table."])
    fig, ax = new_figure()
    for k, (method, g) in enumerate(agg.groupby("method", sort=False)):
        c = COLORS[k % len(COLORS)]
        ax.plot(g.iteration, g["mean"], marker="o", color=c, label=method)
        ax.fill_between(g.iteration, g["mean"] - g["std"], g["mean"] + g["std"], color=c, alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("valid_seen success (%)")
    ax.set_title(f"Training curves ({scale} scale)")
    ax.legend(frameon=False)
    save_figure(fig, out_dir / "eval_curve.png")


@registry.FIGURES.register("hgpo/task_types")
def task_types(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Final success per ALFWorld task type and method (valid_seen), mean ± std over seeds."""
    s = pd.read_csv(summary)
    s = s[(s.task_type != "all")]
    table = s.pivot_table(index=["split", "task_type"], columns="method", values="mean").round(1).reset_index()
    write_table(table, out_dir / "task_types.csv", out_dir / "task_types.md",
                "Success (%) per ALFWorld task type (mean over seeds)",
                [_scale_note(scale), "from summary.csv (eval.json)."])
    seen = s[s.split == "valid_seen"]
    types = sorted(seen.task_type.unique())
    methods = list(dict.fromkeys(seen.method))
    fig, ax = new_figure(7.5, 3.6)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(types))
    for k, m in enumerate(methods):
        g = seen[seen.method == m].set_index("task_type").reindex(types)
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, g["mean"], width, yerr=g["std"], capsize=2,
               color=COLORS[k % len(COLORS)], label=m)
    ax.set_xticks(x, [t.replace("_then_place_in_recep", "").replace("_", " ") for t in types],
                  rotation=20, ha="right")
    ax.set_ylabel("valid_seen success (%)")
    ax.set_title(f"Success per task type ({scale} scale)")
    ax.legend(frameon=False, ncol=2)
    save_figure(fig, out_dir / "task_types.png")
