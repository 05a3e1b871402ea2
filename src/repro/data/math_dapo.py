"""``math/dapo``: the paper-scale math data, from Hugging Face dataset repositories.

KPO and Dr. MAS train on DAPO-Math (``aaabiao/dapo_filter``) and test on AIME'24, AIME'25, AMC'23,
MATH500, Minerva and OlympiadBench (agentic-rl.md §4.4, §4.5; the ids and splits of verl-kpo's
``examples/data_preprocess/kpo_math.py``). Each set is a dataset repository snapshot (through
``repro.models.hub.fetch_verified``: the Hub, a mirror, or a ``file://`` local HF cache; every file
checked against the commit's tree listing) whose split files (parquet, JSON lines or JSON) become
``<set>.jsonl`` in the format of ``repro.envs.math``; ``valid.jsonl`` is the training-time
validation set the scripts use (MATH500[:50] + AIME'24 + AIME'25, 110 problems).

Revisions: the papers pin none. ``revision: null`` resolves the repository's current ``main`` at
download time and records the commit in MANIFEST.json (with a warning to pin it in the config);
a 40-hex ``revision`` is used as is.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from repro import io as rio
from repro.registry import DATASETS

log = logging.getLogger(__name__)

#: the prompt suffix verl-kpo strips from DAPO's questions before appending its own instruction
_BOXED_SUFFIX = re.compile(r"(\r?\n|\\n)*\s*Let'?s\s+think\s+step\s+by\s+step\s+and\s+output\s+the\s+final\s+"
                           r"answer\s+within\s*\\boxed\{\}\.\s*$", re.IGNORECASE)
_SHA = re.compile(r"[0-9a-f]{40}")
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


def _field(record: dict[str, Any], path: str) -> Any:
    """``record`` at a dotted path whose integer parts index lists (``prompt.0.content``)."""
    value: Any = record
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, (list, tuple)) or hasattr(value, "__array__") else value[part]
    return value


def read_split(folder: Path, split: str) -> list[dict[str, Any]]:
    """The records of the HF split ``split`` in a dataset snapshot: every data file whose name
    starts with the split's name (``data/test-00000-of-00001.parquet``, ``train.jsonl``), in path order."""
    import pandas as pd  # noqa: PLC0415

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES
                   and p.name.startswith(split) and ".cache" not in p.parts)
    if not files:
        have = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in DATA_SUFFIXES)
        raise FileNotFoundError(f"no data file of split {split!r} in {folder}; data files: {have or 'none'}")
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_json(f, lines=f.suffix == ".jsonl")
              for f in files]
    return pd.concat(frames, ignore_index=True).to_dict("records")


def resolve_revision(repo_id: str, revision: str | None, params: dict[str, Any]) -> str:
    """``revision`` if it is a commit sha; else (``None``) the commit ``main`` points to now."""
    if revision is not None:
        if not _SHA.fullmatch(str(revision)):
            raise ValueError(f"revision of {repo_id}: {revision!r} is not a 40-hex commit sha (null: resolve main)")
        return str(revision)
    from huggingface_hub import HfApi  # noqa: PLC0415
    from huggingface_hub.file_download import repo_folder_name  # noqa: PLC0415

    from repro.models.hub import _hub_token, _local_path  # noqa: PLC0415

    source = params.get("source") or "hub"
    if source == "hub":
        sha = HfApi(endpoint=params.get("endpoint"), token=_hub_token()).repo_info(
            repo_id, repo_type="dataset", revision="main").sha
    else:
        ref = _local_path(source) / repo_folder_name(repo_id=repo_id, repo_type="dataset") / "refs" / "main"
        if not ref.exists():
            raise FileNotFoundError(f"{ref}: no main ref of {repo_id} in the local HF cache")
        sha = ref.read_text().strip()
    log.warning("%s: no revision pinned; using main = %s (pin it in the study config)", repo_id, sha)
    return sha


def _records(name: str, rows: list[dict[str, Any]], spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        question = str(_field(row, spec.get("question", "problem")))
        if spec.get("strip_boxed_suffix"):
            question = _BOXED_SUFFIX.sub("", question)
        out.append({"id": f"{name}-{i:05d}", "question": question.strip(),
                    "answer": str(_field(row, spec.get("answer", "answer"))), "source": name})
    return out


@DATASETS.register("math/dapo")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    """``params``: ``sets`` (name -> ``repo_id``, ``revision``, ``split`` (the HF split),
    ``question`` / ``answer`` (dotted field paths), ``strip_boxed_suffix``); ``valid`` (set name ->
    number of leading problems, null = all); ``source`` / ``endpoint`` as ``repro.models.hub``."""
    from repro.models.hub import fetch_verified  # noqa: PLC0415

    sets, valid = params.get("sets") or {}, params.get("valid") or {}
    if "train" not in sets:
        raise ValueError("math/dapo: params.sets needs a 'train' entry (the RL prompts)")
    unknown = sorted(set(valid) - set(sets))
    if unknown:
        raise ValueError(f"math/dapo: params.valid names {unknown}, which are not in params.sets ({sorted(sets)})")
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        manifest: dict[str, Any] = {"dataset": "math/dapo", "sets": {}, "splits": {}}
        problems: dict[str, list[dict[str, Any]]] = {}
        for name, spec in sets.items():
            repo_id = spec["repo_id"]
            revision = resolve_revision(repo_id, spec.get("revision"), params)
            snap = Path(scratch) / name
            snap.mkdir()
            files, recorded, tree = fetch_verified(snap, repo_id, revision, params, repo_type="dataset")
            problems[name] = _records(name, read_split(snap, spec.get("split", "test")), spec)
            manifest["sets"][name] = {"repo_id": repo_id, "revision": revision, "split": spec.get("split", "test"),
                                      "source": recorded, "verified_against_hub_tree": tree is not None,
                                      "files": files}
            log.info("math/dapo: %s <- %s@%s (%d problems)", name, repo_id, revision[:8], len(problems[name]))
        if valid:
            problems["valid"] = [dict(p, id=f"valid-{i:05d}") for i, p in enumerate(
                q for name, n in valid.items() for q in problems[name][: (None if n is None else int(n))])]
        for split, rows in problems.items():
            rio.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            manifest["splits"][split] = len(rows)
        rio.write_json(tmp / "MANIFEST.json", manifest)
