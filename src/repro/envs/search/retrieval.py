"""Retrievers over a search dataset's ``corpus.jsonl``: BM25 (embedded corpora) and E5 + faiss (wiki-18).

A search dataset folder (``repro.data.search_qa``; reference/agentic-rl.md §3.6.4, §4.4) holds
``corpus.jsonl``, one passage a line, ``{"id": "...", "contents": "\\"<Title>\\"\\n<text>"}``
(Search-R1's wiki-18 format), and ``retriever.json``, which names the retriever that serves it::

    {"kind": "bm25", "k1": 1.2, "b": 0.75}                      # optional "stopwords": null | "en" | [...]
    {"kind": "e5", "model": "encoder", "index": "e5_Flat.index",
     "query_prefix": "query: ", "pooling": "mean", "max_length": 256}

:func:`load_retriever` reads it and builds the retriever through :data:`RETRIEVERS` (kind ->
class). Every retriever answers ``search(queries, k)``: for each query, the ``contents`` of its
top-``k`` passages, best first, all queries in one batched call (the env's one call per step).

- :class:`BM25Retriever`: Lucene's BM25 (``bm25s``, ``method="lucene"``: idf = ln(1 + (N - df +
  0.5) / (df + 0.5)) times tf / (tf + k1 (1 - b + b dl / avgdl)), without the constant factor
  (k1 + 1), as Lucene >= 8; the ranking is the same) over a tokenizer that lower-cases and splits
  on non-alphanumerics, with no stemming and (by default) no stopword removal (pyserini's default
  English analyzer, behind Search-R1's BM25 server, would stem and drop stopwords). As in Lucene,
  only passages that contain a query token are hits: a query that is empty or has no token of the
  corpus vocabulary gets ``[]``, and a query matching fewer than ``k`` passages gets fewer. Ties
  break by corpus order. The index is built in memory at construction.
- :class:`E5Retriever`: the dense retriever of Search-R1's ``search_r1/search/retrieval_server.py``
  (``retriever_name=e5``, ``intfloat/e5-base-v2``, ``pooling_method=mean``,
  ``retrieval_query_max_length=256``, fp16 on GPU, top-3 in Dr. MAS's search team): each query
  is encoded as ``"query: " + q``, mean-pooled over the attention mask and L2-normalised, and
  searched by inner product in a faiss flat index whose row ``i`` is corpus line ``i``, encoded by
  :func:`build_e5_index` as ``"passage: " + contents`` (Search-R1's ``index_builder.py``:
  ``max_length 256``, ``batch_size 512``, ``faiss_type Flat``).

Passages by row without loading the corpus (wiki-18: 21M passages, 14 GB): the byte offset of
every non-empty line of ``corpus.jsonl`` is computed once (a vectorised newline scan) and cached
beside it as ``corpus.offsets.npy`` (int64, one entry per passage plus the file size: a cache whose
last entry is not the corpus size is rebuilt; an edit that keeps the size is not detected); the
corpus is memory-mapped and a hit is one slice + one ``json.loads``. A cache that cannot be written
(a read-only dataset) is kept in memory. ``repro.data.search_qa`` writes it with the corpus.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

log = logging.getLogger(__name__)

CORPUS = "corpus.jsonl"
CONFIG = "retriever.json"
OFFSETS = "corpus.offsets.npy"
#: tokens of the BM25 tokenizer: maximal runs of (Unicode) letters and digits, after lower-casing
TOKEN = r"[^\W_]+"
_CHUNK = 1 << 26


class Retriever(Protocol):
    """What the search env needs from a retriever."""

    def search(self, queries: list[str], k: int) -> list[list[str]]:
        """For each query, the ``contents`` of its top-``k`` passages, best first."""


# --- corpus access ---------------------------------------------------------------------------------

def line_offsets(path: str | Path) -> np.ndarray:
    """Byte offset of every non-empty line of ``path``, then the file size (int64, ``n + 1``).

    Row ``i`` is ``data[off[i]:off[i + 1]]`` up to trailing newlines (empty lines between rows fall
    into the slice before them). One vectorised pass over 64 MiB chunks."""
    starts, pos = [np.zeros(1, dtype=np.int64)], 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            starts.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10).astype(np.int64) + pos + 1)
            pos += len(chunk)
    begin = np.concatenate(starts)                      # start of every line (and pos if the file ends in \n)
    end = np.append(begin[1:] - 1, pos)                 # its end, newline excluded
    return np.append(begin[end > begin], pos).astype(np.int64)


def corpus_offsets(dataset_dir: str | Path, *, write: bool = True) -> np.ndarray:
    """:func:`line_offsets` of ``dataset_dir/corpus.jsonl``, read from (or written to) the
    ``corpus.offsets.npy`` cache beside it; a cache whose last entry is not the corpus size is rebuilt."""
    corpus, cache = Path(dataset_dir) / CORPUS, Path(dataset_dir) / OFFSETS
    size = corpus.stat().st_size
    if cache.exists():
        offsets = np.load(cache, mmap_mode="r")
        if len(offsets) and int(offsets[-1]) == size:
            return offsets
        log.warning("%s does not match %s (%d bytes); rebuilding it", cache, corpus, size)
    offsets = line_offsets(corpus)
    if write:
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, offsets)
            os.replace(tmp, cache)
        except OSError as err:  # a read-only dataset: keep the offsets in memory
            log.warning("could not cache the corpus offsets at %s (%s); kept in memory", cache, err)
            tmp.unlink(missing_ok=True)
    return offsets


class Corpus:
    """``corpus.jsonl`` by row, memory-mapped: ``corpus[rows]`` -> the ``contents`` of those rows."""

    def __init__(self, dataset_dir: str | Path) -> None:
        self.path = Path(dataset_dir) / CORPUS
        self.offsets = corpus_offsets(dataset_dir)
        if len(self.offsets) < 2:
            raise ValueError(f"{self.path}: the corpus has no passage")
        with open(self.path, "rb") as fh:
            self._data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, rows: list[int] | np.ndarray) -> list[str]:
        off = self.offsets
        return [json.loads(self._data[off[r]:off[r + 1]])["contents"] for r in np.asarray(rows, dtype=np.int64)]


def iter_contents(path: str | Path) -> Iterator[str]:
    """The ``contents`` of every passage (non-empty line) of a ``corpus.jsonl``, in order, streamed:
    the rows of :func:`line_offsets`."""
    with open(path, encoding="utf-8", newline="\n") as fh:
        for n, line in enumerate(fh, 1):
            if line != "\n":
                try:
                    yield json.loads(line)["contents"]
                except (ValueError, KeyError) as err:
                    raise ValueError(f"{path}:{n}: not a passage {{'id', 'contents'}} ({err!r})") from err


# --- BM25 ------------------------------------------------------------------------------------------

class BM25Retriever:
    """Lucene BM25 over an in-memory corpus (``bm25s``), exact and batched.

    Args:
        contents: the passages, in corpus order (row ``i`` = passage ``i``).
        k1, b: BM25's term-frequency saturation and length normalisation (retriever.json; the
            defaults are Lucene's ``BM25Similarity``, pyserini's searcher sets 0.9 and 0.4).
        stopwords: ``None`` (none removed: the default), ``"en"`` (bm25s's English list) or a list.
    """

    def __init__(self, contents: list[str], k1: float = 1.2, b: float = 0.75,
                 stopwords: str | list[str] | None = None) -> None:
        import bm25s  # noqa: PLC0415
        import scipy.sparse as sp  # noqa: PLC0415

        if not contents:
            raise ValueError("BM25Retriever: the corpus has no passage")
        self.contents = list(contents)
        self.tokenizer = bm25s.tokenization.Tokenizer(lower=True, splitter=TOKEN, stopwords=stopwords, stemmer=None)
        ids = self.tokenizer.tokenize(self.contents, update_vocab=True, return_as="ids", show_progress=False,
                                      allow_empty=False)
        self.vocab: dict[str, int] = self.tokenizer.get_vocab_dict()
        if not self.vocab:
            raise ValueError("BM25Retriever: no passage of the corpus has a token")
        self.bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.bm25.index((ids, self.vocab), create_empty_token=False, show_progress=False)
        s = self.bm25.scores  # per (passage, token) BM25 weights, CSC over tokens (bm25s' saved index)
        # (tokens x passages) CSR: a query's scores are its token counts times this matrix
        self._weights = sp.csc_matrix((s["data"], s["indices"], s["indptr"]),
                                      shape=(s["num_docs"], len(self.vocab))).T.tocsr()

    @classmethod
    def from_config(cls, dataset_dir: Path, config: dict[str, Any]) -> BM25Retriever:
        _check_keys(dataset_dir, config, {"k1", "b", "stopwords"})
        return cls(list(iter_contents(Path(dataset_dir) / CORPUS)), k1=float(config.get("k1", 1.2)),
                   b=float(config.get("b", 0.75)), stopwords=config.get("stopwords"))

    def rank(self, queries: list[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, (passage rows, BM25 scores) of its top-``k`` hits, best first, ties by row."""
        import scipy.sparse as sp  # noqa: PLC0415

        _check_k(k)
        ids = self.tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False,
                                      allow_empty=False)
        rows = np.repeat(np.arange(len(ids)), [len(q) for q in ids])
        cols = np.fromiter((t for q in ids for t in q), dtype=np.int64, count=len(rows))
        counts = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(len(ids), len(self.vocab)))  # a repeated query token counts twice, as in Lucene
        hits = (counts @ self._weights).tocoo()  # (queries x passages), only passages sharing a token
        keep = hits.data > 0
        q, doc, score = hits.row[keep], hits.col[keep], hits.data[keep]
        order = np.lexsort((doc, -score, q))  # by query, then score descending, then corpus order
        q, doc, score = q[order], doc[order], score[order]
        first = np.searchsorted(q, np.arange(len(ids) + 1))
        top = np.arange(len(q)) - first[q] < k
        q, doc, score = q[top], doc[top], score[top]
        bounds = np.searchsorted(q, np.arange(len(ids) + 1))
        return [(doc[bounds[i]:bounds[i + 1]], score[bounds[i]:bounds[i + 1]]) for i in range(len(ids))]

    def search(self, queries: list[str], k: int) -> list[list[str]]:
        """Top-``k`` passages per query, best first; ``[]`` for a query without a corpus token."""
        return [[self.contents[r] for r in rows] for rows, _ in self.rank(queries, k)]


# --- E5 --------------------------------------------------------------------------------------------

def _mean_pool(hidden, mask):
    """Mean of the token states over the attention mask (Search-R1's ``pooling_method="mean"``)."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1)


def _cls_pool(hidden, mask):
    return hidden[:, 0]


#: pooling name -> (last hidden state (B, T, H), attention mask (B, T)) -> (B, H)
POOLINGS: dict[str, Callable[[Any, Any], Any]] = {"mean": _mean_pool, "cls": _cls_pool}


class E5Encoder:
    """An E5 text encoder (``transformers.AutoModel`` + ``AutoTokenizer`` from a local folder):
    ``encode(texts, prefix)`` -> L2-normalised pooled embeddings, float32 (n, hidden).

    ``device``: default ``cuda`` when available; ``fp16``: default on for CUDA (Search-R1's server
    and index builder), never on CPU."""

    def __init__(self, model_dir: str | Path, *, pooling: str = "mean", max_length: int = 256,
                 device: str | None = None, fp16: bool | None = None) -> None:
        import torch  # noqa: PLC0415
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {sorted(POOLINGS)}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        fp16 = self.device.type == "cuda" if fp16 is None else bool(fp16) and self.device.type == "cuda"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).to(self.device).eval()
        if fp16:
            self.model = self.model.half()
        self.pool, self.max_length = POOLINGS[pooling], int(max_length)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """(len(texts), hidden) float32, each row of unit L2 norm; ``prefix`` is prepended to every text."""
        import torch  # noqa: PLC0415

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self.tokenizer([prefix + t for t in texts], max_length=self.max_length, padding=True,
                               truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch, return_dict=True).last_hidden_state
            emb = torch.nn.functional.normalize(self.pool(hidden, batch["attention_mask"]).float(), dim=-1)
        return np.ascontiguousarray(emb.cpu().numpy(), dtype=np.float32)


class E5Retriever:
    """Dense retrieval as Search-R1's server does it: E5 query embeddings, inner product in a faiss
    flat index over the corpus rows, passages read by row (:class:`Corpus`).

    Args:
        dataset_dir: the folder of ``corpus.jsonl``; ``model`` and ``index`` are relative to it.
        model: the E5 model folder (HF layout); index: the faiss index file.
        query_prefix, pooling, max_length: the encoder's query side (retriever.json).
        batch_size: queries encoded per forward pass (the server's ``retrieval_batch_size``, 512).
        device, fp16: as :class:`E5Encoder`.
        mmap: memory-map the index (``faiss.IO_FLAG_MMAP_IFC``) instead of reading it into memory,
            so that the processes of one node share the page cache; off by default (the server's way).
        faiss_gpu: shard the index over every GPU in fp16, as the server's ``--faiss_gpu`` (needs a
            GPU build of faiss; a flat search of wiki-18 on CPU takes seconds per query batch).
    """

    def __init__(self, dataset_dir: str | Path, model: str = "encoder", index: str = "e5_Flat.index", *,
                 query_prefix: str = "query: ", pooling: str = "mean", max_length: int = 256,
                 batch_size: int = 512, device: str | None = None, fp16: bool | None = None,
                 mmap: bool = False, faiss_gpu: bool = False) -> None:
        import faiss  # noqa: PLC0415

        dataset_dir = Path(dataset_dir)
        index_path = dataset_dir / index
        if not index_path.exists():
            raise FileNotFoundError(f"{index_path}: no faiss index (retriever.json 'index'); build it with "
                                    "repro.envs.search.retrieval.build_e5_index")
        self.corpus = Corpus(dataset_dir)
        self.index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        if self.index.ntotal != len(self.corpus):
            raise ValueError(f"{index_path} holds {self.index.ntotal} vectors but {self.corpus.path} has "
                             f"{len(self.corpus)} passages: the index was not built from this corpus")
        if faiss_gpu:
            if faiss.get_num_gpus() < 1:
                raise ValueError("faiss_gpu: this faiss build sees no GPU (faiss-cpu?); install a GPU build "
                                 "(e.g. faiss-gpu-cu12) or set faiss_gpu to false")
            options = faiss.GpuMultipleClonerOptions()
            options.useFloat16, options.shard = True, True
            self.index = faiss.index_cpu_to_all_gpus(self.index, co=options)
        self.encoder = E5Encoder(dataset_dir / model, pooling=pooling, max_length=max_length, device=device, fp16=fp16)
        if self.encoder.dim != self.index.d:
            raise ValueError(f"{index_path} has dimension {self.index.d} but the encoder {dataset_dir / model} "
                             f"outputs {self.encoder.dim}")
        self.query_prefix, self.batch_size = query_prefix, int(batch_size)

    @classmethod
    def from_config(cls, dataset_dir: Path, config: dict[str, Any]) -> E5Retriever:
        _check_keys(dataset_dir, config, {"model", "index", "query_prefix", "pooling", "max_length",
                                          "batch_size", "device", "fp16", "mmap", "faiss_gpu"})
        return cls(dataset_dir, **config)

    def embed(self, queries: list[str]) -> np.ndarray:
        """(len(queries), hidden) query embeddings, encoded ``batch_size`` at a time."""
        parts = [self.encoder.encode(queries[i:i + self.batch_size], self.query_prefix)
                 for i in range(0, len(queries), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.index.d), dtype=np.float32)

    def rank(self, queries: list[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, (passage rows, inner products) of its top-``k`` passages, best first."""
        _check_k(k)
        if not queries:
            return []
        scores, rows = self.index.search(self.embed(list(queries)), min(k, self.index.ntotal))
        return [(r[r >= 0], s[r >= 0]) for r, s in zip(rows, scores)]

    def search(self, queries: list[str], k: int) -> list[list[str]]:
        """Top-``k`` passages per query, best first (an empty query still gets its ``k``, as in Search-R1)."""
        return [self.corpus[rows] for rows, _ in self.rank(queries, k)]


def build_e5_index(dataset_dir: str | Path, model_dir: str | Path, batch_size: int = 512, *,
                   index: str = "e5_Flat.index", passage_prefix: str = "passage: ", pooling: str = "mean",
                   max_length: int = 256, device: str | None = None, fp16: bool | None = None,
                   log_every: int = 100) -> Path:
    """Encode every passage of ``dataset_dir/corpus.jsonl`` (``passage_prefix + contents``) with the
    E5 encoder at ``model_dir`` and write a faiss ``IndexFlatIP`` (row ``i`` = corpus line ``i``) to
    ``dataset_dir/index`` atomically (a temporary file renamed into place); logs progress every
    ``log_every`` batches. Search-R1's ``index_builder.py`` settings are the defaults. Returns the path."""
    import faiss  # noqa: PLC0415

    dataset_dir = Path(dataset_dir)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    total = len(corpus_offsets(dataset_dir)) - 1
    encoder = E5Encoder(model_dir, pooling=pooling, max_length=max_length, device=device, fp16=fp16)
    flat = faiss.IndexFlatIP(encoder.dim)
    batch: list[str] = []
    n_batches, start = 0, time.monotonic()

    def flush() -> None:
        nonlocal n_batches
        flat.add(encoder.encode(batch, passage_prefix))
        batch.clear()
        n_batches += 1
        if n_batches % log_every == 0:
            rate = flat.ntotal / max(time.monotonic() - start, 1e-9)
            log.info("e5 index: %d / %d passages (%.0f/s, %.1f min left)", flat.ntotal, total, rate,
                     (total - flat.ntotal) / rate / 60)

    for text in iter_contents(dataset_dir / CORPUS):
        batch.append(text)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if flat.ntotal != total:
        raise ValueError(f"{dataset_dir / CORPUS}: encoded {flat.ntotal} passages but the offsets count {total}")
    out = dataset_dir / index
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        faiss.write_index(flat, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("e5 index: %d passages of dimension %d -> %s (%.1f min)", flat.ntotal, flat.d, out,
             (time.monotonic() - start) / 60)
    return out


# --- loading ---------------------------------------------------------------------------------------

#: retriever.json ``kind`` -> the class serving it (``from_config(dataset_dir, config)``)
RETRIEVERS: dict[str, Any] = {"bm25": BM25Retriever, "e5": E5Retriever}


def _check_keys(dataset_dir: Path, config: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"{Path(dataset_dir) / CONFIG}: unknown key(s) {unknown} for this kind; "
                         f"allowed: {sorted(allowed)}")


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def load_retriever(dataset_dir: str | Path, **options: Any) -> Retriever:
    """The retriever ``dataset_dir/retriever.json`` names. ``options`` add to or override its keys
    (runtime settings such as ``device``, ``batch_size`` or ``mmap`` for E5)."""
    path = Path(dataset_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path}: the dataset names no retriever")
    config = {**json.loads(path.read_text(encoding="utf-8")), **options}
    kind = config.pop("kind", None)
    if kind not in RETRIEVERS:
        raise ValueError(f"{path}: kind {kind!r} is not a known retriever; allowed: {sorted(RETRIEVERS)}")
    return RETRIEVERS[kind].from_config(Path(dataset_dir), config)
