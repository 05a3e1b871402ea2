"""``images/wds`` from a local Hugging Face cache laid out as huggingface_hub writes it: CLIP_benchmark
style labelled shards (``<split>/<i>.tar`` of ``<key>.webp|png|jpg`` + ``<key>.cls``, class names and
templates at the root) and CC3M-style captioned shards (``<key>.jpg`` + ``<key>.txt``) become the
vision-language studies' split layout, with CLIP's resize-and-centre-crop, seeded disjoint draws and
only the shards a split needs fetched."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from wds_fixture import CAPTIONED, CLASSES, LABELLED, SHA_C, SHA_L, write_class_texts, write_wds_cache

from repro.data.shapes import load_split
from repro.data.wds_images import build, clip_preprocess



@pytest.fixture()
def cache(tmp_path):
    return write_wds_cache(tmp_path / "hf")


def params(cache, **splits):
    return {"source": f"file://{cache}", "image_size": 16, "seed": 0,
            "sources": {"bench": {"repo_id": LABELLED, "revision": None, "kind": "labelled"},
                        "pairs": {"repo_id": CAPTIONED, "revision": SHA_C, "kind": "captioned",
                                  "shards": "cc3m-train-*.tar"}},
            "splits": splits or {"reference": {"source": "bench", "from": "test", "n": 5},
                                 "test": {"source": "bench", "from": "test"},
                                 "fewshot": {"source": "bench", "from": "train", "per_class": 2},
                                 "train": {"source": "pairs", "n": 7}}}


def test_splits_are_drawn_disjoint_and_laid_out_as_the_studies_read_them(cache, tmp_path):
    out = tmp_path / "bench"
    build(out, params(cache))
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["classes"] == CLASSES and manifest["templates"] == ["a photo of a {c}.", "a drawing of a {c}."]
    assert manifest["splits"] == {"reference": 5, "test": 19, "fewshot": 6, "train": 7}
    assert manifest["sources"]["bench"]["revision"] == SHA_L  # null resolved to main and recorded
    assert all(s["verified_against_hub_tree"] for s in manifest["sources"].values())
    ref_x, ref_y, ref_r = load_split(out, "reference")
    test_x, test_y, test_r = load_split(out, "test")
    assert isinstance(test_x, np.memmap) and test_x.shape == (19, 16, 16, 3) and test_x.dtype == np.uint8
    keys = [r["key"] for r in ref_r + test_r]
    assert len(set(keys)) == 24  # every test image once, in one of the two
    for y, r in zip(np.r_[ref_y, test_y], ref_r + test_r):
        assert int(r["key"][1:]) % 3 == y and r["class"] == CLASSES[y] and r["caption"] == f"a photo of a {CLASSES[y]}."
    few_x, few_y, _ = load_split(out, "fewshot")
    assert sorted(np.bincount(few_y).tolist()) == [2, 2, 2]
    pairs_x, pairs_y, pairs_r = load_split(out, "train")
    assert (pairs_y == -1).all() and all(r["caption"].startswith("caption ") for r in pairs_r)
    assert pairs_x.shape == (7, 16, 16, 3) and abs(int(pairs_x[..., 0].mean()) - 200) <= 3  # jpeg's red


def test_the_draw_depends_on_the_seed_only(cache, tmp_path):
    build(tmp_path / "a", params(cache))
    build(tmp_path / "b", params(cache))
    build(tmp_path / "c", {**params(cache), "seed": 1})
    keys = {k: [r["key"] for r in load_split(tmp_path / k, "reference")[2]] for k in "abc"}
    assert keys["a"] == keys["b"] != keys["c"]


def test_only_the_needed_shards_are_fetched(cache, tmp_path):
    out = tmp_path / "ref-only"
    build(out, params(cache, reference={"source": "bench", "from": "test", "n": 3}))
    manifest = json.loads((out / "MANIFEST.json").read_text())
    # classnames, templates, test/nshards.txt and its two shards; not train/, not the pairs repository's
    assert manifest["sources"]["bench"]["files"] == 5 and manifest["sources"]["pairs"]["files"] == 2


def test_clip_preprocess_resizes_the_shorter_side_and_crops_the_centre():
    img = Image.new("RGB", (64, 32), (255, 0, 0))
    img.paste((0, 255, 0), (16, 0, 48, 32))   # the centre 32 x 32 is green, the sides red
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = clip_preprocess(buf.getvalue(), 16)
    assert out.shape == (16, 16, 3)
    assert (out[:, 1:-1, 1] > 240).all() and (out[:, 1:-1, 0] < 15).all()


@pytest.mark.parametrize("splits, error, match", [
    ({"x": {"source": "bench", "from": "test", "n": 99}}, ValueError, r"splits.x.n = 99, but only 24 images"),
    ({"x": {"source": "nope", "n": 1}}, ValueError, r"splits.x.source 'nope' is not in sources"),
    ({"x": {"source": "bench", "from": "valid", "n": 1}}, FileNotFoundError, r"no shard matches 'valid/\*.tar'"),
    ({"x": {"source": "pairs", "per_class": 1}}, ValueError, r"per_class needs a labelled source"),
])
def test_bad_splits_say_what_is_wrong(cache, tmp_path, splits, error, match):
    out = tmp_path / "bad"
    with pytest.raises(error, match=match):
        build(out, params(cache, **splits))
    assert not out.exists()


def test_class_texts_are_parsed_from_the_official_layout(cache, tmp_path):
    texts = write_class_texts(tmp_path / "res")
    out = tmp_path / "bench"
    build(out, {**params(cache, reference={"source": "bench", "from": "test", "n": 3}), "class_texts": texts})
    got = json.loads((out / "class_texts.json").read_text())
    assert got["benign"]["banana"] == ["a banana is a fruit.", "a banana grows on a tree.", "the banana is sweet."]
    assert got["unrelated"] == {"apple": "Stars twinkle at night.", "banana": "The river flows.", "cherry": "Birds sing."}
    short = tmp_path / "short.txt"
    short.write_text("one sentence.\n")
    with pytest.raises(ValueError, match="1 sentences for 3 classes"):
        build(tmp_path / "bad", {**params(cache, reference={"source": "bench", "from": "test", "n": 3}),
                                 "class_texts": {**texts, "malignant": {"url": short.as_uri()}}})
