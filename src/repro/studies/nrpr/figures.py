"""NRPR tables and figures: the main comparison (accuracy, Macro-F1, AUC per dataset and method) and
the negative-risk diagnostic (how often the risk term r goes negative, with and without the
penalty). Reproduced numbers come from ``summary.csv`` (``eval.json``) and ``train_log.csv``;
reported numbers from ``paper_figures/reported/nrpr.csv``, shown beside them, never instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.style import (
    COLORS,
    method_order,
    new_figure,
    save_figure,
    scale_note,
    write_table,
)
from repro.figures.summary import read_train_logs
from repro.figures.tables import paired_claim, per_seed
from repro.reported import load as reported_numbers

METRICS = [("accuracy", "Accuracy"), ("macro_f1", "Macro-F1"), ("macro_auc_ovr", "AUC")]
ORDER = ["ure", "nrpr", "ure_true_prior", "nrpr_true_prior", "eulac", "ure_ce", "nrpr_ce", "ure_paper_schedule",
         "nrpr_paper_schedule"]
#: (with, without, what): the paper's claims as paired method comparisons, where both ran
CLAIMS = [("nrpr", "ure", "the risk penalty (GCE, θ by KM1)"),
          ("nrpr_true_prior", "ure_true_prior", "the risk penalty (GCE, true θ)"),
          ("nrpr_ce", "ure_ce", "the risk penalty (CE, θ by KM1)"),
          ("nrpr", "eulac", "NRPR over EULAC (one-vs-rest URE)"),
          ("nrpr_paper_schedule", "ure_paper_schedule", "the risk penalty at the authors' schedule (10 epochs, lr 1e-2)")]
PENALTY_CLAIMS = CLAIMS[:3] + CLAIMS[4:]


def _scale_note(scale: str) -> str:
    return scale_note(scale, "sklearn's bundled digits = UCI Optdigits test part, 5 known + 5 augmented classes, "
                             "250 labelled / 500 unlabelled / 500 test, linear model, CPU",
                      "the authors' UCI .mat files and MNIST-format sets, the authors' splits")


def _order(methods) -> list[str]:
    return method_order(methods, ORDER)


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if n > 1 else "")


def claim_lines(seeds: pd.DataFrame, metric: str, label: str) -> list[str]:
    """One line per claim in CLAIMS whose two methods both ran: the mean per-seed difference ± its
    standard error and the paired t-test over the seeds (the runs of one seed share its data draw)."""
    ran = set(seeds.method)
    return [line for with_, without, what in CLAIMS if {with_, without} <= ran
            for line in paired_claim(seeds, with_, without, metric, f"{what} improves {label}")]


@registry.FIGURES.register("nrpr/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Accuracy, Macro-F1 and AUC (%) on the test set per dataset and method, mean ± std over seeds,
    beside the reported values, with the paper's claims as measured differences."""
    s = pd.read_csv(summary)
    s = s[(s.task_type == "all") & (s.split == "test") & s.metric.isin([m for m, _ in METRICS])]
    rep = reported_numbers(reported)
    rep = rep[rep["value"].notna()]
    rows = []
    for bench in sorted(s.benchmark.unique()):
        for method in _order(s[s.benchmark == bench].method):
            g = s[(s.benchmark == bench) & (s.method == method)].set_index("metric")
            row = {"benchmark": bench, "method": method, "seeds": int(g.n_seeds.max())}
            for metric, label in METRICS:
                row[f"{label} reproduced"] = _fmt(g.loc[metric, "mean"], g.loc[metric, "std"],
                                                  int(g.loc[metric, "n_seeds"])) if metric in g.index else ""
            for metric, label in METRICS:
                r = rep[(rep.benchmark == bench) & (rep.method == method) & (rep.metric == metric)]
                row[f"{label} reported"] = (f"{r['value'].iloc[0]:.2f}" + (f" ± {r['std'].iloc[0]:.2f}" if pd.notna(
                    r["std"].iloc[0]) else "")) if len(r) else "n/f"
            rows.append(row)
    df = pd.DataFrame(rows)
    seeds = per_seed(train_logs)
    claims = [line for metric, label in METRICS[:2] for line in claim_lines(seeds, metric, label)]
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "NRPR: test accuracy, Macro-F1 and AUC (%) with augmented classes",
                [_scale_note(scale),
                 "reproduced: mean ± std over training seeds, from eval.json (test split; K+1 classes, the "
                 "augmented classes merged into one; each run's predictor averages the class probabilities of "
                 "its last epochs' models, see the README). AUC = macro mean of per-class one-vs-rest AUCs, "
                 "the number the authors' evaluation code computes.",
                 "reported: paper_figures/reported/nrpr.csv; 'n/f' = not found (the paper's tables were not "
                 "reachable; other-papers.md §1.3).",
                 *claims])
    fig, axes = new_figure(4.0 * len(METRICS), 3.6, ncols=len(METRICS))
    benches = sorted(s.benchmark.unique())
    methods = _order(s.method)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(benches))
    for ax, (metric, label) in zip(np.atleast_1d(axes), METRICS):
        for k, m in enumerate(methods):
            g = s[(s.method == m) & (s.metric == metric)].set_index("benchmark").reindex(benches)
            ax.bar(x + (k - (len(methods) - 1) / 2) * width, 100 * g["mean"], width, yerr=100 * g["std"],
                   capsize=3, color=COLORS[k % len(COLORS)], label=m)
        lo = 100 * s[s.metric == metric]["mean"].min() if (s.metric == metric).any() else 0
        ax.set_ylim(max(0, lo - 10), 100)
        ax.set_xticks(x, benches)
        ax.set_title(f"{label} (%), {scale} scale")
    np.atleast_1d(axes)[-1].legend(loc="lower right", fontsize=7, framealpha=0.9)
    save_figure(fig, out_dir / "main_table.png")


@registry.FIGURES.register("nrpr/negative_risk")
def negative_risk(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """How often the risk term r = Ê_U[ℓ(·,K)] − θ·Ê_L[ℓ(·,K)] is negative during training (share of
    epochs with a negative batch, share of batches), per dataset and method, mean ± std over seeds;
    the plot shows r per epoch (mean over seeds)."""
    logs = read_train_logs(train_logs)
    col = "train/negative_risk_frac"
    if col not in logs:
        logs = pd.DataFrame(columns=["benchmark", "method", "seed", "epoch", col, "train/risk_term"])
    per_seed = (logs.groupby(["benchmark", "method", "seed"])
                .agg(neg_epochs=(col, lambda v: float(np.mean(v > 0))), neg_batches=(col, "mean"),
                     final_r=("train/risk_term", "last"), epochs=("epoch", "max")).reset_index())
    agg = per_seed.groupby(["benchmark", "method"]).agg(
        seeds=("seed", "nunique"), epochs=("epochs", "max"),
        neg_epochs_mean=("neg_epochs", "mean"), neg_epochs_std=("neg_epochs", "std"),
        neg_batches_mean=("neg_batches", "mean"), final_r_mean=("final_r", "mean"),
        final_r_std=("final_r", "std")).reset_index()
    agg = agg.iloc[np.argsort([(ORDER.index(m) if m in ORDER else len(ORDER)) for m in agg.method], kind="stable")]
    table = pd.DataFrame({
        "benchmark": agg.benchmark, "method": agg.method, "seeds": agg.seeds, "epochs": agg.epochs,
        "epochs with r < 0 (%)": [f"{100 * m:.1f} ± {100 * (0 if pd.isna(sd) else sd):.1f}"
                                  for m, sd in zip(agg.neg_epochs_mean, agg.neg_epochs_std)],
        "batches with r < 0 (%)": (100 * agg.neg_batches_mean).round(1),
        "final r": [f"{m:.4f} ± {(0 if pd.isna(sd) else sd):.4f}"
                    for m, sd in zip(agg.final_r_mean, agg.final_r_std)]})
    notes = [_scale_note(scale),
             "from train_log.csv: r is computed on each training batch before the update (the quantity the "
             "penalty acts on); an epoch counts when any of its batches has r < 0.",
             "r estimates (1 − θ)·E_ac[ℓ(f(x), K)] >= 0; a negative r is the overfitting symptom NRPR penalises."]
    for bench in sorted(agg.benchmark.unique()):
        g = agg[agg.benchmark == bench].set_index("method")
        for with_, without, what in PENALTY_CLAIMS:
            if with_ in g.index and without in g.index:
                a, b = 100 * g.loc[with_, "neg_epochs_mean"], 100 * g.loc[without, "neg_epochs_mean"]
                notes.append(f"{bench}: {what} makes r negative less often: {'yes' if a < b else 'no'} "
                             f"({with_} {a:.1f}% vs {without} {b:.1f}% of epochs)")
    write_table(table, out_dir / "negative_risk.csv", out_dir / "negative_risk.md",
                "NRPR: how often the augmented-class risk term goes negative", notes)
    benches = sorted(logs.benchmark.unique()) or ["(no runs)"]
    fig, axes = new_figure(5.0 * len(benches), 3.6, ncols=len(benches))
    for ax, bench in zip(np.atleast_1d(axes), benches):
        lb = logs[logs.benchmark == bench]
        for k, m in enumerate(_order(lb.method)):
            c = lb[lb.method == m].groupby("epoch")["train/risk_term"].agg(["mean", "std"]).reset_index()
            ax.plot(c.epoch, c["mean"], color=COLORS[k % len(COLORS)], label=m)
            ax.fill_between(c.epoch, c["mean"] - c["std"].fillna(0), c["mean"] + c["std"].fillna(0),
                            color=COLORS[k % len(COLORS)], alpha=0.2)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("risk term r")
        ax.set_title(f"{bench} ({scale} scale)")
        ax.legend(frameon=False, fontsize=7)
    save_figure(fig, out_dir / "negative_risk.png")
