"""Table helpers shared by the MCC and CAMEL figures: the seven metrics in the papers' order, the
reproduced mean ± std cells, and paired per-seed differences between two methods (the claims).

Reproduced numbers come from ``summary.csv`` and, for paired differences, from the ``eval.json``
beside each run's ``train_log.csv`` (written by the ``evaluate`` rule); nothing is hard-coded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import io as rio
from repro.figures.claims import claim_line, paired
from repro.reported import load as reported_numbers
from repro.figures.style import COLORS, method_order, new_figure, pyplot, save_figure
from repro.figures.style import scale_note as _note

# (metric, label, higher is better), in the order of CAMEL's tables
METRICS7 = [("one_error", "One-error↓", False), ("hamming_loss", "Hamming↓", False),
            ("coverage", "Coverage↓", False), ("ranking_loss", "Ranking loss↓", False),
            ("average_precision", "Avg. precision↑", True), ("macro_f1", "Macro-F1↑", True),
            ("micro_f1", "Micro-F1↑", True)]
HIGHER = {m: h for m, _, h in METRICS7}


def scale_note(scale: str, study: str) -> str:
    return _note(scale, "generated multi-label data with latent label topics, `multilabel/embedded`; CPU; "
                        f"see src/repro/studies/{study}/README.md",
                 "Mulan datasets; the fixed train/test partition of each dataset")


def cell(mean: float, std: float, n: int) -> str:
    return f"{mean:.3f}" + (f" ± {std:.3f}" if n > 1 and pd.notna(std) else "")


def reproduced_rows(summary: Path, order: list[str], split: str = "test") -> pd.DataFrame:
    """One row per (benchmark, model, method): the seven metrics as 'mean ± std' over seeds."""
    s = pd.read_csv(summary)
    s = s[(s.split == split) & (s.task_type == "all")]
    rows = []
    rank = {m: i for i, m in enumerate(method_order(s.method, order))}
    for (bench, model, method), g in sorted(s.groupby(["benchmark", "model", "method"]),
                                            key=lambda kv: (kv[0][0], kv[0][1], rank[kv[0][2]])):
        row = {"benchmark": bench, "model": model, "method": method, "source": "reproduced",
               "seeds": int(g.n_seeds.max())}
        for m, label, _ in METRICS7:
            r = g[g.metric == m]
            row[label] = cell(r["mean"].iloc[0], r["std"].iloc[0], int(r.n_seeds.iloc[0])) if len(r) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def reported_rows(reported: Path) -> tuple[pd.DataFrame, list[str]]:
    """Reported rows in the reproduced table's shape, and the file's notes (rows without a value)."""
    rep = reported_numbers(reported)
    notes = [n for n in dict.fromkeys(rep["note"]) if n]
    rep = rep.dropna(subset=["value"])
    rows = []
    for (bench, method), g in rep.groupby(["benchmark", "method"]):
        row = {"benchmark": bench, "model": "paper", "method": method, "source": "reported", "seeds": ""}
        for m, label, _ in METRICS7:
            r = g[g.metric == m]
            row[label] = (f"{r.value.iloc[0]:.3f}" + (f" ± {r['std'].iloc[0]:.3f}" if pd.notna(r['std'].iloc[0]) else "")
                          if len(r) else "n/f")
        rows.append(row)
    return pd.DataFrame(rows), notes


def per_seed(train_logs: list[Path], split: str = "test") -> pd.DataFrame:
    """Long table (benchmark, model, method, seed, metric, value) from the eval.json next to each
    run's train_log.csv (results/<scale>/<study>/<benchmark>/<model>/<method>/seed<k>/)."""
    rows = []
    for p in map(Path, train_logs):
        e = rio.read_json(p.parent / "eval.json")
        for m, v in e["splits"].get(split, {}).get("metrics", {}).items():
            rows.append({"benchmark": e["benchmark"], "model": e["model"], "method": e["method"],
                         "seed": int(e["seed"]), "metric": m, "value": float(v)})
    return pd.DataFrame(rows, columns=["benchmark", "model", "method", "seed", "metric", "value"])


def paired_claim(seeds: pd.DataFrame, a: str, b: str, metric: str, text: str) -> list[str]:
    """One line per (benchmark, model): does ``a`` beat ``b`` on ``metric``, as measured: the mean and
    standard error of the per-seed difference a - b over the seeds both ran, and the paired t-test
    on it (``repro.figures.claims``)."""
    out = []
    if not len(seeds):
        return [f"{text}: no runs"]
    for (bench, model), g in seeds[seeds.metric == metric].groupby(["benchmark", "model"]):
        wide = g.pivot_table(index="seed", columns="method", values="value")
        if a not in wide or b not in wide:
            out.append(f"{text} ({bench}): not measured ({a} or {b} not run)")
            continue
        d = (wide[a] - wide[b]).dropna().to_numpy()
        wins = int(np.sum(d > 0 if HIGHER[metric] else d < 0))
        out.append(claim_line(f"{text} ({bench}, {model})", paired(d), higher_is_better=HIGHER[metric], digits=4,
                              label=f"Δ {metric} = ",
                              detail=f"mean ± standard error over the seeds of {a} − {b}; "
                                     f"{'higher' if HIGHER[metric] else 'lower'} is better; {a} better on "
                                     f"{wins} of {len(d)} seeds"))
    return out


def metric_bars(summary: Path, order: list[str], out: Path, title: str, split: str = "test") -> None:
    """Bar chart per benchmark (one row each): the seven metrics in two panels (lower / higher is
    better), one bar per method, error bars = std over seeds."""
    plt = pyplot()

    s = pd.read_csv(summary)
    s = s[(s.split == split) & (s.task_type == "all")]
    methods = method_order(s.method, order)
    benches = sorted(set(s.benchmark))
    new_figure()  # the shared rcParams
    fig, axes = plt.subplots(len(benches), 2, figsize=(10.0, 3.2 * len(benches)), constrained_layout=True,
                             squeeze=False)
    for row, bench in zip(axes, benches):
        for ax, higher in zip(row, (False, True)):
            mets = [(m, lab) for m, lab, h in METRICS7 if h == higher]
            x = np.arange(len(mets))
            w = 0.8 / max(len(methods), 1)
            for k, meth in enumerate(methods):
                g = (s[(s.method == meth) & (s.benchmark == bench)].groupby("metric")[["mean", "std"]].mean()
                     .reindex([m for m, _ in mets]))
                ax.bar(x + (k - (len(methods) - 1) / 2) * w, g["mean"], w, yerr=g["std"], capsize=2,
                       color=COLORS[k % len(COLORS)], label=meth)
            ax.set_xticks(x, [lab for _, lab in mets], rotation=15)
            ax.set_title(f"{bench}: {'higher' if higher else 'lower'} is better")
        row[1].legend(frameon=False, fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out)
