"""Table pieces the agentic-RL studies' figures share (HGPO, GraphGPO, PA-MoE): which summary rows
are main runs, one table cell, the model column, the sampling temperatures and the train-time
validation curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro.figures.claims import claim_line, welch
from repro.figures.style import COLORS, method_order, new_figure, save_figure
from repro.figures.summary import read_train_logs

#: the main tables' cells: (label, benchmark, split, metric); ALFWorld in / out of distribution,
#: WebShop score and success
MAIN_CELLS = [("ALFWorld In", "alfworld", "valid_seen", "success_rate_pct"),
              ("ALFWorld Out", "alfworld", "valid_unseen", "success_rate_pct"),
              ("WebShop score", "webshop", "test", "score"),
              ("WebShop succ.", "webshop", "test", "success_rate_pct")]


def main_runs(s: pd.DataFrame) -> pd.DataFrame:
    """The summary's rows of runs that are not ablations (``ablation`` as the study config says)."""
    return s[~s["ablation"].fillna(False).astype(bool)] if "ablation" in s else s


def temperatures(summary: pd.DataFrame) -> str:
    temps = summary["temperature"].dropna().unique() if "temperature" in summary else []
    return ", ".join(f"{t:g}" for t in sorted(temps)) or "n/a"


def cell(df: pd.DataFrame, bench: str, split: str, metric: str, fmt: str = "{:.1f}") -> str:
    """``mean ± std`` (summary rows: ``mean``; reported rows: ``value``) of one benchmark, split and
    metric; no ± for one seed; 'n/f' where there is no row."""
    g = df[(df.benchmark == bench) & (df.split == split) & (df.metric == metric)]
    if not len(g):
        return "n/f"
    mean, std = g["mean" if "mean" in g else "value"].iloc[0], g["std"].iloc[0]
    one_seed = "n_seeds" in g and g["n_seeds"].iloc[0] < 2  # no spread to show
    return fmt.format(mean) + (f" ± {std:.1f}" if pd.notna(std) and not one_seed else "")


def model_label(s: pd.DataFrame, scale: str) -> pd.Series:
    """The embedded scale trains one tiny model per benchmark; one row per method there."""
    return pd.Series("tiny (one per benchmark)", index=s.index) if scale == "embedded" else s.model


def validation_curve(train_logs: list[Path], col: str = "eval/val/success_rate") -> pd.DataFrame:
    """Train-time validation ``col`` (x 100) per benchmark, method and iteration: mean, std (0 for
    one seed) and seed count over the runs' train_log.csv."""
    logs = read_train_logs(train_logs)
    v = logs.dropna(subset=[col]) if col in logs else logs.iloc[0:0]
    keys = ["benchmark", "method", "iteration"]
    agg = (v.groupby(keys)[col].agg(["mean", "std", "count"]).reset_index()
           if len(v) else pd.DataFrame(columns=[*keys, "mean", "std", "count"]))
    agg["std"] = agg["std"].fillna(0.0)
    agg[["mean", "std"]] = (100 * agg[["mean", "std"]]).round(2)
    return agg


def reproduced_row(model: str, method: str, grp: pd.DataFrame) -> dict:
    """One method's main-table row so far: model, method, seeds and each ``MAIN_CELLS`` cell
    reproduced ('' for a benchmark the method has no run on)."""
    row = {"model": model, "method": method, "seeds": int(grp.n_seeds.max())}
    for label, bench, split, metric in MAIN_CELLS:
        row[f"{label} reproduced"] = cell(grp, bench, split, metric) if (grp.benchmark == bench).any() else ""
    return row


def ordering_claims(s: pd.DataFrame, cells: list[tuple[str, str, str]], pairs: list[tuple[str, str]],
                    paper: pd.DataFrame | None = None) -> list[str]:
    """The paper's orderings "a > b" on each (benchmark, split, metric) of ``cells``, Welch's t
    over seeds from summary rows ``s``; pairs without both methods are skipped. ``paper``: reported
    rows (``method``, ``benchmark``, ``split``, ``metric``, ``value``); where it has both methods'
    cell, the claim quotes them ("a's vs b's")."""
    lines = []
    for bench, split, metric in cells:
        g = s[(s.benchmark == bench) & (s.split == split) & (s.metric == metric)].drop_duplicates("method")
        g = g.set_index("method")
        for a, b in pairs:
            if a in g.index and b in g.index:
                reported = "" if paper is None else " vs ".join(cell(paper[paper.method == m], bench, split, metric,
                                                                     "{:g}") for m in (a, b))
                lines.append(claim_line(f"{bench}: {a} > {b} ({split} {metric})", welch(g.loc[a], g.loc[b]),
                                        digits=1, unit=" points", paper="" if "n/f" in reported else reported))
    return lines


def in_order(s: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Summary rows sorted by method in the paper's ``order`` (others after it), stable otherwise."""
    rank = {m: i for i, m in enumerate(method_order(s.method, order))}
    return s.iloc[np.argsort([rank[m] for m in s.method], kind="stable")]


def main_bars(s: pd.DataFrame, methods: list[str], path: Path, scale: str) -> None:
    """The main table as bars: ALFWorld success (in / out) and WebShop score / success per method,
    mean ± std over seeds."""
    fig, axes = new_figure(10.0, 3.6, ncols=2)
    x = np.arange(len(methods))
    for ax, cells, title in ((axes[0], MAIN_CELLS[:2], "ALFWorld success (%)"),
                             (axes[1], MAIN_CELLS[2:], "WebShop (%)")):
        for k, (label, bench, split, metric) in enumerate(cells):
            g = (s[(s.benchmark == bench) & (s.split == split) & (s.metric == metric)]
                 .drop_duplicates("method").set_index("method").reindex(methods))
            ax.bar(x + (k - 0.5) * 0.38, g["mean"], 0.38, yerr=g["std"], capsize=3, color=COLORS[k], label=label)
        ax.set_xticks(x, methods, rotation=20)
        ax.set_title(f"{title}, {scale} scale")
        ax.legend(frameon=False, fontsize=7)
    save_figure(fig, path)


def metric_bars(panels: list[tuple[str, pd.DataFrame]], metrics: tuple[tuple[str, str], ...], path: Path,
                note: str) -> None:
    """One panel per (title, summary rows of one benchmark and split): a bar per method and metric
    (``(label, metric)``), mean ± std over seeds."""
    fig, axes = new_figure(3.2 * len(panels) + 1, 3.4, ncols=max(len(panels), 1))
    axes = np.atleast_1d(axes)
    for ax, (title, s) in zip(axes, panels):
        methods = list(dict.fromkeys(s.method))
        for j, (label, metric) in enumerate(metrics):
            g = s[s.metric == metric].drop_duplicates("method").set_index("method").reindex(methods)
            x = np.arange(len(methods)) + (j - (len(metrics) - 1) / 2) * 0.38
            ax.bar(x, g["mean"], 0.36, yerr=g["std"].fillna(0), label=f"{label}@k",
                   color=COLORS[j % len(COLORS)], capsize=2)
        ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("%")
    axes[0].legend(fontsize=8)
    fig.suptitle(note, fontsize=7)
    save_figure(fig, path)
