"""Hub snapshot download (repro.models.hub) against a local cache laid out like huggingface_hub's.

The fixture writes a tiny Qwen2 model into ``models--Qwen--Qwen2.5-1.5B-Instruct/`` exactly as
``snapshot_download(cache_dir=...)`` leaves it: content-addressed ``blobs/`` (git sha1 for small
files, sha256 for LFS files), ``snapshots/<sha>/`` of relative symlinks, ``refs/main`` and the
tree listing ``trees/<sha>.json`` with each file's git oid (huggingface_hub >= 2.4).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import IncompleteSnapshotError, RevisionNotFoundError

from repro.io import sha256_tree
from repro.models.hub import download_snapshot
from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer
from repro.registry import MODELS

from hub_cache import LFS, git_oid, lfs_pointer, write_hub_cache

REPO = "Qwen/Qwen2.5-1.5B-Instruct"
SHA = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"
OTHER_SHA = "0" * 40
TOKEN = "hf_plantedSECRETtoken0123456789"


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


# --- the Hub path over HTTP: a local server speaking the part of the Hub API snapshot_download uses


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """``GET /api/models/<repo>/tree/<sha>`` (the tree listing), ``HEAD``/``GET
    /<repo>/resolve/<sha>/<file>`` (metadata headers; content with ``Range``) for one commit.

    Faults, for ``fault_file`` only: ``drops`` GETs close the connection after ``keep`` bytes of a
    full ``Content-Length``; ``corrupt`` flips the last byte served; ``truncate`` serves the file
    short (with a matching ``Content-Length``: a proxy that cut it).
    """

    files: dict[str, bytes] = {}
    fault_file = "model.safetensors"
    drops = keep = served = 0
    corrupt = truncate = False
    ranges: list[int] = []

    def log_message(self, *args):  # noqa: D102
        pass

    def _resolve(self) -> str | None:
        path = unquote(urlsplit(self.path).path)
        prefix = f"/{REPO}/resolve/"
        if not path.startswith(prefix):
            return None
        rev, _, name = path[len(prefix):].partition("/")
        return name if rev == SHA and name in self.files else None

    def _meta_headers(self, name: str) -> None:
        data = self.files[name]
        self.send_header("X-Repo-Commit", SHA)
        if name in LFS:
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", f'"{git_oid(data)}"')

    def _not_found(self, code: str) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):  # noqa: N802
        name = self._resolve()
        if name is None:
            return self._not_found("EntryNotFound")
        self.send_response(200)
        self._meta_headers(name)
        self.send_header("Content-Length", str(len(self.files[name])))
        self.end_headers()

    def do_GET(self):  # noqa: N802
        cls, path = type(self), unquote(urlsplit(self.path).path)
        if path.startswith(f"/api/models/{REPO}/tree/"):
            if path.rsplit("/", 1)[1] != SHA:
                return self._not_found("RevisionNotFound")
            return self._json([_tree_entry(n, d) for n, d in sorted(self.files.items())])
        name = self._resolve()
        if name is None:
            return self._not_found("EntryNotFound")
        data = self.files[name]
        if name == cls.fault_file and cls.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if name == cls.fault_file and cls.truncate:
            data = data[: len(data) // 2]
        start = int(self.headers["Range"].split("=", 1)[1].split("-", 1)[0]) if self.headers.get("Range") else 0
        if name == cls.fault_file:
            cls.ranges.append(start)
        self.send_response(206 if start else 200)
        self._meta_headers(name)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        drop = name == cls.fault_file and cls.served < cls.drops
        if name == cls.fault_file:
            cls.served += 1
        self.wfile.write(data[start:start + cls.keep] if drop else data[start:])
        self.wfile.flush()
        if drop:
            self.close_connection = True

    def _json(self, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _tree_entry(name: str, data: bytes) -> dict:
    if name in LFS:
        return {"type": "file", "path": name, "size": len(data), "oid": git_oid(lfs_pointer(data)),
                "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "pointerSize": len(lfs_pointer(data))}}
    return {"type": "file", "path": name, "size": len(data), "oid": git_oid(data)}


@pytest.fixture()
def hub(model_files, monkeypatch):
    """A local Hub at ``http://127.0.0.1:<port>``; yields (endpoint, handler class)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    handler = type("Hub", (_HubHandler,), {"files": dict(model_files), "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def hub_params(endpoint: str, **kw) -> dict:
    return {"repo_id": REPO, "revision": SHA, "endpoint": endpoint, **kw}


def test_hub_download_over_http_is_verified(hub, model_files, tmp_path):
    endpoint, _ = hub
    out = tmp_path / "models" / "m"
    download_snapshot(out, hub_params(endpoint))
    assert {p.name for p in out.iterdir()} == set(model_files) | {"MANIFEST.json"}  # no .cache/
    assert all((out / n).read_bytes() == d for n, d in model_files.items())
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["source"] == endpoint and manifest["verified_against_hub_tree"] is True
    assert manifest["files"] == sha256_tree(out)


def test_hub_download_resumes_after_a_dropped_transfer(hub, model_files, tmp_path, monkeypatch):
    endpoint, handler = hub
    # huggingface_hub writes whole 10 MB chunks; a smaller one lets a 100 kB file resume mid-way
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    size = len(model_files["model.safetensors"])
    handler.drops, handler.keep = 1, size // 3
    out = tmp_path / "models" / "m"
    download_snapshot(out, hub_params(endpoint))
    # the second request resumed from the last whole chunk before the drop
    assert len(handler.ranges) == 2 and handler.ranges[0] == 0
    assert size // 3 - 4096 < handler.ranges[1] <= size // 3
    assert (out / "model.safetensors").read_bytes() == model_files["model.safetensors"]


def test_hub_download_that_keeps_failing_leaves_nothing_then_succeeds(hub, model_files, tmp_path):
    endpoint, handler = hub
    handler.drops, handler.keep = 10**6, 0  # the connection closes before any byte, every time
    out = tmp_path / "models" / "m"
    with pytest.raises(OSError, match=f"{REPO}@{SHA} failed at {endpoint}/.*/model.safetensors .*rerun"):
        download_snapshot(out, hub_params(endpoint))
    assert_nothing_left(tmp_path / "models")
    handler.drops = 0  # the server is back: the same call succeeds from scratch
    download_snapshot(out, hub_params(endpoint))
    assert (out / "model.safetensors").read_bytes() == model_files["model.safetensors"]


def test_hub_serving_corrupted_bytes_is_refused(hub, model_files, tmp_path):
    endpoint, handler = hub
    handler.corrupt = True
    out = tmp_path / "models" / "m"
    with pytest.raises(ValueError) as err:
        download_snapshot(out, hub_params(endpoint))
    bad = bytearray(model_files["model.safetensors"])
    bad[-1] ^= 0xFF
    msg = str(err.value)
    assert "model.safetensors" in msg and hashlib.sha256(bad).hexdigest() in msg  # actual
    assert git_oid(lfs_pointer(model_files["model.safetensors"])) in msg  # expected
    assert_nothing_left(tmp_path / "models")
    handler.corrupt = False
    download_snapshot(out, hub_params(endpoint))
    assert sha256_tree(out)["model.safetensors"] == hashlib.sha256(model_files["model.safetensors"]).hexdigest()


def test_hub_serving_a_truncated_file_is_refused(hub, model_files, tmp_path):
    endpoint, handler = hub
    handler.truncate = True
    size = len(model_files["model.safetensors"])
    with pytest.raises(OSError, match=rf"(?s)failed at .*size {size} but has size {size // 2} .*model.safetensors.*rerun"):
        download_snapshot(tmp_path / "models" / "m", hub_params(endpoint))
    assert_nothing_left(tmp_path / "models")


def test_hub_without_the_revision(hub, tmp_path):
    endpoint, _ = hub
    with pytest.raises(RevisionNotFoundError):
        download_snapshot(tmp_path / "models" / "m", hub_params(endpoint, revision=OTHER_SHA))
    assert_nothing_left(tmp_path / "models")
