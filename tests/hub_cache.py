"""A local Hugging Face cache written as huggingface_hub lays it out (the fixtures of the hub
snapshot tests: models and dataset repositories). Importable from any test: pytest puts tests/ on
sys.path (its conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: files stored through Git LFS in the fixtures (the tree lists their LFS pointer's oid)
LFS = {"model.safetensors"}


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


def write_hub_cache(cache: Path, repo_id: str, sha: str, files: dict[str, bytes], *, tree: bool = True,
                    repo_type: str = "model") -> Path:
    """Lay ``files`` out as huggingface_hub's cache does for commit ``sha`` of a ``repo_type``
    repository; return the repo folder."""
    repo = cache / (f"{repo_type}s--" + repo_id.replace("/", "--"))
    entries = {}
    for name, data in files.items():
        if name in LFS:
            etag = hashlib.sha256(data).hexdigest()
            entries[name] = {"size": len(data), "blob_id": git_oid(lfs_pointer(data)),
                             "lfs_sha256": etag, "lfs_size": len(data)}
        else:
            etag = git_oid(data)
            entries[name] = {"size": len(data), "blob_id": etag}
        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / sha / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    if tree:
        (repo / "trees").mkdir(exist_ok=True)
        (repo / "trees" / f"{sha}.json").write_text(json.dumps({"format_version": 1, "files": entries}))
    return repo
