"""Paper-scale base models: a Hugging Face Hub snapshot at a pinned commit (DESIGN.md §1, §3, §4).

``download_snapshot`` fetches ``repo_id`` at a 40-hex commit into ``resources/models/<model>/``
(HF layout) atomically and writes ``MANIFEST.json``. Two sources, one code path through
``huggingface_hub.snapshot_download``:

- the Hub (default, or ``params["endpoint"]`` for a mirror), with ``local_dir`` = the temp folder;
- a local Hugging Face cache (``params["source"] = "file:///path"``): the layout
  ``snapshot_download(cache_dir=...)`` and ``hf download --cache-dir`` produce, and what offline
  clusters pre-populate on a login node::

      <cache>/models--Org--Name/refs/main               -> "<sha>"
      <cache>/models--Org--Name/snapshots/<sha>/<file>  -> symlink to ../../blobs/<etag>
      <cache>/models--Org--Name/blobs/<etag>
      <cache>/models--Org--Name/trees/<sha>.json        tree listing (huggingface_hub >= 2.4)

  It is read with ``snapshot_download(cache_dir=..., local_files_only=True)``, which never touches
  the network and raises when the commit is absent or (given a tree listing) incomplete. The
  ``file://`` path may name the cache root, the ``models--Org--Name`` folder or the
  ``snapshots/<sha>`` folder itself (whose name must then equal ``revision``).

Integrity: when the tree listing of the commit is available (always after a Hub download; in a
local cache written by huggingface_hub >= 2.4), every file is checked against the git object id
the Hub recorded for it: the git blob sha1 of its content, or for LFS files the blob sha1 of the
LFS pointer naming the content's sha256 and size. The manifest records the sha256 of every file.

Tokens come only from the ``HF_TOKEN`` environment variable; they are never logged, written or
accepted in ``params``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx2  # huggingface_hub's HTTP client (>= 2.0)
import huggingface_hub
from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, IncompleteSnapshotError, LocalEntryNotFoundError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import filter_repo_objects

from repro.io import atomic_dir, write_json

logger = logging.getLogger(__name__)

COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


def download_snapshot(out_dir: Path, params: dict, dataset_dir: Path | None = None) -> None:
    """Download ``params["repo_id"]`` at commit ``params["revision"]`` into ``out_dir``.

    Args:
        out_dir: final model folder (HF layout + ``MANIFEST.json``), replaced atomically; on any
            error nothing is left behind and an existing ``out_dir`` is untouched.
        params: ``repo_id`` (``"Qwen/Qwen2.5-1.5B-Instruct"``); ``revision`` (a 40-hex commit sha:
            branches and tags move, so a name would make the run unreproducible);
            optional ``allow_patterns`` / ``ignore_patterns`` (glob lists, as in
            ``snapshot_download``), ``endpoint`` (Hub mirror URL), ``source`` (``"hub"``, the
            default, or ``"file:///..."``, a local Hugging Face cache).
        dataset_dir: unused (the ``MODELS`` signature passes it; hub models need no warm start).

    Raises:
        ValueError: bad params (a non-sha revision, a token in params, an unknown source), a file
            whose content does not match the Hub's record, or a local ``snapshots/<sha>`` folder
            that is not ``revision``.
        FileNotFoundError: the commit is absent from a local source, or the local snapshot is
            incomplete (``huggingface_hub.errors.IncompleteSnapshotError``).
    """
    repo_id, revision = _check_params(params)
    allow, ignore = params.get("allow_patterns"), params.get("ignore_patterns")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        files, recorded_source, tree = fetch_verified(tmp, repo_id, revision, params)
        write_json(
            tmp / MANIFEST,
            {
                "kind": "hf_hub",
                "repo_id": repo_id,
                "revision": revision,
                "source": recorded_source,
                "allow_patterns": allow,
                "ignore_patterns": ignore,
                "files": files,
                "verified_against_hub_tree": tree is not None,
                "versions": {"huggingface_hub": huggingface_hub.__version__},
            },
        )
    logger.info("%s@%s: %d files from %s into %s", repo_id, revision, len(files), recorded_source, out_dir)


def fetch_verified(dest: Path, repo_id: str, revision: str, params: dict, repo_type: str = "model"
                   ) -> tuple[dict[str, str], str, list[Any] | None]:
    """The files of ``repo_id`` at commit ``revision`` copied into ``dest`` from ``params["source"]``
    (the Hub at ``params["endpoint"]``, or a ``file://`` local HF cache), each checked against the
    commit's tree listing where there is one: (sha256 per file, the source recorded, the listing).
    ``repo_type``: ``"model"`` or ``"dataset"``."""
    allow, ignore = params.get("allow_patterns"), params.get("ignore_patterns")
    source = params.get("source") or "hub"
    if source == "hub":
        endpoint = params.get("endpoint") or constants.ENDPOINT
        tree = _from_hub(dest, repo_id, revision, allow, ignore, endpoint, repo_type)
        recorded = endpoint
    else:
        tree = _from_local_cache(dest, repo_id, revision, allow, ignore, _local_path(source), repo_type)
        recorded = source
    return _digest_and_verify(dest, tree), recorded, tree


def _check_params(params: dict) -> tuple[str, str]:
    if "token" in params or "hf_token" in params:
        raise ValueError("a Hub token must not be put in params (it would reach configs and logs); set HF_TOKEN")
    repo_id, revision = params.get("repo_id"), params.get("revision")
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"params['repo_id'] must be a Hub repo id like 'Qwen/Qwen2.5-1.5B-Instruct', got {repo_id!r}")
    if not isinstance(revision, str) or not COMMIT_SHA.fullmatch(revision):
        raise ValueError(
            f"params['revision'] for {repo_id} must be a full 40-hex commit sha, got {revision!r}: "
            "branches and tags (e.g. 'main') move when the repo is updated, so a run pinned to a name "
            "could silently use different weights or tokenizer files than the one it reproduces. "
            "Look the commit up on the model page ('Files and versions' -> history)."
        )
    return repo_id, revision


def _hub_token() -> str | bool:
    """``HF_TOKEN`` from the environment, or ``False`` (never the token file in ~/.cache)."""
    return os.environ.get("HF_TOKEN") or False


def _from_hub(
    tmp: Path, repo_id: str, revision: str, allow: Any, ignore: Any, endpoint: str, repo_type: str = "model"
) -> list[Any] | None:
    """Download into ``tmp`` (as ``local_dir``); return the commit's tree listing.

    huggingface_hub resumes a dropped transfer itself (``Range`` from its last whole chunk, five
    tries); when it gives up, the error names the file's URL and the partial folder is discarded.
    """
    try:
        snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            local_dir=tmp,
            allow_patterns=allow,
            ignore_patterns=ignore,
            endpoint=endpoint,
            token=_hub_token(),
        )
    except (FileNotFoundError, HfHubHTTPError):  # offline, or the server answered (404, 401…): says so
        raise
    except (httpx2.TransportError, OSError) as err:  # OSError: a file of the wrong size
        try:
            url = str(err.request.url)  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):  # not an HTTP error, or no request attached
            url = endpoint
        raise OSError(
            f"downloading {repo_id}@{revision} failed at {url} after huggingface_hub's retries "
            f"({type(err).__name__}: {err}); nothing was kept, rerun to start the download again"
        ) from err
    tree = _cached_tree(repo_id, revision, repo_type, local_dir=tmp)
    # huggingface_hub's download metadata (etags, tree listing); not part of the model.
    shutil.rmtree(tmp / ".cache" / "huggingface", ignore_errors=True)
    if (tmp / ".cache").is_dir() and not any((tmp / ".cache").iterdir()):
        (tmp / ".cache").rmdir()
    return tree


def _local_path(source: str) -> Path:
    url = urlparse(source)
    if url.scheme != "file":
        raise ValueError(f"params['source'] must be 'hub' or a 'file://' URL of a local HF cache, got {source!r}")
    path = Path(url2pathname(url.netloc + url.path))
    if not path.is_dir():
        raise FileNotFoundError(f"local model source {source!r}: {path} is not a directory")
    return path


def _from_local_cache(
    tmp: Path, repo_id: str, revision: str, allow: Any, ignore: Any, path: Path, repo_type: str = "model"
) -> list[Any] | None:
    """Copy the commit's files (symlinks resolved) from a local HF cache; return its tree listing."""
    folder = repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    if path.parent.name == "snapshots":  # .../models--Org--Name/snapshots/<sha>
        if path.name != revision:
            raise ValueError(f"local snapshot {path} is commit {path.name}, but params['revision'] is {revision}")
        path = path.parent.parent
    if path.name == folder:  # .../models--Org--Name
        path = path.parent
    if not (path / folder).is_dir():
        raise FileNotFoundError(f"no {folder}/ for {repo_id} in the local HF cache {path}")
    try:
        snapshot = Path(
            snapshot_download(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                cache_dir=path,
                local_files_only=True,
                allow_patterns=allow,
                ignore_patterns=ignore,
            )
        )
    except IncompleteSnapshotError:
        raise
    except LocalEntryNotFoundError as err:
        have = sorted(p.name for p in (path / folder / "snapshots").glob("*"))
        raise FileNotFoundError(
            f"commit {revision} of {repo_id} is not in the local HF cache {path} (snapshots there: {have or 'none'})"
        ) from err
    rel = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    for name in filter_repo_objects(rel, allow_patterns=allow, ignore_patterns=ignore):
        dest = tmp / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snapshot / name, dest)  # follows the snapshots/ -> blobs/ symlink
    return _cached_tree(repo_id, revision, repo_type, cache_dir=path)


def _cached_tree(repo_id: str, revision: str, repo_type: str = "model", **where: Any) -> list[Any] | None:
    """The commit's tree listing cached by huggingface_hub (>= 2.4), or None when unavailable."""
    get_tree = getattr(huggingface_hub, "get_cached_repo_tree", None)
    if get_tree is None:
        return None
    try:
        return get_tree(repo_id, repo_type=repo_type, revision=revision, **where)
    except Exception as err:  # CachedRepoTreeNotFoundError: a cache written before hub 2.4
        logger.warning("no cached tree listing for %s@%s (%s); files are not verified", repo_id, revision, err)
        return None


def _digest_and_verify(root: Path, tree: list[Any] | None) -> dict[str, str]:
    """sha256 of every file below ``root``; with a tree listing, check each against its git oid."""
    expected = {f.path: f for f in tree} if tree is not None else {}
    files: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == MANIFEST:
            continue
        name = p.relative_to(root).as_posix()
        sha256, blob_sha1, size = _digests(p)
        files[name] = sha256
        ref = expected.get(name)
        if tree is not None and ref is None:
            raise ValueError(f"{name} is not part of the commit's tree listing")
        if ref is not None and ref.blob_id not in (blob_sha1, _lfs_pointer_oid(sha256, size)):
            raise ValueError(
                f"{name}: content (sha256 {sha256}, {size} bytes) does not match the Hub's git oid {ref.blob_id}"
            )
    return files


def _digests(path: Path) -> tuple[str, str, int]:
    """(sha256, git blob sha1, size) of a file in one pass."""
    size = path.stat().st_size
    sha256, blob = hashlib.sha256(), hashlib.sha1()
    blob.update(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest(), size


def _lfs_pointer_oid(sha256: str, size: int) -> str:
    """Git oid of the LFS pointer file that stands for content with this sha256 and size."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
