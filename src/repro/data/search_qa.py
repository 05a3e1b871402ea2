"""``search/nq_hotpotqa``: the paper-scale search-QA data of Dr. MAS's search team, in one folder.

Dr. MAS trains its search team on NQ + HotpotQA and tests on NQ, TriviaQA, PopQA, HotpotQA, 2Wiki,
MuSiQue and Bamboogle with an E5 retriever over wiki-18, top-3 passages, the Search-R1 setup
(reference/agentic-rl.md §3.6.4, §4.4). Everything comes from Hugging Face repositories, fetched
through ``repro.models.hub.fetch_verified`` (the Hub, a mirror, or a ``file://`` local HF cache;
every file checked against the commit's tree listing):

- questions: ``PeterJinGo/nq_hotpotqa_train`` (``train.parquet``, ``test.parquet``: ``question``,
  ``golden_answers``, ``data_source``, ``reward_model.ground_truth.target``). ``train.jsonl`` is the
  whole train split; each test ``data_source`` becomes ``<source>.jsonl``; ``valid.jsonl`` is the
  first ``valid_per_source`` (30) rows of every source in test order, Dr. MAS's ``test_sampled``
  (``examples/data_preprocess/drmas_search.py``, ``sample_by_data_source``). Answers are
  ``reward_model.ground_truth.target`` where present, else ``golden_answers`` (the same script).
- passages: ``PeterJinGo/wiki-18-corpus``, ``wiki-18.jsonl.gz`` streamed into ``corpus.jsonl``
  (21M ``{"id", "contents"}`` lines). Despite its name the file is a gzipped *tar* holding one
  member, ``data00/jiajie_jin/flashrag_indexes/wiki_dpr_100w/wiki_dump.jsonl`` (Search-R1's
  ``gzip -d`` leaves the tar); a tar is detected and ``corpus.member`` (default: its only file) is
  extracted, a plain gzipped JSONL is taken as is. ``corpus.offsets.npy`` (the byte offset of every
  passage, ``repro.envs.search.retrieval``) is written beside it.
- encoder: ``intfloat/e5-base-v2`` (a model repository, pinned to a commit) into ``encoder/``.
- index: either Search-R1's prebuilt E5 flat index (``PeterJinGo/wiki-18-e5-index``: ``part_aa`` +
  ``part_ab`` concatenated in that order into ``e5_Flat.index``, as Search-R1's README does), or one
  built here by ``retrieval.build_e5_index`` (hours on a GPU for wiki-18). Either way its size and
  dimension are checked against the corpus and the encoder.
- ``retriever.json``: ``{"kind": "e5", "model": "encoder", "index": "e5_Flat.index",
  "query_prefix": "query: ", "pooling": "mean", "max_length": 256}`` (Search-R1's retrieval server).

Revisions: ``revision: null`` resolves a dataset repository's current ``main`` and records it in
MANIFEST.json (``math_dapo.resolve_revision``); the encoder, a model, must be pinned (as ``get_model``).
Large files are fetched one at a time into a scratch folder inside the atomic output folder and
deleted once used (peak disk: the outputs plus one source file).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import tarfile
from pathlib import Path
from typing import IO, Any

from repro import io as rio
from repro.data.math_dapo import read_split, resolve_revision
from repro.registry import DATASETS

log = logging.getLogger(__name__)

NAME = "search/nq_hotpotqa"
INDEX = "e5_Flat.index"
#: split names the folder already uses; a data source may not take them
RESERVED = {"train", "valid", "corpus"}
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{40}")
_BLOCK = 1 << 24
#: the keys of ``params`` and of each section, and the defaults of the optional ones
SECTIONS: dict[str, dict[str, Any]] = {
    "qa": {"repo_id": None, "revision": None, "train_split": "train", "test_split": "test",
           "allow_patterns": ["*.parquet"]},
    "corpus": {"repo_id": None, "revision": None, "file": None, "member": None},
    "encoder": {"repo_id": None, "revision": None, "folder": "encoder",
                "allow_patterns": ["*.json", "*.txt", "*.safetensors"]},
    "retriever": {"query_prefix": "query: ", "pooling": "mean", "max_length": 256},
}
REQUIRED = {"qa": ("repo_id", "revision"), "corpus": ("repo_id", "revision", "file"),
            "encoder": ("repo_id", "revision")}
INDEX_MODES: dict[str, dict[str, Any]] = {
    "prebuilt": {"repo_id": None, "revision": None, "parts": None},
    "build": {"batch_size": 512, "log_every": 100, "device": None},
}
TOP_LEVEL = {*SECTIONS, "index", "valid_per_source", "source", "endpoint"}


def _err(key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{NAME}: params.{key} = {value!r}: {allowed}")


def _section(params: dict[str, Any], name: str, spec: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    given = params.get(name)
    if not isinstance(given, dict):
        raise _err(name, given, f"a mapping with keys {sorted(spec)}")
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise _err(name, given, f"unknown key(s) {unknown}; allowed: {sorted(spec)}")
    missing = [k for k in required if k not in given]
    if missing:
        raise _err(name, given, f"missing key(s) {missing} (required: {list(required)})")
    return {**spec, **given}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with defaults filled in, every section checked; a bad value names its key, the
    value and what is allowed. Nothing is fetched before this passes."""
    from repro.envs.search.retrieval import POOLINGS  # noqa: PLC0415

    unknown = sorted(set(params) - TOP_LEVEL)
    if unknown:
        raise ValueError(f"{NAME}: unknown params key(s) {unknown}; allowed: {sorted(TOP_LEVEL)}")
    out = {k: _section(params, k, spec, REQUIRED.get(k, ())) for k, spec in SECTIONS.items() if k != "retriever"}
    out["retriever"] = _section({"retriever": params.get("retriever") or {}}, "retriever", SECTIONS["retriever"])
    for sec in ("qa", "corpus", "encoder"):
        if not isinstance(out[sec]["repo_id"], str) or "/" not in out[sec]["repo_id"]:
            raise _err(f"{sec}.repo_id", out[sec]["repo_id"], "a Hub repository id 'owner/name'")
    folder = out["encoder"]["folder"]
    if not isinstance(folder, str) or not _SOURCE_NAME.fullmatch(folder) or folder.startswith("."):
        raise _err("encoder.folder", folder, "a plain folder name (letters, digits, '_.-')")
    rev = out["encoder"]["revision"]
    if not isinstance(rev, str) or not _SHA.fullmatch(rev):
        raise _err("encoder.revision", rev, "a 40-hex commit sha (model repositories are pinned, as get_model's)")
    index = params.get("index")
    if not isinstance(index, dict) or len(index) != 1 or next(iter(index)) not in INDEX_MODES:
        raise _err("index", index, f"a mapping with exactly one of {sorted(INDEX_MODES)}")
    mode = next(iter(index))
    spec = _section(index, mode, INDEX_MODES[mode], ("repo_id", "revision", "parts") if mode == "prebuilt" else ())
    parts = spec.get("parts")
    if mode == "prebuilt" and (not isinstance(parts, list) or not parts
                               or not all(isinstance(x, str) and x for x in parts)):
        raise _err("index.prebuilt.parts", parts, "a non-empty list of file names, concatenated in order")
    if mode == "build" and (isinstance(spec["batch_size"], bool) or not isinstance(spec["batch_size"], int)
                            or spec["batch_size"] < 1):
        raise _err("index.build.batch_size", spec["batch_size"], "a positive integer (Search-R1: 512)")
    out["index"] = {mode: spec}
    pinned = [(f"{k}.revision", out[k]["revision"]) for k in ("qa", "corpus")]
    for key, rev in pinned + ([("index.prebuilt.revision", spec["revision"])] if mode == "prebuilt" else []):
        if rev is not None and not (isinstance(rev, str) and _SHA.fullmatch(rev)):
            raise _err(key, rev, "null (resolve main at download, recorded in MANIFEST.json) or a 40-hex commit sha")
    n = params.get("valid_per_source", 30)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise _err("valid_per_source", n, "a non-negative integer (Dr. MAS: 30)")
    out["valid_per_source"] = n
    ret = out["retriever"]
    if isinstance(ret["max_length"], bool) or not isinstance(ret["max_length"], int) or ret["max_length"] < 1:
        raise _err("retriever.max_length", ret["max_length"], "a positive integer (Search-R1: 256)")
    if ret["pooling"] not in POOLINGS:
        raise _err("retriever.pooling", ret["pooling"], f"one of {sorted(POOLINGS)} (E5: mean)")
    out["hub"] = {k: params[k] for k in ("source", "endpoint") if params.get(k) is not None}
    return out


# --- questions -------------------------------------------------------------------------------------

def _answers(row: dict[str, Any], where: str) -> list[str]:
    """``reward_model.ground_truth.target`` if present, else ``golden_answers`` (drmas_search.py)."""
    model = row.get("reward_model")
    truth = model.get("ground_truth") if isinstance(model, dict) else None
    value = truth.get("target") if isinstance(truth, dict) else None
    if value is None:
        value = row.get("golden_answers")
    answers = [str(value)] if isinstance(value, str) else [str(a) for a in (value if value is not None else [])]
    if not answers:
        raise ValueError(f"{where}: no answer (neither reward_model.ground_truth.target nor golden_answers)")
    return answers


def _record(row: dict[str, Any], rid: str, where: str) -> dict[str, Any]:
    missing = sorted({"question", "data_source"} - row.keys())
    if missing:
        raise ValueError(f"{where}: no column {missing} (columns: {sorted(row)}; Search-R1's format expected)")
    return {"id": rid, "question": str(row["question"]).strip(), "answers": _answers(row, where),
            "source": str(row["data_source"])}


def _questions(snap: Path, qa: dict[str, Any], n_valid: int) -> dict[str, list[dict[str, Any]]]:
    """train, then one split per test data source (in order of first appearance), then valid."""
    train = [_record(r, f"train-{i:06d}", f"{qa['repo_id']} {qa['train_split']} row {i}")
             for i, r in enumerate(read_split(snap, qa["train_split"]))]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for i, row in enumerate(read_split(snap, qa["test_split"])):
        src = str(row["data_source"])
        if not _SOURCE_NAME.fullmatch(src) or src in RESERVED:
            raise ValueError(f"{qa['repo_id']} {qa['test_split']} row {i}: data_source {src!r} cannot name a split "
                             f"file (allowed: letters, digits, '_.-', not {sorted(RESERVED)})")
        rows = by_source.setdefault(src, [])
        rows.append(_record(row, f"{src}-{len(rows):05d}", f"{qa['repo_id']} {qa['test_split']} row {i}"))
    valid = [r for rows in by_source.values() for r in rows[:n_valid]]
    return {"train": train, **by_source, "valid": valid}


# --- corpus and index ------------------------------------------------------------------------------

def _copy(src: IO[bytes], dst: IO[bytes], what: str) -> None:
    """Stream ``src`` into ``dst`` in 16 MiB blocks, logging every 4 GiB."""
    n = 0
    while block := src.read(_BLOCK):
        dst.write(block)
        n += len(block)
        if n % (1 << 32) < len(block):
            log.info("%s: %.1f GiB", what, n / (1 << 30))


def _decompress_corpus(gz: Path, out: Path, member: str | None) -> str:
    """``gz`` (a gzipped JSONL, or a gzipped tar holding it) -> ``out``; returns the member taken."""
    with gzip.open(gz, "rb") as fh:
        head = fh.read(512)
    is_tar = len(head) == 512 and head[257:262] == b"ustar"
    with open(out, "wb") as dst:
        if not is_tar:
            if member is not None:
                raise _err("corpus.member", member, f"null: {gz.name} is a gzipped file, not a tar archive")
            with gzip.open(gz, "rb") as src:
                _copy(src, dst, f"{gz.name} -> {out.name}")
            return gz.name
        taken, others = None, []
        with tarfile.open(gz, mode="r|gz") as tar:  # streamed: one pass, no random access
            for info in tar:
                if not info.isfile():
                    continue
                if taken is None and (member is None or info.name == member):
                    _copy(tar.extractfile(info), dst, f"{gz.name}:{info.name} -> {out.name}")
                    taken = info.name
                else:
                    others.append(info.name)
        if taken is None:
            raise _err("corpus.member", member, f"a file of the archive {gz.name}: {others or 'none'}")
        if member is None and others:
            raise _err("corpus.member", member, f"the archive {gz.name} holds several files {[taken, *others]}; "
                                                "name the corpus")
        return taken


def _check_corpus(path: Path) -> None:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        rec = json.loads(first)
        ok = isinstance(rec, dict) and {"id", "contents"} <= rec.keys()
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{path}: the first line is not a passage {{'id', 'contents'}}: {first[:200]!r}")


def _check_index(path: Path, passages: int, dim: int) -> dict[str, int]:
    """The index's size and dimension against the corpus and the encoder (memory-mapped: cheap)."""
    import faiss  # noqa: PLC0415

    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"{path}: not an inner-product index (metric {index.metric_type})")
    if index.ntotal != passages or index.d != dim:
        raise ValueError(f"{path}: {index.ntotal} vectors of dimension {index.d}, but the corpus has {passages} "
                         f"passages and the encoder outputs {dim}: they do not belong together")
    return {"ntotal": int(index.ntotal), "dim": int(index.d)}


# --- build -----------------------------------------------------------------------------------------

def _fetch(scratch: Path, name: str, repo_id: str, revision: str, hub: dict[str, Any], allow: list[str],
           repo_type: str = "dataset") -> tuple[Path, dict[str, Any]]:
    from repro.models.hub import fetch_verified  # noqa: PLC0415

    dest = scratch / name
    dest.mkdir(parents=True)
    files, recorded, tree = fetch_verified(dest, repo_id, revision, {**hub, "allow_patterns": allow},
                                           repo_type=repo_type)
    missing = [p for p in allow if not any(c in p for c in "*?[") and p not in files]
    if missing or not files:
        raise FileNotFoundError(f"{repo_id}@{revision}: no file {missing or allow} in the repository")
    return dest, {"repo_id": repo_id, "revision": revision, "source": recorded,
                  "verified_against_hub_tree": tree is not None, "files": files}


def _encoder(tmp: Path, enc: dict[str, Any], hub: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The E5 model into ``tmp/<folder>``; its manifest entry gains the hidden size."""
    folder, record = _fetch(tmp, enc["folder"], enc["repo_id"], enc["revision"], hub, enc["allow_patterns"],
                            repo_type="model")
    if not (folder / "config.json").exists() or not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise FileNotFoundError(f"{enc['repo_id']}@{enc['revision']}: no config.json and weights among "
                                f"{sorted(record['files'])} (params.encoder.allow_patterns)")
    record["dim"] = int(rio.read_json(folder / "config.json")["hidden_size"])
    return folder, record


def _prebuilt_index(tmp: Path, scratch: Path, spec: dict[str, Any], hub: dict[str, Any]) -> dict[str, Any]:
    """Search-R1's index parts concatenated in order into ``tmp/e5_Flat.index``, one part on disk at a time."""
    rev = resolve_revision(spec["repo_id"], spec["revision"], hub)
    record: dict[str, Any] = {"kind": "prebuilt", "repo_id": spec["repo_id"], "revision": rev,
                              "parts": spec["parts"], "files": {}}
    with open(tmp / INDEX, "wb") as dst:
        for part in spec["parts"]:
            snap, got = _fetch(scratch, f"index-{part}", spec["repo_id"], rev, hub, [part])
            record.update(source=got["source"], verified_against_hub_tree=got["verified_against_hub_tree"])
            record["files"].update(got["files"])
            with open(snap / part, "rb") as src:
                _copy(src, dst, f"{part} -> {INDEX}")
            shutil.rmtree(snap)
    return record


@DATASETS.register(NAME)
def build(out_dir: Path, params: dict[str, Any]) -> None:
    """``params``: ``qa`` / ``corpus`` / ``encoder`` (``repo_id``, ``revision``, and: ``qa``'s
    ``train_split`` / ``test_split`` / ``allow_patterns``; ``corpus``'s ``file`` and tar ``member``;
    ``encoder``'s ``folder`` and ``allow_patterns``), ``index`` (``prebuilt: {repo_id, revision,
    parts}`` or ``build: {batch_size, log_every, device}``), ``retriever`` (``query_prefix``,
    ``pooling``, ``max_length``), ``valid_per_source`` (30), ``source`` / ``endpoint`` as
    ``repro.models.hub``. Output: the folder contract of ``repro.envs.search`` + MANIFEST.json."""
    from repro.envs.search import retrieval  # noqa: PLC0415

    p = check_params(params)
    hub, qa, corpus, ret = p["hub"], p["qa"], p["corpus"], p["retriever"]
    (mode, spec), = p["index"].items()
    with rio.atomic_dir(Path(out_dir)) as tmp:
        scratch = tmp / ".fetch"
        manifest: dict[str, Any] = {"dataset": NAME, "splits": {}}
        try:
            # --- questions: train, one split per test source, valid
            snap, manifest["qa"] = _fetch(scratch, "qa", qa["repo_id"], resolve_revision(qa["repo_id"], qa["revision"], hub),
                                          hub, qa["allow_patterns"])
            for split, rows in _questions(snap, qa, p["valid_per_source"]).items():
                rio.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                manifest["splits"][split] = len(rows)
            log.info("%s: questions %s", NAME, manifest["splits"])
            # --- encoder
            encoder, manifest["encoder"] = _encoder(tmp, p["encoder"], hub)
            # --- passages
            rev = resolve_revision(corpus["repo_id"], corpus["revision"], hub)
            snap, manifest["corpus"] = _fetch(scratch, "corpus", corpus["repo_id"], rev, hub, [corpus["file"]])
            manifest["corpus"]["member"] = _decompress_corpus(snap / corpus["file"], tmp / retrieval.CORPUS,
                                                              corpus["member"])
            shutil.rmtree(snap)
            _check_corpus(tmp / retrieval.CORPUS)
            manifest["corpus"]["passages"] = len(retrieval.corpus_offsets(tmp)) - 1
            log.info("%s: %d passages", NAME, manifest["corpus"]["passages"])
            # --- index
            if mode == "prebuilt":
                manifest["index"] = _prebuilt_index(tmp, scratch, spec, hub)
            else:
                manifest["index"] = {"kind": "build", **spec}
                retrieval.build_e5_index(tmp, encoder, spec["batch_size"], index=INDEX, passage_prefix="passage: ",
                                         pooling=ret["pooling"], max_length=ret["max_length"], device=spec["device"],
                                         log_every=spec["log_every"])
            manifest["index"].update(_check_index(tmp / INDEX, manifest["corpus"]["passages"],
                                                  manifest["encoder"]["dim"]))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        manifest["retriever"] = {"kind": "e5", "model": p["encoder"]["folder"], "index": INDEX, **ret}
        rio.write_json(tmp / retrieval.CONFIG, manifest["retriever"])
        manifest["files"] = rio.sha256_tree(tmp)
        manifest["versions"] = _versions()
        rio.write_json(tmp / "MANIFEST.json", manifest)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out = {}
    for pkg in ("huggingface_hub", "faiss-cpu", "transformers", "bm25s"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
