"""Atomic file and directory writes, and digests.

Every output the workflow takes as complete is written to a temporary sibling and renamed into
place at the end, so an interrupted job never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _tmp_sibling(final: Path, suffix: str) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` when the block succeeds.

    On an exception the temporary directory is removed and ``final`` is left untouched.
    """
    final = Path(final)
    tmp = _tmp_sibling(final, ".tmp")
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def report(lines: list[str], out: str | os.PathLike | None = None) -> str:
    """A benchmark script's markdown ``lines`` as one text: printed, and written to ``out``
    atomically when given (``scripts/bench_*.py``)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        write_text(out, text)
    return text


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl_split(folder: str | os.PathLike, split: str, required: set[str], what: str,
                     skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The records of ``<folder>/<split>.jsonl``; a missing split names the file and the splits
    there are (``skip``: files that are not splits), a record without a ``required`` key its line."""
    path = Path(folder) / f"{split}.jsonl"
    if not path.exists():
        have = sorted(p.stem for p in Path(folder).glob("*.jsonl") if p.stem not in skip)
        raise FileNotFoundError(f"{path}: no split {split!r} in this {what} dataset; splits: {', '.join(have) or '(none)'}")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                rec = json.loads(line)
                missing = required - rec.keys()
                if missing:
                    raise ValueError(f"{path}:{n}: record lacks {', '.join(sorted(missing))}")
                out.append(rec)
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 digest of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_tree(root: str | os.PathLike) -> dict[str, str]:
    """Relative path -> sha256 for every file below ``root`` (sorted, MANIFEST.json excluded)."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "MANIFEST.json"
    }


def write_jsonl_dataset(out_dir: str | os.PathLike, dataset: str, params: dict[str, Any],
                        splits: dict[str, list[dict[str, Any]]]) -> None:
    """A generated dataset folder, atomically: ``<split>.jsonl`` (one record per line) per split and
    ``MANIFEST.json`` (the dataset's name, its params, the split sizes, the files' digests)."""
    with atomic_dir(out_dir) as tmp:
        for split, rows in splits.items():
            write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        write_json(tmp / "MANIFEST.json", {"dataset": dataset, "params": params,
                                           "splits": {k: len(v) for k, v in splits.items()}, "files": sha256_tree(tmp)})


def manifest_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    """``{"manifest_sha256", "revision", "name"}`` of ``folder/MANIFEST.json`` (a fetched dataset or
    base model; ``name``: the folder's, which tells per-seed builds apart), or None without one: what
    provenance records about an input."""
    m = Path(folder) / "MANIFEST.json"
    if not m.exists():
        return None
    return {"manifest_sha256": sha256_file(m), "revision": read_json(m).get("revision"),
            "name": Path(folder).resolve().name}
