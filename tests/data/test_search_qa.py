"""``search/nq_hotpotqa`` end to end from a local Hugging Face cache laid out as huggingface_hub
writes it: tiny Search-R1 parquet files, a gzipped tar holding the corpus (wiki-18's real packing),
a tiny BERT as the "E5" model and an index split into two parts. The folder it writes serves the
search env's contract (splits, corpus, retriever.json) and its retriever answers queries."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hub_cache import write_hub_cache

from repro.data.search_qa import build
from repro.envs.search.retrieval import build_e5_index, load_retriever

SHA_QA, SHA_CORPUS, SHA_INDEX, SHA_E5, SHA_OLD = "1" * 40, "2" * 40, "3" * 40, "4" * 40, "5" * 40
MEMBER = "data00/jiajie_jin/flashrag_indexes/wiki_dpr_100w/wiki_dump.jsonl"  # inside wiki-18.jsonl.gz
PASSAGES = ['"Paris"\nParis is the capital of France', '"Seine"\nthe river Seine flows through Paris',
            '"Lyon"\nLyon is a city in France', '"Zürich"\nZürich is a city', '"Wine"\nwine and cheese']
WORDS = "paris is the capital of france river seine flows through lyon a city in zurich wine and cheese".split()


def tiny_bert(folder: Path) -> dict[str, bytes]:
    """A two-layer BERT (hidden 32) with a WordPiece vocabulary written here: the files of its repo."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", '"'] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)  # positional: vocab_file (v4) / vocab (v5)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    return buf.getvalue()


def qa_row(q: str, source: str, target: list[str] | None, golden: list[str]) -> dict:
    """A row as Search-R1's parquet files have it (``reward_model.ground_truth.target`` may be absent)."""
    truth = {"target": target} if target is not None else {}
    return {"id": f"x-{q}", "question": f" {q} ", "golden_answers": golden, "data_source": source,
            "reward_model": {"ground_truth": truth or None, "style": "rule"}}


def corpus_gz(passages: list[str], tar: bool = True) -> bytes:
    body = "".join(json.dumps({"id": str(i), "contents": p}, ensure_ascii=False) + "\n"
                   for i, p in enumerate(passages)).encode()
    if not tar:
        return gzip.compress(body)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:  # a gzipped tar, as the real wiki-18.jsonl.gz
        info = tarfile.TarInfo(MEMBER)
        info.size = len(body)
        t.addfile(info, io.BytesIO(body))
    return buf.getvalue()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(cache, the index bytes): every repository of the real config, tiny."""
    base = tmp_path_factory.mktemp("search_qa")
    cache = base / "hf"
    train = [qa_row(f"t{i}", "nq" if i % 2 else "hotpotqa", [f"a{i}"], ["ignored"]) for i in range(5)]
    # interleaved sources: the per-source splits and valid follow first appearance (nq, triviaqa, bamboogle)
    test = [qa_row("n0", "nq", ["N0"], []), qa_row("t0", "triviaqa", None, ["T0", "T0 alias"]),
            qa_row("n1", "nq", ["N1", "N1b"], []), qa_row("b0", "bamboogle", ["B0"], []),
            qa_row("t1", "triviaqa", None, ["T1"]), qa_row("n2", "nq", ["N2"], [])]
    write_hub_cache(cache, "PeterJinGo/nq_hotpotqa_train", SHA_QA,
                    {"train.parquet": parquet(train), "test.parquet": parquet(test), "README.md": b"# qa"},
                    repo_type="dataset")
    # an older commit holding four passages (written first: refs/main is the last one written)
    write_hub_cache(cache, "PeterJinGo/wiki-18-corpus", SHA_OLD, {"wiki-18.jsonl.gz": corpus_gz(PASSAGES[:4])},
                    repo_type="dataset")
    write_hub_cache(cache, "PeterJinGo/wiki-18-corpus", SHA_CORPUS,
                    {"wiki-18.jsonl.gz": corpus_gz(PASSAGES), "plain.jsonl.gz": corpus_gz(PASSAGES, tar=False)},
                    repo_type="dataset")
    model = tiny_bert(base / "bert")
    write_hub_cache(cache, "intfloat/e5-base-v2", SHA_E5, model)
    ref = base / "ref"  # the reference index, built as Search-R1 built theirs, then split in two
    ref.mkdir()
    (ref / "corpus.jsonl").write_text("".join(json.dumps({"id": str(i), "contents": p}) + "\n"
                                              for i, p in enumerate(PASSAGES)))
    data = build_e5_index(ref, base / "bert", batch_size=2).read_bytes()
    write_hub_cache(cache, "PeterJinGo/wiki-18-e5-index", SHA_INDEX,
                    {"part_aa": data[:1000], "part_ab": data[1000:]}, repo_type="dataset")
    return cache, data


def params(cache: Path, **over) -> dict:
    base = {"source": f"file://{cache}",
            "qa": {"repo_id": "PeterJinGo/nq_hotpotqa_train", "revision": None},
            "valid_per_source": 2,
            "corpus": {"repo_id": "PeterJinGo/wiki-18-corpus", "revision": SHA_CORPUS, "file": "wiki-18.jsonl.gz",
                       "member": MEMBER},
            "encoder": {"repo_id": "intfloat/e5-base-v2", "revision": SHA_E5},
            "index": {"prebuilt": {"repo_id": "PeterJinGo/wiki-18-e5-index", "revision": None,
                                   "parts": ["part_aa", "part_ab"]}},
            "retriever": {"query_prefix": "query: ", "pooling": "mean", "max_length": 256}}
    return {**base, **over}


def read(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def test_questions_corpus_and_prebuilt_index_make_one_searchable_folder(hub, tmp_path):
    cache, index = hub
    out = tmp_path / "search"
    build(out, params(cache))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["train.jsonl", "nq.jsonl", "triviaqa.jsonl", "bamboogle.jsonl", "valid.jsonl", "corpus.jsonl",
         "corpus.offsets.npy", "e5_Flat.index", "retriever.json", "encoder", "MANIFEST.json"])
    train = read(out, "train")
    assert [r["question"] for r in train] == [f"t{i}" for i in range(5)]
    assert train[1] == {"id": "train-000001", "question": "t1", "answers": ["a1"], "source": "nq"}
    assert [r["answers"] for r in read(out, "nq")] == [["N0"], ["N1", "N1b"], ["N2"]]
    assert [r["answers"] for r in read(out, "triviaqa")] == [["T0", "T0 alias"], ["T1"]]  # golden_answers fallback
    valid = read(out, "valid")
    assert [r["id"] for r in valid] == ["nq-00000", "nq-00001", "triviaqa-00000", "triviaqa-00001", "bamboogle-00000"]
    assert valid[0] == read(out, "nq")[0]
    assert [json.loads(line)["contents"] for line in (out / "corpus.jsonl").read_text().splitlines()] == PASSAGES
    assert (out / "e5_Flat.index").read_bytes() == index  # part_aa + part_ab, in order
    assert json.loads((out / "retriever.json").read_text()) == {
        "kind": "e5", "model": "encoder", "index": "e5_Flat.index", "query_prefix": "query: ", "pooling": "mean",
        "max_length": 256}
    m = json.loads((out / "MANIFEST.json").read_text())
    assert m["qa"]["revision"] == SHA_QA and m["qa"]["verified_against_hub_tree"]  # null resolved from refs/main
    assert sorted(m["qa"]["files"]) == ["test.parquet", "train.parquet"]
    assert m["corpus"]["member"] == MEMBER and m["corpus"]["passages"] == 5
    assert m["index"]["revision"] == SHA_INDEX and sorted(m["index"]["files"]) == ["part_aa", "part_ab"]
    assert m["index"]["ntotal"] == 5 and m["index"]["dim"] == m["encoder"]["dim"] == 32
    assert m["encoder"]["revision"] == SHA_E5 and "model.safetensors" in m["encoder"]["files"]
    assert m["splits"] == {"train": 5, "nq": 3, "triviaqa": 2, "bamboogle": 1, "valid": 5}
    assert {"corpus.jsonl", "e5_Flat.index", "encoder/config.json", "valid.jsonl"} <= set(m["files"])
    assert not (out / ".fetch").exists()
    got = load_retriever(out, device="cpu").search(["capital of France", "cheese"], k=2)
    assert [len(r) for r in got] == [2, 2] and all(p in PASSAGES for r in got for p in r)


def test_index_built_here_equals_the_prebuilt_one_and_a_plain_gzip_corpus_is_read(hub, tmp_path):
    cache, index = hub
    out = tmp_path / "built"
    build(out, params(cache, valid_per_source=1, index={"build": {"batch_size": 3, "device": "cpu"}},
                      corpus={"repo_id": "PeterJinGo/wiki-18-corpus", "revision": None, "file": "plain.jsonl.gz"}))
    import faiss

    mine, ref = faiss.read_index(str(out / "e5_Flat.index")), faiss.deserialize_index(np.frombuffer(index, np.uint8))
    np.testing.assert_allclose(mine.reconstruct_n(0, 5), ref.reconstruct_n(0, 5), rtol=1e-5, atol=1e-6)
    m = json.loads((out / "MANIFEST.json").read_text())
    assert m["index"]["kind"] == "build" and m["index"]["batch_size"] == 3 and m["corpus"]["member"] == "plain.jsonl.gz"
    assert len(read(out, "valid")) == 3


@pytest.mark.parametrize("change, error", [
    ({"qa": {"repo_id": "PeterJinGo/nq_hotpotqa_train"}}, r"params.qa = .*missing key\(s\) \['revision'\]"),
    ({"qa": {"repo_id": "x/y", "revision": None, "split": "t"}}, r"unknown key\(s\) \['split'\]; allowed"),
    ({"qa": {"repo_id": "PeterJinGo/nq_hotpotqa_train", "revision": "main"}}, r"params.qa.revision = 'main': null \(resolve main.* or a 40-hex"),
    ({"encoder": {"repo_id": "intfloat/e5-base-v2", "revision": None}}, r"params.encoder.revision = None: a 40-hex"),
    ({"index": {"prebuilt": {"repo_id": "a/b", "revision": None, "parts": []}, "build": {}}},
     r"params.index = .*exactly one of \['build', 'prebuilt'\]"),
    ({"index": {"prebuilt": {"repo_id": "a/b", "revision": None, "parts": []}}}, "index.prebuilt.parts = \\[\\]"),
    ({"index": {"build": {"batch_size": 0}}}, "index.build.batch_size = 0: a positive integer"),
    ({"valid_per_source": -1}, "valid_per_source = -1: a non-negative integer"),
    ({"retriever": {"pooling": "max"}}, r"retriever.pooling = 'max': one of \['cls', 'mean'\]"),
    ({"splits": {}}, r"unknown params key\(s\) \['splits'\]"),
    ({"corpus": {"repo_id": "PeterJinGo/wiki-18-corpus", "revision": None, "file": "wiki-18.jsonl.gz",
                 "member": "wiki.jsonl"}}, r"params.corpus.member = 'wiki.jsonl': a file of the archive .*" + MEMBER),
    ({"corpus": {"repo_id": "PeterJinGo/wiki-18-corpus", "revision": None, "file": "plain.jsonl.gz",
                 "member": MEMBER}}, "corpus.member = .*not a tar archive"),
    ({"corpus": {"repo_id": "PeterJinGo/wiki-18-corpus", "revision": None, "file": "wiki.gz"}},
     r"no file \['wiki.gz'\] in the repository"),
])
def test_bad_params_are_refused_with_key_value_and_allowed_and_leave_nothing(hub, tmp_path, change, error):
    out = tmp_path / "search"
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        build(out, params(hub[0], **change))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_index_of_another_corpus_is_refused(hub, tmp_path):
    with pytest.raises(ValueError, match="5 vectors of dimension 32, but the corpus has 4 passages"):
        build(tmp_path / "s", params(hub[0], corpus={"repo_id": "PeterJinGo/wiki-18-corpus", "revision": SHA_OLD,
                                                     "file": "wiki-18.jsonl.gz"}))
    assert not list(tmp_path.iterdir())
