"""Array datasets of the classic studies on disk (DESIGN.md §3)::

    resources/datasets/<dataset>/<variant>/
        data.npz        X_<split> float[n, d], Y_<split> (int[n] classes or {0,1}[n, q] labels),
                        and any study arrays (e.g. S_train candidate sets, ood_test flags)
        meta.json       task ("multiclass" | "multilabel"), n_classes, split sizes, study notes
        MANIFEST.json   sha256 of every file, the generator/fetcher params and source

Written atomically (``repro.io.atomic_dir``): an interrupted fetch leaves nothing behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio

TASKS = ("multiclass", "multilabel")


@dataclass
class ArrayDataset:
    """``arrays`` name -> array (loaded eagerly; the classic datasets are small), ``meta`` dict."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    folder: Path

    @property
    def splits(self) -> list[str]:
        return sorted(k[2:] for k in self.arrays if k.startswith("X_"))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(X [n, d], Y) of split ``name``; a clear error naming the splits there are."""
        if f"X_{name}" not in self.arrays or f"Y_{name}" not in self.arrays:
            raise KeyError(f"{self.folder}/data.npz has no split {name!r}; splits: {', '.join(self.splits)}")
        return self.arrays[f"X_{name}"], self.arrays[f"Y_{name}"]

    def get(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise KeyError(f"{self.folder}/data.npz has no array {name!r}; arrays: {', '.join(sorted(self.arrays))}")
        return self.arrays[name]


def write_dataset(out_dir: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                  manifest: dict[str, Any]) -> None:
    """Write ``data.npz``, ``meta.json`` and ``MANIFEST.json`` (``manifest`` + file digests) atomically."""
    if meta.get("task") not in TASKS:
        raise ValueError(f"meta.task must be one of {', '.join(TASKS)}, got {meta.get('task')!r}")
    for k in arrays:
        if k.startswith("X_") and f"Y_{k[2:]}" not in arrays:
            raise ValueError(f"array {k} has no labels Y_{k[2:]}")
    meta = {**meta, "splits": {k[2:]: int(len(v)) for k, v in arrays.items() if k.startswith("X_")}}
    with rio.atomic_dir(out_dir) as tmp:
        np.savez_compressed(tmp / "data.npz", **arrays)
        rio.write_json(tmp / "meta.json", meta)
        rio.write_json(tmp / "MANIFEST.json", {**manifest, "files": rio.sha256_tree(tmp)})


def load_dataset(folder: str | os.PathLike) -> ArrayDataset:
    folder = Path(folder)
    path = folder / "data.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not a classic-study dataset folder (fetch it with "
                                f"`repro fetch-dataset`)")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return ArrayDataset(arrays, rio.read_json(folder / "meta.json"), folder)
