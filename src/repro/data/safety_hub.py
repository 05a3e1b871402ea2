"""``safety/hub``: PreSafe's paper-scale prompt sets, from Hugging Face dataset repositories
(other-papers.md §7.2, §7.4).

Each named set (``params.sets``) is a dataset repository snapshot (``repro.models.hub.fetch_verified``:
the Hub, a mirror, or a ``file://`` local HF cache; files checked against the commit's tree listing)
whose data files matching ``files`` (a glob; parquet, JSON lines, JSON, TSV or CSV) become prompt
records of the ``lm_safety`` family: ``prompt`` from a dotted field, ``kind`` fixed (``kind``) or
mapped from a field (``kind_field`` + ``kind_map``; rows whose value is not in the map are dropped),
``answer`` for math. ``filter`` (field -> allowed values) keeps matching rows first. A set goes to the
split ``split`` (default: its own name); ``sample`` draws that many rows (seeded, without
replacement); several sets may feed one split (e.g. the alignment prompts ``train``). ``verified``
records whether the paper names the set [F] or a secondary source does [S] (MANIFEST.json).

Revisions: ``revision: null`` resolves ``main`` at download (recorded; pin it), as ``math/dapo``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
import tempfile
from pathlib import Path
from typing import Any

from repro import io as rio
from repro.data.math_dapo import _field, resolve_revision
from repro.registry import DATASETS

log = logging.getLogger(__name__)

SET_KEYS = {"repo_id", "revision", "files", "prompt", "kind", "kind_field", "kind_map", "answer", "filter",
            "split", "sample", "verified", "source_note"}
KINDS = ("harmful", "math", "benign", "borderline")


def read_rows(folder: Path, pattern: str) -> list[dict[str, Any]]:
    """Every row of the snapshot's data files whose path (relative, posix) matches ``pattern``."""
    import pandas as pd  # noqa: PLC0415

    readers = {".parquet": pd.read_parquet, ".jsonl": lambda f: pd.read_json(f, lines=True), ".json": pd.read_json,
               ".tsv": lambda f: pd.read_csv(f, sep="\t", keep_default_na=False),
               ".csv": lambda f: pd.read_csv(f, keep_default_na=False)}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in readers
                   and fnmatch.fnmatch(p.relative_to(folder).as_posix(), pattern))
    if not files:
        have = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in readers)
        raise FileNotFoundError(f"no data file matching {pattern!r} in {folder}; data files: {have or 'none'}")
    return pd.concat([readers[f.suffix](f) for f in files], ignore_index=True).to_dict("records")


def records(name: str, rows: list[dict[str, Any]], spec: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """The prompt records of one set (see the module docstring)."""
    for key, allowed in (spec.get("filter") or {}).items():
        rows = [r for r in rows if _field(r, key) in allowed]
    out = []
    for row in rows:
        kind = spec.get("kind") or (spec.get("kind_map") or {}).get(str(_field(row, spec["kind_field"])))
        if kind is None:
            continue
        rec = {"prompt": str(_field(row, spec["prompt"])).strip(), "kind": kind, "wrapper": None, "source": name}
        if spec.get("answer"):
            rec["answer"] = str(_field(row, spec["answer"]))
        out.append(rec)
    if spec.get("sample") and len(out) > int(spec["sample"]):
        out = random.Random(f"{seed}:{name}").sample(out, int(spec["sample"]))
    return out


def check_set(name: str, spec: dict[str, Any]) -> None:
    unknown = set(spec) - SET_KEYS
    if unknown:
        raise ValueError(f"safety/hub: sets.{name}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(SET_KEYS))}")
    for key in ("repo_id", "files", "prompt"):
        if not spec.get(key):
            raise ValueError(f"safety/hub: sets.{name}.{key} is required")
    if bool(spec.get("kind")) == bool(spec.get("kind_field")):
        raise ValueError(f"safety/hub: sets.{name}: give either kind or kind_field + kind_map")
    kinds = [spec["kind"]] if spec.get("kind") else list((spec.get("kind_map") or {}).values())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"safety/hub: sets.{name}: kinds {bad or kinds} not allowed; allowed: {', '.join(KINDS)}")


@DATASETS.register("safety/hub")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    """``params``: ``sets`` (name -> the module docstring's keys), ``seed``, ``source`` / ``endpoint``
    as ``repro.models.hub``."""
    from repro.models.hub import fetch_verified  # noqa: PLC0415

    sets, seed = params.get("sets") or {}, int(params.get("seed", 0))
    if not sets:
        raise ValueError("safety/hub: params.sets is empty")
    for name, spec in sets.items():
        check_set(name, spec)
    splits: dict[str, list[dict[str, Any]]] = {}
    manifest: dict[str, Any] = {"dataset": "safety/hub", "seed": seed, "sets": {}, "splits": {}}
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        snaps: dict[tuple[str, str], Path] = {}
        for name, spec in sets.items():
            revision = resolve_revision(spec["repo_id"], spec.get("revision"), params)
            key = (spec["repo_id"], revision)
            if key not in snaps:  # one snapshot per repository commit, however many sets read it
                snaps[key] = Path(scratch) / f"snap{len(snaps)}"
                snaps[key].mkdir()
                files, recorded, tree = fetch_verified(snaps[key], spec["repo_id"], revision, params, repo_type="dataset")
                manifest.setdefault("snapshots", {})[f"{spec['repo_id']}@{revision}"] = {
                    "source": recorded, "verified_against_hub_tree": tree is not None, "files": files}
            recs = records(name, read_rows(snaps[key], spec["files"]), spec, seed)
            splits.setdefault(spec.get("split") or name, []).extend(recs)
            manifest["sets"][name] = {"repo_id": spec["repo_id"], "revision": revision, "files": spec["files"],
                                      "split": spec.get("split") or name, "n": len(recs),
                                      "verified": spec.get("verified", False), "note": spec.get("source_note")}
            log.info("safety/hub: %s <- %s@%s: %d prompts", name, spec["repo_id"], revision[:8], len(recs))
        for split, recs in splits.items():
            rows = [{"id": f"{split}-{i:05d}", **r} for i, r in enumerate(recs)]
            rio.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            manifest["splits"][split] = len(rows)
        rio.write_json(tmp / "MANIFEST.json", manifest)
