"""Summaries of ``eval.json`` files: mean ± std over seeds (DESIGN.md §8).

Reproduced numbers come only from ``eval.json`` written by the ``evaluate`` rule.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from repro import io as rio
from repro.provenance import kernel_facts

log = logging.getLogger(__name__)

KEYS = ["study", "scale", "benchmark", "model", "method", "split", "temperature", "task_type", "metric"]


def eval_rows(paths: list[Path]) -> pd.DataFrame:
    """Long table: one row per (eval file, split, task type, metric). Agentic benchmarks give
    ``success_rate_pct`` (success rate in percent), per task type, and where tasks are graded
    (WebShop) ``score`` (mean task score x 100); classic studies give their ``metrics`` as computed."""
    rows = []
    for p in paths:
        e = rio.read_json(p)
        base = {k: e[k] for k in ("study", "scale", "benchmark", "model", "method", "seed")}
        for split, res in e["splits"].items():
            at = {**base, "split": split, "temperature": res.get("temperature")}  # sampling temperature
            for name, v in res.get("metrics", {}).items():
                rows.append({**at, "task_type": "all", "metric": name, "value": v})
            if "success_rate" in res:
                rows.append({**at, "task_type": "all", "metric": "success_rate_pct",
                             "value": 100 * res["success_rate"]})
            if "score" in res:
                rows.append({**at, "task_type": "all", "metric": "score", "value": res["score"]})
            for tt, v in res.get("per_task_type", {}).items():
                rows.append({**at, "task_type": tt, "metric": "success_rate_pct", "value": 100 * v})
    return pd.DataFrame(rows)


# Packages whose version can change a number (ALFWorld's December 2024 release changed its command
# grammar and feedback; several agent projects then failed to reproduce their own results).
NUMERIC_PACKAGES = ("alfworld", "textworld", "torch", "transformers", "tokenizers", "numpy", "scipy",
                    "scikit-learn")


class ProvenanceError(ValueError):
    """Runs that should not share one table (different package versions, dataset or model digests)."""


# Inputs whose MANIFEST.json digest must agree between runs: (provenance key, eval.json key naming
# the input, what to call it). Runs of one benchmark share a dataset (or, where the dataset is drawn
# per seed, runs of one draw: the recorded folder name); runs of one model name share a base model
# (a re-downloaded or rebuilt model changes the digest).
_INPUTS = (("dataset", "benchmark", "dataset"), ("model", "model", "base model"))


def provenance_conflicts(paths: list[Path]) -> list[str]:
    """What differs between the runs' provenance, one line per package or input; [] if none.

    Compares the versions of ``NUMERIC_PACKAGES`` across all runs, the dataset's ``MANIFEST.json``
    digest across the runs of each benchmark and the base model's across the runs of each model.
    A run without provenance is a conflict of its own (nothing says what produced it).
    """
    seen: dict[tuple[str, str], dict[str, list[str]]] = {}  # (what, name) -> value -> files
    lines = []
    for p in paths:
        e = rio.read_json(p)
        prov = e.get("provenance")
        if not prov:
            lines.append(f"{p}: no provenance recorded (rerun its evaluate job)")
            continue
        for pkg in NUMERIC_PACKAGES:
            v = prov.get("versions", {}).get(pkg, "missing")
            seen.setdefault((pkg, "versions"), {}).setdefault(str(v), []).append(str(p))
        for key, name_key, what in _INPUTS:
            d = (prov.get(key) or {}).get("manifest_sha256") or "missing"
            name = (prov.get(key) or {}).get("name")  # the input's folder (per-seed draws and builds differ)
            seen.setdefault((f"{e[name_key]} {what}" + (f" ({name})" if name else ""), "digests"), {}
                            ).setdefault(d[:12], []).append(str(p))
    for (what, kind), values in seen.items():
        if len(values) > 1:
            lines.append(f"{what} {kind} differ: " + "; ".join(
                f"{v} in {len(fs)} run(s), e.g. {fs[0]}" for v, fs in sorted(values.items())))
    return lines


def kernel_mixture(paths: list[Path]) -> list[str]:
    """One line per library whose kernels differ between the runs' trainings or evaluations
    (``repro.provenance.kernel_facts``: torch's capability and BLAS, MKL's reproducibility mode,
    OpenBLAS's kernel sets), with the CPU models; [] when they agree. Such a table mixes numbers that
    differ in their last bits (and, through a chaotic training, by more). A job that never loaded a
    library does not count for it."""
    seen: dict[str, dict[str, list[tuple[str, str]]]] = {}  # library -> kernels -> (CPU model, file)
    for p in paths:
        prov = rio.read_json(p).get("provenance") or {}
        for cpu in (prov.get("cpu"), (prov.get("train") or {}).get("cpu")):
            for lib, kernels in kernel_facts(cpu).items():
                seen.setdefault(lib, {}).setdefault(kernels, []).append((cpu.get("model", "?"), str(p)))
    return [f"{lib}: " + "; ".join(f"{k} in {len(recs)} record(s) on {', '.join(sorted({m for m, _ in recs}))}, "
                                   f"e.g. {recs[0][1]}" for k, recs in sorted(by_kernels.items()))
            for lib, by_kernels in sorted(seen.items()) if len(by_kernels) > 1]


def run_settings(paths: list[Path]) -> pd.DataFrame:
    """Per (benchmark, model, method): its ``impl``, whether it is an ablation run, and every
    resolved setting (defaults filled in, from the run config each ``eval.json`` carries) as
    columns ``params.<key>`` / ``train.<key>``."""
    rows = []
    for p in paths:
        e = rio.read_json(p)
        cfg = e.get("config") or {}
        flat = {f"{block}.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                for block in ("params", "train") for k, v in (cfg.get(block) or {}).items()}
        rows.append({"benchmark": e["benchmark"], "model": e["model"], "method": e["method"],
                     "impl": cfg.get("impl"), "ablation": bool(cfg.get("ablation", False)), **flat})
    return pd.DataFrame(rows).drop_duplicates(["benchmark", "model", "method"]) if rows else pd.DataFrame()


def distinguishing(settings: pd.DataFrame) -> pd.DataFrame:
    """``run_settings`` reduced to the settings that set a study's methods apart on some benchmark:
    what figures read to know what a run was (e.g. an ablation's K and alpha)."""
    if not len(settings):
        return settings
    keep = ["benchmark", "model", "method", "impl", "ablation"]
    keep += [c for c in settings.columns if c.startswith(("params.", "train."))
             and (settings.groupby("benchmark")[c].nunique(dropna=False) > 1).any()]
    return settings[keep]


def _same(value, text: str) -> bool:
    """A run's setting equals a reported row's (``2`` and ``"2"``, ``1.0`` and ``"1"`` alike)."""
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def join_reported(out: pd.DataFrame, reported: pd.DataFrame, settings_of: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """``reported_value``, ``reported_std``, ``reported_source`` beside each summary row, where
    exactly one reported number matches its benchmark, model, method, metric and split (a field
    the reported row leaves empty matches any) and every ``setting`` of that number equals the
    row's (its task type, or the run's resolved params / train value of that key: ``settings_of``,
    every setting per benchmark, model and method; default the row's own columns)."""
    out = out.copy()
    full = (settings_of.set_index(["benchmark", "model", "method"]) if settings_of is not None and len(settings_of)
            else None)
    out["reported_value"], out["reported_std"], out["reported_source"] = float("nan"), float("nan"), ""
    rep = reported.dropna(subset=["value"])
    if not len(rep):
        return out
    from repro.reported import settings

    for i, row in out.iterrows():
        cand = rep
        for col in ("benchmark", "model", "method", "metric", "split"):  # an empty field: any
            cand = cand[(cand[col] == row[col]) | (cand[col] == "")]
        match = []
        own = (full.loc[(row.benchmark, row.model, row.method)] if full is not None
               and (row.benchmark, row.model, row.method) in full.index else row)
        facts = {"task_type": row.task_type,
                 **{c.split(".", 1)[1]: own[c] for c in own.index if c.startswith(("params.", "train."))}}
        for _, r in cand.iterrows():
            if all(k in facts and _same(facts[k], v) for k, v in settings(r.setting).items()):
                match.append(r)
        if len(match) == 1:
            out.loc[i, ["reported_value", "reported_std", "reported_source"]] = (
                match[0].value, match[0]["std"], match[0].source)
    return out


def summarize(paths: list[Path], allow_mixed_provenance: bool = False, reported: Path | None = None) -> pd.DataFrame:
    """Mean, std (Bessel; 0 for one seed) and seed count per method, split and task type, with
    each method's ``impl`` and distinguishing settings (``run_settings``) and, given the study's
    ``reported`` numbers, the matching reported number beside it (``join_reported``).

    Refuses (``ProvenanceError``) runs made with different versions of ``NUMERIC_PACKAGES`` or
    different dataset or base-model digests unless ``allow_mixed_provenance``, which logs each difference.
    """
    conflicts = provenance_conflicts(paths)
    mixture = kernel_mixture(paths)
    if mixture:  # allowed (the numbers are of one method), but said: they are not bit-comparable
        log.warning("this table mixes results computed with different CPU kernels:\n  %s",
                    "\n  ".join(mixture))
    for line in conflicts if allow_mixed_provenance else []:
        log.warning("mixed provenance allowed: %s", line)
    if conflicts and not allow_mixed_provenance:
        raise ProvenanceError(
            "refusing to summarize runs of different provenance into one table:\n  "
            + "\n  ".join(conflicts)
            + "\nRerun the stale runs (e.g. snakemake --forcerun evaluate), or pass "
              "--allow-mixed-provenance to summarize them anyway.")
    df = eval_rows(paths)
    g = df.groupby(KEYS, sort=True, dropna=False)["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out = out[KEYS + ["mean", "std", "n_seeds"]].round({"mean": 4, "std": 4})
    every = run_settings(paths)  # each eval.json read once more, for its config
    settings = distinguishing(every)
    if len(settings):
        out = out.merge(settings, on=["benchmark", "model", "method"], how="left")
    if reported is not None:
        from repro.reported import load

        out = join_reported(out, load(reported), every)
    return out


def read_train_logs(train_logs: list[Path]) -> pd.DataFrame:
    """Every ``train_log.csv`` in one table, with ``benchmark``, ``method`` and ``seed`` columns
    read from its path (``results/<scale>/<study>/<benchmark>/<model>/<method>/seed<k>/``)."""
    frames = []
    for p in train_logs:
        df = pd.read_csv(p)
        parts = Path(p).parts
        df["benchmark"], df["method"], df["seed"] = parts[-5], parts[-3], int(parts[-2].removeprefix("seed"))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
