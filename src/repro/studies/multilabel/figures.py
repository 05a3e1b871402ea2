"""The MCC and CAMEL figures' shared pieces: the seven metrics in the papers' order over the
table helpers of ``repro.figures.tables``, and the metric bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro.figures import tables
from repro.figures.tables import per_seed  # noqa: F401  (the studies' figures import it from here)
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


def reproduced_rows(summary: Path, order: list[str], split: str = "test") -> pd.DataFrame:
    """One row per (benchmark, model, method): the seven metrics as 'mean ± std' over seeds."""
    return tables.reproduced_rows(summary, order, METRICS7, split)


def reported_rows(reported: Path) -> tuple[pd.DataFrame, list[str]]:
    """Reported rows in the reproduced table's shape, and the file's notes (rows without a value)."""
    return tables.reported_rows(reported, METRICS7)


def paired_claim(seeds: pd.DataFrame, a: str, b: str, metric: str, text: str) -> list[str]:
    """``tables.paired_claim`` in the metric's own direction."""
    return tables.paired_claim(seeds, a, b, metric, text, higher=HIGHER[metric])


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
