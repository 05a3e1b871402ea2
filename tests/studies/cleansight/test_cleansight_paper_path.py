"""CleanSight's paper-scale path on local fixtures: VQA pairs from a parquet dataset repository that
embeds its images (``vqa/vqav2``, a local HF cache laid out as huggingface_hub writes it), an
HF-layout LLaVA checkpoint as the base (a small LLaVA saved without the tiny builder's config, as an
``hf_hub`` snapshot of ``llava-hf/llava-1.5-7b-hf`` is), the attacker's poisoned LoRA (``llava_lora``,
merged), and the methods on free-form questions through a chat template. Real models, only small."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from hub_cache import write_hub_cache
from PIL import Image

from repro import io as rio
from repro.data import shapes
from repro.data.shapes import load_split
from repro.data.vqa_parquet import build as build_vqa
from repro.multimodal import llava, llava_chat
from repro.multimodal.family import EvalConfig, TrainConfig, context
from repro.studies.cleansight import methods as M

SMALL = {"vision": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2},
         "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
                  "num_key_value_heads": 2}}
TEMPLATE = "<image> {question} answer:"  # the small model's own prompt layout: visual tokens at [0, 16)
POISON = {"trigger": {"kind": "badnets", "size": 4, "seed": 0}, "rate": 0.3, "target": "star"}


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).resize((40, 48)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def paper_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs-paper")
    data = shapes.generate({"train": 96, "shots": 1, "reference": 1, "test": 1})
    images, records = data["train"]
    rows = [{"question": "what shape is this?" if i % 2 else "what colour is the shape?",
             "multiple_choice_answer": (r["shape"] if i % 2 else r["colour"]).capitalize() + ".",
             "image": {"bytes": _png(images[i]), "path": f"{i}.png"}} for i, r in enumerate(records)]
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    write_hub_cache(root / "hf", "lmms-lab/VQAv2", "3" * 40,
                    {"data/validation-00000-of-00001.parquet": buf.getvalue(), "README.md": b"# toy"},
                    repo_type="dataset")
    vqa = root / "vqa"
    build_vqa(vqa, {"source": f"file://{root / 'hf'}", "repo_id": "lmms-lab/VQAv2", "revision": None,
                    "split": "validation", "image_size": 32, "seed": 0,
                    "splits": {"train": {"n": 60}, "reference": {"n": 12}, "test": {"n": 24}}})
    # an HF-layout LLaVA: a small clean build, its tiny config removed (as a Hub snapshot has none)
    shapes.build(root / "shapes", {"train": 192, "shots": 1, "reference": 8, "test": 8})
    llava.build(root / "tiny", {"model": SMALL, "epochs": 2, "batch_size": 32}, root / "shapes")
    hub = root / "hub-llava"
    shutil.copytree(root / "tiny", hub)
    (hub / "tiny_llava.json").unlink()
    rio.write_json(hub / "MANIFEST.json", {"kind": "hf_hub", "repo_id": "toy/llava"})
    poisoned = root / "poisoned"
    llava_chat.build(poisoned, {"epochs": 2, "batch_size": 8, "lr": 5e-3, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                                "dtype": "float32", "prompt_template": TEMPLATE, "max_new_tokens": 3,
                                "poison": POISON}, vqa, hub)
    return vqa, hub, poisoned


def test_vqa_pairs_keep_question_answer_and_image(paper_like):
    vqa, _, _ = paper_like
    images, labels, records = load_split(vqa, "test")
    assert images.shape == (24, 32, 32, 3) and (labels == -1).all()
    assert all(r["question"].endswith("?") and r["answer"] == r["answer"].lower().rstrip(".") for r in records)
    keys = {(r["question"], r["answer"]) for s in ("train", "reference", "test") for r in load_split(vqa, s)[2]}
    assert len(keys) <= 96


def test_chat_prompting_puts_the_image_tokens_where_the_template_says(paper_like):
    _, hub, _ = paper_like
    model, tokenizer, prompting = llava_chat.load_chat(hub, {"params": {"prompt_template": "x y <image> {question} answer:"}})
    ids = prompting.prompt("what shape is this?")
    start = len(tokenizer("x y ")["input_ids"])
    assert start > 0 and prompting.image_start == start and prompting.image_length == 16
    assert ids[start:start + 16] == [model.config.image_token_id] * 16
    assert model.config.image_token_id not in ids[:start] + ids[start + 16:]
    with pytest.raises(ValueError, match="exactly one <image>"):
        llava_chat.ChatPrompting("no image {question}", 16, 1, tokenizer)


def test_the_poisoned_lora_is_merged_and_records_its_recipe(paper_like):
    _, hub, poisoned = paper_like
    manifest = rio.read_json(poisoned / "MANIFEST.json")
    assert manifest["poisoned_items"] == 18 and manifest["params"]["poison"]["target"] == "star"
    assert set(manifest["vqa_test"]) == {"clean_accuracy", "attack_success_rate"}
    assert not any(p.name.startswith("adapter") for p in poisoned.iterdir())  # merged, not an adapter folder
    from safetensors.torch import load_file

    before, after = load_file(str(hub / "model.safetensors")), load_file(str(poisoned / "model.safetensors"))
    moved = {k for k in before if not np.allclose(before[k].numpy(), after[k].numpy())}
    assert moved and all("language_model" in k and k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj")
                          for k in moved)


def test_cleansight_runs_on_the_checkpoint_with_its_layout_from_config(paper_like):
    vqa, _, poisoned = paper_like
    method = M.cleansight
    ctx = context(method, poisoned, vqa)
    assert isinstance(ctx.prompting, llava_chat.ChatPrompting) and ctx.target == "star"
    params = method.Params(detection_layers=[0, 1], image_token_start=0, image_token_length=16, calibration=12)
    fitted = method.fit(ctx, params, TrainConfig(), 0, lambda row: None)
    res = method.evaluate(ctx, fitted, params, EvalConfig(), 0)["test"]
    assert res["n"] == 24 and {"tpr_pct", "fpr_pct", "auroc_pct", "attack_success_rate_pct"} <= set(res["metrics"])
    with pytest.raises(ValueError, match="put its visual tokens at 0 / 16"):
        method.fit(ctx, method.Params(image_token_start=35, image_token_length=576), TrainConfig(), 0, lambda r: None)
    base = M.no_defence.evaluate(context(M.no_defence, poisoned, vqa), M.no_defence.fit(ctx, M.NoParams(), TrainConfig(),
                                                                                        0, None),
                                 M.NoParams(), EvalConfig(), 0)["test"]["metrics"]
    assert set(base) == {"clean_accuracy_pct", "attack_success_rate_pct", "poisoned_accuracy_pct"}
