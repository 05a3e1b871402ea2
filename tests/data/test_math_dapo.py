"""``math/dapo`` from a local Hugging Face cache laid out as huggingface_hub writes it (dataset
repositories): split files in parquet and JSON lines become the math env's splits, DAPO's boxed
suffix is stripped, the validation split is assembled, unpinned revisions resolve ``main`` and every
file is checked against the commit's tree listing."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from hub_cache import write_hub_cache

from repro.envs.math import read_problems
from repro.data.math_dapo import build

SHA_A, SHA_B = "a" * 40, "b" * 40


def _parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    return buf.getvalue()


@pytest.fixture()
def cache(tmp_path):
    c = tmp_path / "hf"
    train = [{"prompt": [{"role": "user", "content": f"What is {i}+1? Let's think step by step and output the "
                                                      "final answer within \\boxed{}."}],
              "reward_model": {"ground_truth": str(i + 1), "style": "rule"}} for i in range(4)]
    write_hub_cache(c, "aaabiao/dapo_filter", SHA_A, {"data/train-00000-of-00001.parquet": _parquet(train)},
                    repo_type="dataset")
    aime = "".join(json.dumps({"problem": f"AIME {i}", "answer": i}) + "\n" for i in range(3))
    write_hub_cache(c, "HuggingFaceH4/aime_2024", SHA_B, {"train.jsonl": aime.encode()}, repo_type="dataset")
    math500 = [{"problem": f"M{i}", "answer": f"\\frac{{{i}}}{{2}}"} for i in range(5)]
    write_hub_cache(c, "HuggingFaceH4/MATH-500", SHA_B, {"test.parquet": _parquet(math500),
                                                         "README.md": b"# MATH-500"}, repo_type="dataset")
    return c


def params(cache, **sets):
    base = {"train": {"repo_id": "aaabiao/dapo_filter", "revision": None, "split": "train",
                      "question": "prompt.0.content", "answer": "reward_model.ground_truth",
                      "strip_boxed_suffix": True},
            "aime24": {"repo_id": "HuggingFaceH4/aime_2024", "revision": SHA_B, "split": "train"},
            "math500": {"repo_id": "HuggingFaceH4/MATH-500", "revision": None, "split": "test"}}
    return {"source": f"file://{cache}", "sets": {**base, **sets}, "valid": {"math500": 2, "aime24": None}}


def test_sets_become_splits_with_a_validation_split(cache, tmp_path):
    out = tmp_path / "dapo"
    build(out, params(cache))
    train = read_problems(out, "train")
    assert [p["question"] for p in train] == [f"What is {i}+1?" for i in range(4)]
    assert [p["answer"] for p in train] == ["1", "2", "3", "4"] and train[0]["source"] == "train"
    assert [p["answer"] for p in read_problems(out, "math500")][:2] == ["\\frac{0}{2}", "\\frac{1}{2}"]
    valid = read_problems(out, "valid")
    assert [p["source"] for p in valid] == ["math500"] * 2 + ["aime24"] * 3
    assert len({p["id"] for p in valid}) == 5
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["sets"]["train"]["revision"] == SHA_A  # resolved from refs/main
    assert manifest["sets"]["math500"]["verified_against_hub_tree"]
    assert manifest["splits"] == {"train": 4, "aime24": 3, "math500": 5, "valid": 5}


def test_missing_split_and_bad_config_are_refused_and_leave_nothing(cache, tmp_path):
    out = tmp_path / "dapo"
    with pytest.raises(FileNotFoundError, match="no data file of split 'validation'"):
        build(out, params(cache, math500={"repo_id": "HuggingFaceH4/MATH-500", "revision": None,
                                          "split": "validation"}))
    assert not out.exists()
    with pytest.raises(ValueError, match="not a 40-hex"):
        build(out, params(cache, aime24={"repo_id": "HuggingFaceH4/aime_2024", "revision": "main"}))
    bad = params(cache)
    bad["valid"] = {"aime25": None}
    with pytest.raises(ValueError, match="aime25"):
        build(out, bad)
    assert not out.exists()
