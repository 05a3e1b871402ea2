"""Class texts written by an LLM (``repro.data.describe``): the answer parsing, the rounds that fill
each class, and the images dataset written with a real (tiny, untrained) Qwen2 as its generator."""

from __future__ import annotations

import json

import pytest
from wds_fixture import CLASSES, LABELLED, write_wds_cache

from repro.data import describe
from repro.data.wds_images import build
from repro.models.tiny import build_tiny_qwen2


def test_answers_are_split_into_sentences_without_numbering_bullets_quotes_or_headers():
    answer = ('Here are three descriptions:\n1. A red fruit.\n2) "Round and shiny."\n\n- It has a stem.\n'
              '\u2022 Grows on trees\n')
    assert describe.parse_lines(answer) == ["A red fruit.", "Round and shiny.", "It has a stem.", "Grows on trees"]
    assert describe.parse_lines("") == []


def test_each_class_is_asked_again_until_it_has_its_sentences():
    """Round r answers only the classes still short; duplicates do not count."""
    asked = []
    answers = {0: {"a": "1. x\n2. y", "b": "1. z"}, 1: {"b": "1. z\n2. w"}}

    def answer(prompts, seed):
        asked.append((seed, prompts))
        return [answers[seed][p] for p in prompts]

    got = describe.collect(answer, ["a", "b"], ["a", "b"], 2, describe.check({"max_samples": 3}), "descriptions")
    assert got == {"a": ["x", "y"], "b": ["z", "w"]} and asked == [(0, ["a", "b"]), (1, ["b"])]
    with pytest.raises(ValueError, match=r"1 classes have fewer than 3 descriptions after 2 answers each, e\.g\. \['b'\]"):
        describe.collect(lambda prompts, seed: ["1. p\n2. q\n3. r" if p == "a" else "" for p in prompts],
                         ["a", "b"], ["a", "b"], 3, describe.check({"max_samples": 2}), "descriptions")


@pytest.mark.parametrize("spec, match", [({"descripton": 7}, "unknown key"), ({"backend": "sglang"}, "backend"),
                                         ({"max_samples": 0}, "max_samples")])
def test_bad_generate_settings_say_what_is_allowed(spec, match):
    with pytest.raises(ValueError, match=match):
        describe.check(spec)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    out = tmp_path_factory.mktemp("llm") / "tiny-qwen2"
    build_tiny_qwen2(out, {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                           "num_key_value_heads": 1, "seed": 0},
                     ["Describe what a photo of a apple shows.", "A banana is yellow.\n1. A cherry is red."])
    return out


def test_an_images_dataset_gets_its_class_texts_from_its_generator(tmp_path, tiny_llm):
    """The untrained model writes noise, but through the real path: chat template, sampling,
    parsing, rounds; the same seed writes the same texts."""
    cache = write_wds_cache(tmp_path / "hf")
    gen = {"descriptions": 2, "max_new_tokens": 8, "max_samples": 8, "temperature": 1.0, "top_p": 1.0}
    params = {"source": f"file://{cache}", "image_size": 16, "seed": 0,
              "sources": {"bench": {"repo_id": LABELLED, "revision": None, "kind": "labelled"}},
              "splits": {"test": {"source": "bench", "from": "test"}}, "class_texts": {"generate": gen}}
    build(tmp_path / "a", params, generator_dir=tiny_llm)
    texts = json.loads((tmp_path / "a" / "class_texts.json").read_text())
    assert set(texts["benign"]) == set(CLASSES) and all(len(set(v)) == 2 for v in texts["benign"].values())
    assert all(isinstance(s, str) and s for s in texts["unrelated"].values())
    assert texts["generator"]["backend"] == "transformers" and texts["generator"]["model"]["name"] == "tiny-qwen2"
    assert texts["generator"]["params"]["descriptions"] == 2
    build(tmp_path / "b", params, generator_dir=tiny_llm)
    assert (tmp_path / "b" / "class_texts.json").read_text() == (tmp_path / "a" / "class_texts.json").read_text()
    with pytest.raises(ValueError, match="this dataset has no generator"):
        build(tmp_path / "c", params)
    assert not (tmp_path / "c").exists()
