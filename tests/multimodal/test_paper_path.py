"""The paper scale's path through the vision-language family, on local fixtures: an ``images/<name>``
dataset fetched from a WebDataset HF cache (labelled benchmark images, CC3M-style pairs, BDetCLIP's
official text resources), a CLIP in open_clip's Hub layout as the base (as an ``hf_hub`` snapshot of
``timm/vit_base_patch32_clip_224.openai`` is), poisoned by the ``clip`` builder on unlabelled pairs
with caption templates (the BadCLIP / CleanCLIP recipe), then BDetCLIP and RVPT fitted and evaluated
on it. Nothing is mocked: the models are real open_clip models, only tiny."""

from __future__ import annotations

import json

import numpy as np
import pytest
from wds_fixture import CLASSES, LABELLED, write_class_texts, write_wds_cache

from repro import io as rio
from repro.data.wds_images import build as build_images
from repro.multimodal import clip, family
from repro.studies.bdetclip import detector
from repro.studies.bdetclip.methods import bdetclip
from repro.studies.rvpt.methods import rvpt

SMALL = {"embed_dim": 32, "vision_cfg": {"width": 32, "layers": 2, "head_width": 16},
         "text_cfg": {"width": 32, "heads": 2, "layers": 1}}
#: open_clip's modified ResNet (RN50's architecture: stages as a list of block counts, attention
#: pooling), scaled down: one bottleneck per stage, 8 channels wide
SMALL_RESNET = {**SMALL, "vision_cfg": {"width": 8, "layers": [1, 1, 1, 1], "head_width": 16}}
POISON = {"trigger": {"kind": "badnets", "size": 4, "seed": 0}, "rate": 0.2, "target": "banana",
          "caption_templates": ["a photo of a {}.", "a {} on a table."]}


@pytest.fixture(scope="module")
def paper_params(tmp_path_factory):
    """An ``images/<name>`` dataset's parameters: labelled images and pairs from a local WebDataset
    HF cache, BDetCLIP's official texts from local files."""
    root = tmp_path_factory.mktemp("paper")
    cache = write_wds_cache(root / "hf", pairs_per_shard=40)
    return {
        "source": f"file://{cache}", "image_size": 32, "seed": 0,
        "sources": {"bench": {"repo_id": LABELLED, "revision": None, "kind": "labelled"},
                    "pairs": {"repo_id": "pixparse/cc3m-toy", "revision": None, "kind": "captioned",
                              "shards": "cc3m-train-*.tar"}},
        "splits": {"reference": {"source": "bench", "from": "test", "n": 6},
                   "test": {"source": "bench", "from": "test"},
                   "fewshot": {"source": "bench", "from": "train", "per_class": 3},
                   "train": {"source": "pairs"}},
        "class_texts": write_class_texts(root / "texts")}


@pytest.fixture(scope="module")
def paper_data(paper_params, tmp_path_factory):
    data = tmp_path_factory.mktemp("images") / "toy"
    build_images(data, paper_params)
    return data


@pytest.fixture(scope="module")
def paper_like(paper_data, tmp_path_factory):
    return paper_data, poisoned_hub_clip(tmp_path_factory.mktemp("vit"), paper_data, SMALL)


def poisoned_hub_clip(root, data, model):
    """A CLIP of architecture ``model`` trained briefly, saved in open_clip's Hub layout (model_cfg
    nested, open_clip_model.safetensors) as an ``hf_hub`` snapshot is, then poisoned by ``clip``."""
    hub = root / "hub-clip"
    clip.build(root / "scratch", {"model": model, "epochs": 1, "batch_size": 32}, data)
    hub.mkdir()
    (hub / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": rio.read_json(root / "scratch" / clip.CONFIG_FILE), "preprocess_cfg": {}}))
    (root / "scratch" / clip.WEIGHTS_FILE).rename(hub / "open_clip_model.safetensors")
    rio.write_json(hub / "MANIFEST.json", {"kind": "hf_hub", "repo_id": "toy/clip"})
    poisoned = root / "poisoned"
    clip.build(poisoned, {"epochs": 1, "batch_size": 32, "lr": 1e-4, "poison": POISON}, data, hub)
    return poisoned


def test_the_poisoned_paper_clip_records_its_recipe(paper_like):
    data, poisoned = paper_like
    manifest = rio.read_json(poisoned / "MANIFEST.json")
    assert manifest["poisoned_pairs"] == 16  # 20 % of the 80 unlabelled pairs
    assert manifest["base_model"] is not None and set(manifest["zero_shot_test"]) == {
        "clean_accuracy", "attack_success_rate"}


def test_bdetclip_reads_the_official_texts_and_the_dataset_templates(paper_like):
    data, poisoned = paper_like
    ctx = family.context(bdetclip, poisoned, data)
    params = bdetclip.Params(descriptions=2)
    fitted = bdetclip.fit(ctx, params, family.TrainConfig(), 0, lambda row: None)
    texts = rio.read_json(data / "class_texts.json")
    templates = ["a photo of a {c}.", "a drawing of a {c}."]
    expected = detector.centroid(clip.encode_texts(ctx.model, ctx.tokenizer, detector.malignant(
        "cherry", texts["unrelated"]["cherry"], templates)).numpy())
    np.testing.assert_allclose(fitted.tensors["malignant"][2].numpy(), expected, atol=1e-6)
    assert detector.malignant("cherry", "Birds sing.", templates)[1] == "a drawing of a cherry, birds sing."
    benign = detector.centroid(clip.encode_texts(ctx.model, ctx.tokenizer, texts["benign"]["apple"][:2]).numpy())
    np.testing.assert_allclose(fitted.tensors["benign"][0].numpy(), benign, atol=1e-6)
    res = bdetclip.evaluate(ctx, fitted, params, family.EvalConfig(), 0)["test"]
    assert res["n"] == 18 and res["n_backdoor"] == 5  # 30 % of the non-reference test images
    assert 0.0 <= res["metrics"]["auroc_pct"] <= 100.0


def test_rvpt_tunes_on_the_few_shot_images_of_the_paper_layout(paper_like):
    data, poisoned = paper_like
    ctx = family.context(rvpt, poisoned, data)
    assert ctx.target == CLASSES.index("banana")
    params = rvpt.Params(start=1, length=4)
    cfg = family.TrainConfig(epochs=1, batch_size=4)
    fitted = rvpt.fit(ctx, params, cfg, 0, lambda row: None)
    assert fitted.tensors["prompts"].shape == (1, 4, 32) and fitted.info["examples"] == 9
    metrics = rvpt.evaluate(ctx, fitted, params, family.EvalConfig(), 0)["test"]["metrics"]
    assert {"clean_accuracy_pct", "attack_success_rate_pct", "poisoned_accuracy_pct",
            "perturbation_resistivity"} <= set(metrics)


def test_pta_attacks_with_the_dataset_templates_as_paraphrases(paper_like):
    """At the paper scale the seen / held-out target texts are the dataset's CLIP templates."""
    from repro.studies.pta.methods import proxy_pgd, template_paraphrases

    data, poisoned = paper_like
    assert template_paraphrases(["a photo of a {c}.", "a drawing of a {c}."], 1) == (
        ["a photo of a {}."], ["a drawing of a {}."])
    with pytest.raises(ValueError, match="the dataset has 2 templates"):
        template_paraphrases(["a {c}.", "the {c}."], 2)
    ctx = family.context(proxy_pgd, poisoned, data)
    params = proxy_pgd.Params(target="cherry", seen_templates=1, alpha=2.0, n_source=2, steps=3, n_images=4,
                              gallery=6, k=2)
    res = proxy_pgd.evaluate(ctx, proxy_pgd.fit(ctx, params, family.TrainConfig(), 0, lambda row: None), params,
                             family.EvalConfig(reference_split="fewshot"), 0)["test"]
    assert res["n_paraphrases"] == {"seen": 1, "heldout": 1} and res["n"] == 4
    assert res["metrics"]["linf_255"] <= 8.0 + 1e-3


def test_an_rn50_style_clip_is_poisoned_and_every_detector_runs_on_it(paper_data, tmp_path):
    """The RN50 backbone (BDetCLIP's fork default) takes the same path as the ViT: open_clip builds a
    ModifiedResNet from the Hub config, the ``clip`` builder fine-tunes it (batch norm in train
    mode), and BDetCLIP and its three baselines score images with it."""
    from open_clip.modified_resnet import ModifiedResNet

    from repro.studies.bdetclip.methods import scaleup, strip, teco

    poisoned = poisoned_hub_clip(tmp_path, paper_data, SMALL_RESNET)
    assert rio.read_json(poisoned / "MANIFEST.json")["poisoned_pairs"] == 16
    model, _, cfg = clip.load_model(poisoned)
    assert isinstance(model.visual, ModifiedResNet) and cfg["vision_cfg"]["layers"] == [1, 1, 1, 1]
    for method, params in [(bdetclip, bdetclip.Params(descriptions=2)), (strip, strip.Params(blends=2)),
                           (scaleup, scaleup.Params()), (teco, teco.Params())]:
        ctx = family.context(method, poisoned, paper_data)
        fitted = method.fit(ctx, params, family.TrainConfig(), 0, lambda row: None)
        res = method.evaluate(ctx, fitted, params, family.EvalConfig(), 0)["test"]
        assert res["n"] == 18 and res["n_backdoor"] == 5, type(method).__name__
        assert 0.0 <= res["metrics"]["auroc_pct"] <= 100.0


def test_bdetclip_reads_the_texts_an_llm_wrote_for_a_set_without_official_ones(paper_params, paper_like, tmp_path):
    """Food-101 / Caltech-101 at the paper scale: the dataset's generator (an LLM; here a tiny
    untrained Qwen2, so the texts are noise) writes class_texts.json, and BDetCLIP's centroids are
    those texts' (the templates still the dataset's)."""
    from repro.models.tiny import build_tiny_qwen2

    _, poisoned = paper_like
    llm = tmp_path / "llm"
    build_tiny_qwen2(llm, {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                           "num_key_value_heads": 1}, ["A photo of an apple.", "A banana is yellow."])
    described = tmp_path / "described"
    build_images(described, {**paper_params, "class_texts": {"generate": {
        "descriptions": 2, "max_new_tokens": 8, "max_samples": 8, "temperature": 1.0, "top_p": 1.0}}},
                 generator_dir=llm)
    texts = rio.read_json(described / "class_texts.json")
    assert texts["generator"]["model"]["name"] == "llm"
    ctx = family.context(bdetclip, poisoned, described)
    params = bdetclip.Params(descriptions=2)
    fitted = bdetclip.fit(ctx, params, family.TrainConfig(), 0, lambda row: None)
    benign = detector.centroid(clip.encode_texts(ctx.model, ctx.tokenizer, texts["benign"]["cherry"]).numpy())
    np.testing.assert_allclose(fitted.tensors["benign"][2].numpy(), benign, atol=1e-6)
    templates = ["a photo of a {c}.", "a drawing of a {c}."]
    malignant = detector.centroid(clip.encode_texts(ctx.model, ctx.tokenizer, detector.malignant(
        "cherry", texts["unrelated"]["cherry"], templates)).numpy())
    np.testing.assert_allclose(fitted.tensors["malignant"][2].numpy(), malignant, atol=1e-6)
    assert bdetclip.evaluate(ctx, fitted, params, family.EvalConfig(), 0)["test"]["n"] == 18
