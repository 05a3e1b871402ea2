"""The papers' own numbers: one schema for every ``paper_figures/reported/<study>.csv``.

Columns (``COLUMNS``, in this order): ``study``; ``table`` (the paper's table or figure, or where
the number was quoted from); ``benchmark``, ``model``, ``method``, ``metric``, ``split`` (names as
the workflow uses them; empty where they do not apply); ``setting`` (other conditions of the
number as ``key=value`` pairs joined by ``;``, e.g. ``history_length=2; task_type=all``);
``value`` and ``std`` (numbers, or empty); ``source`` (the sentence, table or page it comes from);
``confidence`` (``CONFIDENCE``); ``note``. A row without a value must say why in ``note`` (a
study whose paper gave no reachable numbers has one such row). The file is checked while the
workflow parses (``check``); figures read it through ``load``, which adds one column per setting
key.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

COLUMNS = ("study", "table", "benchmark", "model", "method", "metric", "split", "setting", "value", "std",
           "source", "confidence", "note")
CONFIDENCE = ("primary", "secondary", "low", "none")


class ReportedError(ValueError):
    """A reported-numbers file breaks the schema; the message names the file, row and column."""


def settings(text: str) -> dict[str, str]:
    """``"history_length=2; task_type=all"`` -> ``{"history_length": "2", "task_type": "all"}``."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"setting {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check(path: Path, study: str) -> int:
    """Check ``path`` against the schema (without pandas: it runs while the workflow parses);
    returns the number of rows holding a value."""
    if not path.exists():
        raise ReportedError(f"{path}: missing; every study needs its reported-numbers file (a row with "
                            f"an empty value and a note where the paper gave none)")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise ReportedError(f"{path}: header {','.join(rows[0]) if rows else '(empty)'}; expected "
                            f"{','.join(COLUMNS)}")
    if len(rows) < 2:
        raise ReportedError(f"{path}: no rows (say in a row's note why the paper's numbers are missing)")
    values = 0
    for i, raw in enumerate(rows[1:], start=2):
        where = f"{path}: row {i}"
        if len(raw) != len(COLUMNS):
            raise ReportedError(f"{where}: {len(raw)} fields; expected {len(COLUMNS)}")
        row = dict(zip(COLUMNS, raw))
        if row["study"] != study:
            raise ReportedError(f"{where}: study {row['study']!r}; this file is {study!r}'s")
        if row["confidence"] not in CONFIDENCE:
            raise ReportedError(f"{where}: confidence {row['confidence']!r}; allowed: {', '.join(CONFIDENCE)}")
        if not row["source"].strip():
            raise ReportedError(f"{where}: source is empty; every number says where it comes from")
        for col in ("value", "std"):
            if row[col] and not _number(row[col]):
                raise ReportedError(f"{where}: {col} {row[col]!r} is not a number")
        if not row["value"] and not row["note"].strip():
            raise ReportedError(f"{where}: no value and no note saying why")
        try:
            settings(row["setting"])
        except ValueError as exc:
            raise ReportedError(f"{where}: {exc}") from None
        values += bool(row["value"])
    return values


def load(path: Path):
    """The reported numbers as a DataFrame: the schema's columns (``value``/``std`` as floats) plus
    one column per ``setting`` key (numbers converted where every value is one)."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("value", "std"):
        df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce")
    parsed = [settings(s) for s in df["setting"]]
    for key in sorted({k for p in parsed for k in p}):
        col = pd.Series([p.get(key, "") for p in parsed], index=df.index)
        num = pd.to_numeric(col.replace("", None), errors="coerce")
        df[key] = num if num.notna().sum() == (col != "").sum() else col
    return df
