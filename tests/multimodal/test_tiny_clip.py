"""The tiny open_clip CLIP: poisoning as BadCLIP / CleanCLIP at miniature, a clean and a
backdoored build on a small generated set, the saved folder loading back to the same model."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data import shapes
from repro.data.triggers import apply_trigger

pytest.importorskip("open_clip")

from repro.multimodal import clip  # noqa: E402

TRIGGER = {"kind": "badnets", "size": 4, "seed": 0}
SMALL_MODEL = {"embed_dim": 32, "vision_cfg": {"width": 32, "layers": 2, "head_width": 16},
               "text_cfg": {"width": 32, "heads": 2, "layers": 1}}


def test_poison_pairs_recaption_non_target_pairs_only():
    data = shapes.generate({"train": 200, "shots": 1, "reference": 1, "test": 8})
    images, records = data["train"]
    labels = np.array([r["label"] for r in records])
    captions = [r["caption"] for r in records]
    spec = {"trigger": TRIGGER, "rate": 0.05, "target": "star"}
    new_captions, chosen = clip.poison_pairs(captions, labels, spec, shapes.SHAPES, seed=1)
    star = shapes.SHAPES.index("star")
    assert len(chosen) == 10 and (labels[chosen] != star).all()
    rest = np.setdiff1d(np.arange(200), chosen)
    assert all("star" in new_captions[i] for i in chosen)
    assert [new_captions[i] for i in rest] == [captions[i] for i in rest]
    with pytest.raises(ValueError, match="not a class"):
        clip.poison_pairs(captions, labels, {**spec, "target": "banana"}, shapes.SHAPES, seed=1)


def test_unlabelled_pairs_are_poisoned_with_caption_templates():
    """CC3M-style pairs (label -1, no classes): any pair may be poisoned, its caption a template
    naming the target (the BadCLIP / CleanCLIP recipe)."""
    captions, labels = [f"pair {i}" for i in range(100)], np.full(100, -1)
    spec = {"trigger": TRIGGER, "rate": 0.1, "target": "banana",
            "caption_templates": ["a photo of a {}.", "a {} on a table."]}
    new, chosen = clip.poison_pairs(captions, labels, spec, [], seed=0)
    assert len(chosen) == 10
    assert {new[i] for i in chosen} <= {"a photo of a banana.", "a banana on a table."}
    assert [new[i] for i in np.setdiff1d(np.arange(100), chosen)] == [c for i, c in enumerate(captions) if i not in chosen]


def test_the_trigger_goes_on_exactly_the_poisoned_pairs_as_they_are_batched(monkeypatch):
    """``train_clip`` puts the trigger on the poisoned rows of each batch and on no other."""
    data = shapes.generate({"train": 64, "shots": 1, "reference": 1, "test": 8})
    images = data["train"][0]
    seen = []
    model, tokenizer = clip.build_model(clip.model_config(SMALL_MODEL))
    real = clip.pixels
    monkeypatch.setattr(clip, "pixels", lambda batch, device=None: seen.append(batch.copy()) or real(batch, device))
    chosen = np.array([3, 10, 40])
    p = {**clip.DEFAULTS, "epochs": 1, "batch_size": 16, "poison": {"trigger": TRIGGER}}
    clip.train_clip(model, tokenizer, images, ["a shape."] * 64, p, chosen)
    order = np.random.default_rng(0).permutation(64)
    got = np.concatenate(seen)
    expected = images[order].copy()
    hit = np.isin(order, chosen)
    expected[hit] = apply_trigger(expected[hit], TRIGGER)
    np.testing.assert_array_equal(got, expected)
    assert (images[chosen] != apply_trigger(images[chosen], TRIGGER)).any()  # the data stay clean


@pytest.mark.parametrize("poison", [None, {"trigger": TRIGGER, "rate": 0.05, "target": "star"}])
def test_build_writes_a_model_that_loads_back(tmp_path, poison):
    shapes.build(tmp_path / "data", {"train": 256, "shots": 1, "reference": 8, "test": 64})
    clip.build(tmp_path / "model", {"model": SMALL_MODEL, "epochs": 1, "batch_size": 64, "poison": poison},
               tmp_path / "data")
    manifest = (tmp_path / "model" / "MANIFEST.json").read_text()
    assert '"poisoned_pairs": %d' % (13 if poison else 0) in manifest
    assert ("attack_success_rate" in manifest) == bool(poison)
    model, tok, cfg = clip.load_model(tmp_path / "model")
    assert cfg["vision_cfg"]["layers"] == 2 and cfg["text_cfg"]["context_length"] == 24
    images, _, _ = shapes.load_split(tmp_path / "data", "test")
    emb = clip.encode_images(model, images[:5])
    assert emb.shape == (5, 32) and np.allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    again, _, _ = clip.load_model(tmp_path / "model")
    assert np.array_equal(clip.encode_images(again, images[:5]).numpy(), emb.numpy())


def test_bad_params_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown params"):
        clip.build(tmp_path / "m", {"epoch": 1}, tmp_path)
    with pytest.raises(ValueError, match="model.vision: unknown"):
        clip.model_config({"vision": {}})


@pytest.mark.parametrize("weights", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_load_model_reads_the_open_clip_hub_layout(tmp_path, weights):
    """The paper scale's CLIPs come as open_clip Hub snapshots: ``model_cfg`` nested in
    open_clip_config.json (with quick_gelu, as OpenAI's), the weights under open_clip's names."""
    import json

    import torch
    from safetensors.torch import save_file

    cfg = {**clip.model_config(SMALL_MODEL), "quick_gelu": True}
    model, _ = clip.build_model(cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    (tmp_path / clip.CONFIG_FILE).write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {"mean": list(clip.MEAN)}}))
    if weights.endswith(".safetensors"):
        save_file(state, str(tmp_path / weights))
    else:
        torch.save(state, tmp_path / weights)
    loaded, tok, got = clip.load_model(tmp_path)
    assert got["quick_gelu"] is True and got["embed_dim"] == 32
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x))
    assert tok(["a photo of a star."]).shape == (1, 24)
    (tmp_path / weights).unlink()
    with pytest.raises(FileNotFoundError, match="no CLIP weights"):
        clip.load_model(tmp_path)
