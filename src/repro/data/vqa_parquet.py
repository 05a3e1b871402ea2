"""``vqa/vqav2``: visual question answering pairs with their images, from a Hugging Face dataset
repository of parquet files that embed the images (e.g. ``lmms-lab/VQAv2``), for CleanSight's
paper scale (other-papers.md §5.4: VQAv2 is the likely evaluation set [S]).

``params``::

    repo_id: lmms-lab/VQAv2
    revision: null              # main, resolved and recorded (as repro.data.math_dapo)
    split: validation           # the HF split whose files are read (names starting with it)
    fields: {question: question, answer: multiple_choice_answer, image: image}
    image_size: 336             # LLaVA-1.5's CLIP ViT-L/14-336 input (CLIP's resize and centre crop)
    seed: 0
    splits: {train: {n: 20000}, reference: {n: 200}, test: {n: 2000}}   # disjoint, seeded, in order

A record is ``{"label": -1, "question", "answer"}`` (the answer lower-cased and stripped, the
comparison ``repro.multimodal.llava_chat`` makes); the image column holds ``{"bytes": ...}`` structs
(the ``datasets`` Image feature) or raw bytes. Files per split as ``repro.data.wds_images``.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio
from repro.registry import DATASETS

log = logging.getLogger(__name__)

FIELDS = {"question": "question", "answer": "multiple_choice_answer", "image": "image"}


def normalise_answer(text: str) -> str:
    """Lower-cased, surrounding space and a trailing full stop removed."""
    return text.strip().lower().rstrip(".").strip()


@DATASETS.register("vqa/vqav2")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    import pyarrow.parquet as pq  # noqa: PLC0415

    from repro.data.math_dapo import resolve_revision  # noqa: PLC0415
    from repro.data.wds_images import write_splits  # noqa: PLC0415
    from repro.models.hub import fetch_verified  # noqa: PLC0415

    allowed = {"repo_id", "revision", "split", "fields", "image_size", "seed", "splits", "source", "endpoint"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"vqa/vqav2: unknown params {unknown}; allowed: {', '.join(sorted(allowed))}")
    splits, hf_split = params.get("splits") or {}, params.get("split", "validation")
    if not splits or any(not isinstance(s.get("n"), int) or s["n"] < 1 for s in splits.values()):
        raise ValueError(f"vqa/vqav2: params.splits must map each split to {{n: positive int}}, got {splits}")
    fields = {**FIELDS, **(params.get("fields") or {})}
    hub = {k: params[k] for k in ("source", "endpoint") if k in params}
    size, rng = int(params.get("image_size", 336)), np.random.default_rng(params.get("seed", 0))
    revision = resolve_revision(params["repo_id"], params.get("revision"), hub)
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        snap = Path(scratch)
        files, recorded, tree = fetch_verified(snap, params["repo_id"], revision,
                                               {**hub, "allow_patterns": [f"*{hf_split}*.parquet"]},
                                               repo_type="dataset")
        paths = sorted(p for p in snap.rglob("*.parquet") if p.name.startswith(hf_split))
        if not paths:
            raise FileNotFoundError(f"vqa/vqav2: no parquet file of split {hf_split!r} in {params['repo_id']}")
        index: list[tuple[int, int, str, str]] = []  # file, row, question, answer
        for f, path in enumerate(paths):
            table = pq.read_table(path, columns=[fields["question"], fields["answer"]]).to_pydict()
            missing = [c for c in (fields["question"], fields["answer"]) if c not in table]
            if missing:
                raise ValueError(f"vqa/vqav2: {path.name} has no column {missing}")
            index += [(f, r, q, a) for r, (q, a) in enumerate(zip(table[fields["question"]], table[fields["answer"]]))]
        need = sum(s["n"] for s in splits.values())
        if need > len(index):
            raise ValueError(f"vqa/vqav2: the splits ask {need} pairs, {params['repo_id']}:{hf_split} has {len(index)}")
        order = rng.permutation(len(index))
        by_file: dict[int, dict[int, tuple[str, int, int]]] = defaultdict(dict)  # file -> row -> (split, pos, index)
        lo = 0
        for split, spec in splits.items():
            for pos, i in enumerate(sorted(order[lo:lo + spec["n"]].tolist())):
                by_file[index[i][0]][index[i][1]] = (split, pos, i)
            lo += spec["n"]
            log.info("vqa/vqav2: %s <- %d pairs of %s:%s", split, spec["n"], params["repo_id"], hf_split)

        def decoded():  # each file's image column read once, for every split
            for f, rows in sorted(by_file.items()):
                column = pq.read_table(paths[f], columns=[fields["image"]]).column(0).to_pylist()
                for r, (split, pos, i) in rows.items():
                    cell = column[r]
                    _, _, q, a = index[i]
                    yield split, pos, cell["bytes"] if isinstance(cell, dict) else cell, {
                        "label": -1, "question": str(q).strip(), "answer": normalise_answer(str(a))}
        write_splits(tmp, {split: spec["n"] for split, spec in splits.items()}, size, decoded(), progress_every=2000)
        rio.write_json(tmp / "MANIFEST.json", {
            "dataset": "vqa/vqav2", "params": params, "classes": [], "repo_id": params["repo_id"],
            "revision": revision, "source": recorded, "verified_against_hub_tree": tree is not None,
            "source_files": len(files), "splits": {k: v["n"] for k, v in splits.items()},
            "files": rio.sha256_tree(tmp)})
