"""Summaries of ``eval.json`` files: mean ± std over seeds (DESIGN.md §8).

Reproduced numbers come only from ``eval.json`` written by the ``evaluate`` rule.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro import io as rio

KEYS = ["study", "scale", "benchmark", "model", "method", "split", "temperature", "task_type"]


def eval_rows(paths: list[Path]) -> pd.DataFrame:
    """Long table: one row per (eval file, split, task type) with the success rate in percent."""
    rows = []
    for p in paths:
        e = rio.read_json(p)
        base = {k: e[k] for k in ("study", "scale", "benchmark", "model", "method", "seed")}
        for split, res in e["splits"].items():
            at = {**base, "split": split, "temperature": res.get("temperature")}  # sampling temperature
            rows.append({**at, "task_type": "all", "success": 100 * res["success_rate"]})
            for tt, v in res.get("per_task_type", {}).items():
                rows.append({**at, "task_type": tt, "success": 100 * v})
    return pd.DataFrame(rows)


def summarize(paths: list[Path]) -> pd.DataFrame:
    """Mean, std (Bessel; 0 for one seed) and seed count per method, split and task type."""
    df = eval_rows(paths)
    g = df.groupby(KEYS, sort=True, dropna=False)["success"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["metric"] = "success_rate_pct"
    return out[KEYS + ["metric", "mean", "std", "n_seeds"]].round({"mean": 2, "std": 2})
