"""The search retrievers against references computed here: BM25 against Lucene's formula scored by
hand, E5 + faiss against a direct numpy computation on a tiny BERT, and the corpus access by byte
offsets (unicode text, blank lines, a stale cache)."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from repro.envs.search.retrieval import (OFFSETS, BM25Retriever, Corpus, E5Retriever, build_e5_index,
                                         corpus_offsets, line_offsets, load_retriever)

#: five short passages; "tie-a" and "tie-b" contain the query tokens the same number of times in
#: passages of the same length, so they score the same and must come out in corpus order
PASSAGES = ['"Paris"\nParis is the capital of France',
            '"Tie a"\nriver bank city',
            '"France"\nFrance France wine cheese and the river Seine in Paris',
            '"Tie b"\nriver bank town',
            '"Lyon"\nLyon is a city']


def write_dataset(folder: Path, passages: list[str], retriever: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"id": str(i), "contents": p}, ensure_ascii=False) + "\n"
                                                 for i, p in enumerate(passages)), encoding="utf-8")
    if retriever is not None:
        (folder / "retriever.json").write_text(json.dumps(retriever))
    return folder


def lucene_bm25(passages: list[str], query: str, k1: float, b: float) -> list[float]:
    """BM25 as Lucene scores it, by hand: sum over query tokens of idf * tf (k1 + 1) / (tf + k1 (1 - b
    + b dl / avgdl)), idf = ln(1 + (N - df + 0.5) / (df + 0.5)); tokens = lower-cased alphanumeric runs."""
    docs = [p.lower().replace('"', " ").split() for p in passages]
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    scores = []
    for d in docs:
        s = 0.0
        for t in query.lower().split():
            df, tf = sum(t in e for e in docs), d.count(t)
            if tf:
                s += math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        scores.append(s)
    return scores


@pytest.mark.parametrize("query", ["france river", "river bank", "paris city wine", "the"])
def test_bm25_ranks_as_lucene_scored_by_hand(query, tmp_path):
    k1, b = 1.2, 0.75
    hand = lucene_bm25(PASSAGES, query, k1, b)
    # hand order: score descending, ties by corpus order; only passages sharing a token are hits
    order = sorted((i for i, s in enumerate(hand) if s > 0), key=lambda i: (-hand[i], i))
    ret = load_retriever(write_dataset(tmp_path, PASSAGES, {"kind": "bm25", "k1": k1, "b": b}))
    assert isinstance(ret, BM25Retriever)
    (rows, scores), = ret.rank([query], k=5)
    assert rows.tolist() == order
    # Lucene >= 8 drops the constant (k1 + 1) factor, which bm25s follows: same ranking
    np.testing.assert_allclose(scores * (k1 + 1), [hand[i] for i in order], rtol=1e-5)
    assert ret.search([query], k=2) == [[PASSAGES[i] for i in order[:2]]]


def test_bm25_ties_break_by_corpus_order_and_queries_are_batched(tmp_path):
    ret = BM25Retriever(PASSAGES)
    hand = lucene_bm25(PASSAGES, "bank", 1.2, 0.75)
    assert hand[1] == hand[3] > 0 and sum(s > 0 for s in hand) == 2
    many = ["bank", "BANK, bank?", "Lyon", "bank"]
    got = ret.search(many, k=1)
    assert got == [[PASSAGES[1]], [PASSAGES[1]], [PASSAGES[4]], [PASSAGES[1]]]
    # a reversed corpus breaks the same tie the other way: by position, not by content
    assert BM25Retriever(PASSAGES[::-1]).search(["bank"], k=1) == [[PASSAGES[3]]]


def test_bm25_unknown_or_empty_query_gets_no_passage_and_few_hits_fewer_than_k(tmp_path):
    ret = BM25Retriever(PASSAGES)
    assert ret.search(["", "zebra quantum", "?!", "wine"], k=3) == [[], [], [], [PASSAGES[2]]]
    assert ret.search([], k=3) == []
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ret.search(["paris"], k=0)


def test_bm25_tokenizer_keeps_stopwords_and_does_not_stem_unless_asked():
    assert BM25Retriever(PASSAGES).search(["the"], k=5) != [[]]      # "the" is a token like any other
    assert BM25Retriever(PASSAGES, stopwords="en").search(["the"], k=5) == [[]]
    assert BM25Retriever(PASSAGES).search(["rivers"], k=5) == [[]]   # no stemming: rivers != river
    assert BM25Retriever(PASSAGES, stopwords=["paris"]).search(["paris"], k=5) == [[]]


def test_load_retriever_refuses_unknown_kind_and_keys(tmp_path):
    d = write_dataset(tmp_path / "a", PASSAGES, {"kind": "splade"})
    with pytest.raises(ValueError, match=r"retriever.json: kind 'splade'.*allowed: \['bm25', 'e5'\]"):
        load_retriever(d)
    d = write_dataset(tmp_path / "b", PASSAGES, {"kind": "bm25", "k3": 1})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['k3'\].*allowed: \['b', 'k1', 'stopwords'\]"):
        load_retriever(d)
    with pytest.raises(FileNotFoundError, match="names no retriever"):
        load_retriever(tmp_path / "a" / "nowhere")


# --- corpus by offsets ---------------------------------------------------------------------------

UNICODE = ['"Zürich"\nZürich liegt am Zürichsee — 湖', '"Ωmega"\nΩ ω 🙂 emoji', '"Plain"\nascii text']


def test_offsets_read_unicode_passages_by_row_and_skip_blank_lines(tmp_path):
    d = write_dataset(tmp_path, UNICODE)
    text = (d / "corpus.jsonl").read_text(encoding="utf-8").replace("\n", "\n\n", 1)  # a blank line
    (d / "corpus.jsonl").write_text(text.rstrip("\n"), encoding="utf-8")              # no final newline
    size = (d / "corpus.jsonl").stat().st_size
    off = line_offsets(d / "corpus.jsonl")
    assert len(off) == 4 and off[0] == 0 and off[-1] == size
    corpus = Corpus(d)
    assert len(corpus) == 3 and corpus[[2, 0, 1]] == [UNICODE[2], UNICODE[0], UNICODE[1]]
    assert (d / OFFSETS).exists()  # cached beside the corpus


def test_offsets_cache_is_rebuilt_when_the_corpus_changes(tmp_path):
    d = write_dataset(tmp_path, UNICODE)
    assert len(corpus_offsets(d)) == 4
    write_dataset(tmp_path, UNICODE + ['"New"\nappended'])
    assert Corpus(d)[[3]] == ['"New"\nappended']


# --- E5 ------------------------------------------------------------------------------------------

WORDS = ("paris france capital river seine city lyon wine cheese bank town the of is a in and "
         "zurich liegt am see emoji plain ascii text new query passage").split()


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A two-layer BERT (hidden 32) and a WordPiece tokenizer over a vocabulary written here."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", ",", ".", "!", "?", '"', "-"] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # the vocabulary file positionally: transformers 4 names it vocab_file, 5 vocab
    BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    return folder


@functools.lru_cache(maxsize=None)
def _load(model_dir: Path):
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()


def numpy_e5(model_dir: Path, texts: list[str], prefix: str, max_length: int = 256) -> np.ndarray:
    """E5 embeddings the long way: prefix, run the model, mean over real tokens, unit norm (numpy)."""
    import torch

    tok, model = _load(model_dir)
    out = []
    for t in texts:  # one at a time: no padding, so the mean is over every token
        enc = tok([prefix + t], truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0].numpy()
        v = h.mean(axis=0)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


@pytest.fixture(scope="module")
def e5_dataset(tmp_path_factory):
    d = write_dataset(tmp_path_factory.mktemp("e5"), PASSAGES + UNICODE,
                      {"kind": "e5", "model": "encoder", "index": "e5_Flat.index", "query_prefix": "query: ",
                       "pooling": "mean", "max_length": 256})
    tiny_bert(d / "encoder")
    build_e5_index(d, d / "encoder", batch_size=3, log_every=1)  # 3 batches of 3, padded within a batch
    return d


def test_e5_top_k_equals_a_direct_numpy_computation(e5_dataset):
    ret = load_retriever(e5_dataset, device="cpu")
    assert isinstance(ret, E5Retriever)
    queries = ["capital of France", "river bank", "Zürich see", ""]
    passages = PASSAGES + UNICODE
    p = numpy_e5(e5_dataset / "encoder", passages, "passage: ")
    q = numpy_e5(e5_dataset / "encoder", queries, "query: ")
    sims = q @ p.T
    want = np.argsort(-sims, axis=1, kind="stable")[:, :3]
    top4 = -np.sort(-sims, axis=1)[:, :4]
    assert (np.diff(top4, axis=1) < -1e-4).all()  # no near-tie: the order is the encoder's, not faiss' heap
    ranked = ret.rank(queries, k=3)
    for i, (rows, scores) in enumerate(ranked):
        assert rows.tolist() == want[i].tolist()
        np.testing.assert_allclose(scores, sims[i, want[i]], rtol=1e-4, atol=1e-5)
    assert ret.search(queries, k=3) == [[passages[j] for j in w] for w in want]
    assert [len(r) for r in ret.search(["x"], k=100)] == [len(passages)]  # k beyond the corpus: all of it


def test_e5_index_rows_are_prefixed_normalised_passages(e5_dataset):
    import faiss

    index = faiss.read_index(str(e5_dataset / "e5_Flat.index"))
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == len(PASSAGES + UNICODE)
    stored = index.reconstruct_n(0, index.ntotal)
    np.testing.assert_allclose(stored, numpy_e5(e5_dataset / "encoder", PASSAGES + UNICODE, "passage: "),
                               rtol=1e-4, atol=1e-5)
    assert not list(e5_dataset.glob(".*.tmp"))  # written through a temporary file


def test_e5_refuses_an_index_of_another_corpus_and_options_work(e5_dataset, tmp_path):
    import shutil

    d = write_dataset(tmp_path / "other", PASSAGES, {"kind": "e5", "model": "encoder", "index": "e5_Flat.index"})
    shutil.copytree(e5_dataset / "encoder", d / "encoder")
    shutil.copy(e5_dataset / "e5_Flat.index", d / "e5_Flat.index")
    with pytest.raises(ValueError, match="holds 8 vectors but .* has 5 passages"):
        load_retriever(d, device="cpu")
    import faiss

    if faiss.get_num_gpus() == 0:
        with pytest.raises(ValueError, match="faiss_gpu: this faiss build sees no GPU"):
            load_retriever(e5_dataset, device="cpu", faiss_gpu=True)
    assert load_retriever(e5_dataset, device="cpu", mmap=True).search(["river"], k=2) == \
        load_retriever(e5_dataset, device="cpu").search(["river"], k=2)
    (d / "e5_Flat.index").unlink()
    with pytest.raises(FileNotFoundError, match="no faiss index"):
        load_retriever(d, device="cpu")
