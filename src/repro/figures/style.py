"""Shared plotting style and the table writer (csv + markdown) for every study's figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro import io as rio

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def method_order(methods, order: list[str]) -> list[str]:
    """The distinct ``methods`` in the study's ``order`` (the paper's), others after it by name."""
    return sorted(dict.fromkeys(methods), key=lambda m: (order.index(m) if m in order else len(order), m))


def scale_note(scale: str, embedded: str, paper: str) -> str:
    """The first note of every table: which scale made the numbers and what that scale is."""
    if scale == "embedded":
        return (f"scale: embedded ({embedded}). Reproduced numbers show each method's effect in miniature; "
                f"their level is not comparable to the paper's.")
    return f"scale: paper ({paper})."


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, imported when a figure is drawn (~1 s: jobs that
    only import a study's package, e.g. to train, do not pay it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float = 6.0, height: float = 3.6, ncols: int = 1):
    """(figure, axes): one axes, or an array of ``ncols`` side by side."""
    plt = pyplot()
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt.subplots(1, ncols, figsize=(width, height), constrained_layout=True)


def save_figure(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=150)
    pyplot().close(fig)
    tmp.replace(path)


def write_table(df: pd.DataFrame, csv_path: Path, md_path: Path, title: str, notes: list[str]) -> None:
    """The same table as CSV and as a markdown page with a title and notes (scale, sources)."""
    rio.write_text(csv_path, df.to_csv(index=False))
    md = [f"# {title}", ""] + [f"- {n}" for n in notes] + ["", _markdown(df), ""]
    rio.write_text(md_path, "\n".join(md))


def _markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines)
