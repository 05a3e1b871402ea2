"""Hub snapshot download (repro.models.hub) against a local cache laid out like huggingface_hub's.

The fixture writes a tiny Qwen2 model into ``models--Qwen--Qwen2.5-1.5B-Instruct/`` exactly as
``snapshot_download(cache_dir=...)`` leaves it: content-addressed ``blobs/`` (git sha1 for small
files, sha256 for LFS files), ``snapshots/<sha>/`` of relative symlinks, ``refs/main`` and the
tree listing ``trees/<sha>.json`` with each file's git oid (huggingface_hub >= 2.4).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import IncompleteSnapshotError

from repro.io import sha256_tree
from repro.models.hub import download_snapshot
from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer
from repro.registry import MODELS

REPO = "Qwen/Qwen2.5-1.5B-Instruct"
SHA = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"
OTHER_SHA = "0" * 40
LFS = {"model.safetensors"}
TOKEN = "hf_plantedSECRETtoken0123456789"


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


def write_hub_cache(cache: Path, repo_id: str, sha: str, files: dict[str, bytes], *, tree: bool = True) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does for commit ``sha``; return the repo folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
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


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("src") / "tiny"
    build_tiny_qwen2(d, {"seed": 0, "hidden_size": 32, "intermediate_size": 64},
                     ["go to desk 1", "<action>take pencil 1 from desk 1</action>"])
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name != "MANIFEST.json"}


@pytest.fixture()
def cache(tmp_path, model_files) -> Path:
    root = tmp_path / "hf-cache"
    write_hub_cache(root, REPO, SHA, model_files)
    return root


def params(cache: Path, **kw) -> dict:
    return {"repo_id": REPO, "revision": SHA, "source": cache.as_uri(), **kw}


def assert_nothing_left(parent: Path) -> None:
    assert not parent.exists() or list(parent.iterdir()) == []


def test_registered():
    assert MODELS.get("hf_hub") is download_snapshot


def test_local_cache_download_records_sha256s(cache, model_files, tmp_path):
    out = tmp_path / "models" / "qwen2.5-1.5b-instruct"
    download_snapshot(out, params(cache))
    assert {p.name for p in out.iterdir()} == set(model_files) | {"MANIFEST.json"}
    assert not any(p.is_symlink() for p in out.iterdir())  # real files, not links into the cache
    for name, data in model_files.items():
        assert (out / name).read_bytes() == data
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["repo_id"] == REPO and manifest["revision"] == SHA
    assert manifest["source"] == cache.as_uri() and manifest["verified_against_hub_tree"] is True
    assert manifest["files"] == sha256_tree(out)
    assert manifest["files"]["model.safetensors"] == hashlib.sha256(model_files["model.safetensors"]).hexdigest()
    model, tok = load_model_and_tokenizer(out)
    assert model.config.vocab_size == len(tok)


@pytest.mark.parametrize("where", ["repo_folder", "snapshot_folder"])
def test_source_may_name_repo_or_snapshot_folder(cache, tmp_path, where):
    repo = cache / "models--Qwen--Qwen2.5-1.5B-Instruct"
    src = repo if where == "repo_folder" else repo / "snapshots" / SHA
    download_snapshot(tmp_path / "out", params(src))
    assert (tmp_path / "out" / "config.json").is_file()


def test_allow_patterns_filter(cache, tmp_path):
    download_snapshot(tmp_path / "out", params(cache, allow_patterns=["*.json"], ignore_patterns=["generation_*"]))
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {"config.json", "tokenizer.json", "tokenizer_config.json", "MANIFEST.json"}


@pytest.mark.parametrize("revision", ["main", "v1.0", SHA[:7], SHA.upper(), None])
def test_rejects_non_sha_revision(cache, tmp_path, revision):
    with pytest.raises(ValueError, match="40-hex commit sha.*move"):
        download_snapshot(tmp_path / "models" / "m", params(cache, revision=revision))
    assert_nothing_left(tmp_path / "models")


def test_rejects_revision_absent_from_source(cache, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"commit {OTHER_SHA} .*not in the local HF cache.*{SHA}"):
        download_snapshot(tmp_path / "models" / "m", params(cache, revision=OTHER_SHA))
    assert_nothing_left(tmp_path / "models")


def test_rejects_snapshot_folder_of_another_commit(cache, tmp_path):
    src = cache / "models--Qwen--Qwen2.5-1.5B-Instruct" / "snapshots" / SHA
    with pytest.raises(ValueError, match="is commit"):
        download_snapshot(tmp_path / "models" / "m", params(src, revision=OTHER_SHA))
    assert_nothing_left(tmp_path / "models")


def test_rejects_corrupted_file_and_keeps_previous_output(cache, tmp_path):
    out = tmp_path / "models" / "m"
    download_snapshot(out, params(cache))
    before = sha256_tree(out)
    blob = (cache / "models--Qwen--Qwen2.5-1.5B-Instruct" / "snapshots" / SHA / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the weights
    blob.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors.*does not match"):
        download_snapshot(out, params(cache))
    assert sha256_tree(out) == before  # the earlier complete download is untouched
    assert [p.name for p in out.parent.iterdir()] == ["m"]  # and no temp folder is left


def test_incomplete_snapshot_is_refused(cache, tmp_path):
    (cache / "models--Qwen--Qwen2.5-1.5B-Instruct" / "snapshots" / SHA / "tokenizer.json").unlink()
    with pytest.raises(IncompleteSnapshotError, match="tokenizer.json"):
        download_snapshot(tmp_path / "models" / "m", params(cache))
    assert_nothing_left(tmp_path / "models")


def test_cache_without_tree_listing_is_copied_unverified(tmp_path, model_files):
    root = tmp_path / "old-cache"
    write_hub_cache(root, REPO, SHA, model_files, tree=False)
    download_snapshot(tmp_path / "out", params(root))
    manifest = json.loads((tmp_path / "out" / "MANIFEST.json").read_text())
    assert manifest["verified_against_hub_tree"] is False and manifest["files"] == sha256_tree(tmp_path / "out")


def test_missing_repo_and_bad_source(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="models--Qwen--Other"):
        download_snapshot(tmp_path / "models" / "m", params(cache, repo_id="Qwen/Other"))
    with pytest.raises(ValueError, match="file://"):
        download_snapshot(tmp_path / "models" / "m", params(cache, source="s3://bucket/cache"))
    with pytest.raises(ValueError, match="HF_TOKEN"):
        download_snapshot(tmp_path / "models" / "m", params(cache, token=TOKEN))
    assert_nothing_left(tmp_path / "models")


def test_token_never_written_or_logged(cache, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    download_snapshot(out, params(cache))
    # Hub path, offline: huggingface_hub's own offline switch (HF_HUB_OFFLINE=1, read at import,
    # hence set on its constants module) makes the request fail fast instead of retrying ~20 s.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError):
        download_snapshot(tmp_path / "models" / "hub", {"repo_id": REPO, "revision": SHA})
    assert_nothing_left(tmp_path / "models")
    for p in out.rglob("*"):
        assert TOKEN.encode() not in p.read_bytes(), p
    assert TOKEN not in caplog.text


def test_failed_hub_download_leaves_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "models" / "m"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError):
        download_snapshot(out, {"repo_id": REPO, "revision": SHA})
    assert [p.name for p in out.parent.iterdir()] == ["m"] and (out / "config.json").read_text() == "{}"
    shutil.rmtree(out)
