"""Table helpers shared by the studies whose figures are metric tables over seeds (multi-label,
vision-language): reproduced mean ± std cells, reported rows in the same shape, and paired
per-seed differences between two methods (the claims).

Reproduced numbers come from ``summary.csv`` and, for paired differences, from the ``eval.json``
beside each run's ``train_log.csv`` (written by the ``evaluate`` rule); nothing is hard-coded.
A metric list is ``[(metric, column label, higher is better), ...]`` in the paper's order; an entry
may carry a fourth item, its own number of decimals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import io as rio
from repro.figures.claims import claim_line, paired
from repro.figures.style import COLORS, method_order, new_figure, save_figure
from repro.reported import load as reported_numbers

Metrics = list[tuple]


def cell(mean: float, std: float, n: int, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 and pd.notna(std) else "")


def reproduced_rows(summary: Path, order: list[str], metrics: Metrics, split: str = "test",
                    digits: int = 3) -> pd.DataFrame:
    """One row per (benchmark, model, method): each metric as 'mean ± std' over seeds."""
    s = pd.read_csv(summary)
    s = s[(s.split == split) & (s.task_type == "all")]
    rows = []
    rank = {m: i for i, m in enumerate(method_order(s.method, order))}
    for (bench, model, method), g in sorted(s.groupby(["benchmark", "model", "method"]),
                                            key=lambda kv: (kv[0][0], kv[0][1], rank[kv[0][2]])):
        row = {"benchmark": bench, "model": model, "method": method, "source": "reproduced",
               "seeds": int(g.n_seeds.max())}
        for m, label, _, *own in metrics:
            r = g[g.metric == m]
            row[label] = (cell(r["mean"].iloc[0], r["std"].iloc[0], int(r.n_seeds.iloc[0]), (own or [digits])[0])
                          if len(r) else "n/a")
        rows.append(row)
    return pd.DataFrame(rows)


def reported_rows(reported: Path, metrics: Metrics, digits: int = 3, by: tuple[str, ...] = ("benchmark", "method")
                  ) -> tuple[pd.DataFrame, list[str]]:
    """Reported rows in the reproduced table's shape ('n/f' where the paper gives none), and the
    file's notes (rows without a value)."""
    rep = reported_numbers(reported)
    notes = [n for n in dict.fromkeys(rep["note"]) if n]
    rep = rep.dropna(subset=["value"])
    rows = []
    for key, g in rep.groupby(list(by)):
        row = {**dict(zip(by, key)), "source": "reported", "seeds": ""}
        row.setdefault("model", "paper")
        for m, label, _, *own in metrics:
            r = g[g.metric == m]
            d = (own or [digits])[0]
            row[label] = (f"{r.value.iloc[0]:.{d}f}"
                          + (f" ± {r['std'].iloc[0]:.{d}f}" if pd.notna(r['std'].iloc[0]) else "")
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


def paired_claim(seeds: pd.DataFrame, a: str, b: str, metric: str, text: str, *, higher: bool = True,
                 digits: int = 4) -> list[str]:
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
        wins = int(np.sum(d > 0 if higher else d < 0))
        out.append(claim_line(f"{text} ({bench}, {model})", paired(d), higher_is_better=higher, digits=digits,
                              label=f"Δ {metric} = ",
                              detail=f"mean ± standard error over the seeds of {a} − {b}; "
                                     f"{'higher' if higher else 'lower'} is better; {a} better on "
                                     f"{wins} of {len(d)} seeds"))
    return out


def lowest_seed_runs(evals: list[Path], key: tuple[str, ...] = ("model", "method")) -> dict[tuple, dict]:
    """The eval.json of the lowest seed per ``key`` (a figure drawn from one run per cell)."""
    runs: dict[tuple, dict] = {}
    for p in evals:
        e = rio.read_json(p)
        k = tuple(e[c] for c in key)
        if k not in runs or e["seed"] < runs[k]["seed"]:
            runs[k] = e
    return runs


def model_bars(summary: Path, order: list[str], panels: list[tuple[str, str]], out: Path, title: str,
               labels: dict[str, str] | None = None, split: str = "test", ylim: tuple[float, float] = (0, 100)) -> None:
    """One panel per (metric, y label): a bar group per base model (x, renamed by ``labels``), one
    bar per method in ``order``, error bars = std over seeds."""
    s = pd.read_csv(summary)
    s = s[s.split == split]
    models, methods = sorted(set(s.model)), method_order(s.method, order)
    fig, axes = new_figure(4.5 * len(panels), 3.2, ncols=len(panels))
    w = 0.8 / max(len(methods), 1)
    for ax, (metric, label) in zip(np.atleast_1d(axes), panels):
        for k, meth in enumerate(methods):
            g = s[(s.method == meth) & (s.metric == metric)].set_index("model").reindex(models)
            ax.bar(np.arange(len(models)) + (k - (len(methods) - 1) / 2) * w, g["mean"], w, yerr=g["std"],
                   capsize=2, color=COLORS[k % len(COLORS)], label=meth)
        ax.set_xticks(np.arange(len(models)), [(labels or {}).get(m, m) for m in models])
        ax.set_ylabel(label)
        ax.set_ylim(*ylim)
    np.atleast_1d(axes)[0].legend(frameon=False, fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out)
