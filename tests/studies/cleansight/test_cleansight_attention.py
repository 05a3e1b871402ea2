"""CleanSight's registered attention on a real (small, briefly trained) LLaVA-architecture model:
outside a session it is eager attention; its feature equals a direct computation from
``output_attentions``; a flagged input's pruned visual tokens get exactly zero attention in the
detection layer, every later layer and every decoding step; an unflagged one is untouched; and the
methods calibrate and evaluate end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from repro.data import shapes
from repro.multimodal import llava
from repro.multimodal.family import EvalConfig, TrainConfig
from repro.studies.cleansight import attention as A
from repro.studies.cleansight import methods as M

SMALL = {"vision": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2},
         "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
                  "num_key_value_heads": 1}}  # grouped-query attention: repeat_kv is exercised
POISON = {"trigger": {"kind": "badnets", "size": 4, "seed": 0}, "rate": 0.1, "target": "banana"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("cs")
    shapes.build(base / "data", {"train": 192, "shots": 1, "reference": 16, "test": 24})
    llava.build(base / "model", {"model": SMALL, "epochs": 1, "batch_size": 32, "poison": POISON}, base / "data")
    return base


def _batch(ctx, n=3):
    images, _, _ = ctx.split("test")
    ids = llava.prompt_ids(ctx.tokenizer, "shape", 16, ctx.tokenizer.convert_tokens_to_ids(llava.IMAGE_TOKEN))
    return torch.tensor([ids] * n), llava.pixels(images[:n])


def test_the_builder_writes_a_poisoned_llava(built):
    m = json.loads((built / "model" / "MANIFEST.json").read_text())
    assert m["poisoned_items"] == round(0.1 * 192) and set(m["vqa_test"]) == {"clean_accuracy", "attack_success_rate"}
    ctx = llava.LlavaContext(built / "model", built / "data")
    assert ctx.target == "banana" and ctx.model.config.image_seq_length == 16


def test_outside_a_session_it_is_eager_attention(built):
    ctx = llava.LlavaContext(built / "model", built / "data")
    inp, px = _batch(ctx)
    with torch.no_grad():
        eager = ctx.model(input_ids=inp, pixel_values=px).logits
        A.install(ctx.model)
        ours = ctx.model(input_ids=inp, pixel_values=px).logits
    torch.testing.assert_close(ours, eager, rtol=1e-5, atol=1e-6)


def test_feature_equals_a_direct_computation_from_output_attentions(built):
    ctx = llava.LlavaContext(built / "model", built / "data")
    A.install(ctx.model)
    inp, px = _batch(ctx)
    s = A.Session(layers=[1, 2], start=0, length=16)
    with torch.no_grad(), A.session(s):
        att = ctx.model(input_ids=inp, pixel_values=px, output_attentions=True).attentions
    for layer in (1, 2):
        last = att[layer][:, :, -1, :]
        direct = last[..., :16].sum(-1) / (last[..., 16:].sum(-1) + 1e-12)
        torch.testing.assert_close(s.features[layer], direct)
    assert s.feature().shape == (3, 2 * 2) and s.flagged is None  # calibration: nothing decided


def _generate(ctx, s, inp, px, steps=3):
    with torch.no_grad(), A.session(s):
        return ctx.model.generate(input_ids=inp, pixel_values=px, attention_mask=torch.ones_like(inp),
                                  max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                  output_attentions=True, return_dict_in_generate=True,
                                  pad_token_id=ctx.tokenizer.pad_token_id)


def test_pruned_tokens_get_exactly_zero_attention_from_the_detection_layer_on(built):
    ctx = llava.LlavaContext(built / "model", built / "data")
    A.install(ctx.model)
    inp, px = _batch(ctx)
    n = 2 * 2  # layers x heads
    # gamma = -inf: every row flagged; tau = 0: every visual token with any attention is pruned
    s = A.Session(layers=[1, 2], start=0, length=16, mu=torch.zeros(n), sigma=torch.ones(n),
                  gamma=float("-inf"), tau=0.0)
    out = _generate(ctx, s, inp, px)
    assert s.flagged.all() and s.pruned.any()
    assert len(out.attentions) == 3  # the prefill and two decoding steps
    for step in out.attentions:
        for layer, a in enumerate(step):  # a: B x H x Q x K
            # the text queries (prefill rows after the image; every decoding step): a visual
            # query early in the image sees only visual keys, all pruned, and keeps its softmax
            visual = a[:, :, 16:, :16] if a.shape[2] > 1 else a[..., :16]
            pruned = s.pruned[:, None, None, :].expand_as(visual)
            if layer >= 2:
                assert (visual[pruned] == 0).all()
            elif step is out.attentions[0]:
                assert (visual[pruned] > 0).any()  # before the detection layer nothing is pruned
    # an unflagged input is untouched: the same tokens as plain eager generation
    s_clean = A.Session(layers=[1, 2], start=0, length=16, mu=torch.zeros(n), sigma=torch.ones(n),
                        gamma=float("inf"), tau=0.0)
    clean = _generate(ctx, s_clean, inp, px)
    with torch.no_grad():
        plain = ctx.model.generate(input_ids=inp, pixel_values=px, attention_mask=torch.ones_like(inp),
                                   max_new_tokens=3, min_new_tokens=3, do_sample=False,
                                   pad_token_id=ctx.tokenizer.pad_token_id)
    assert not s_clean.flagged.any() and not s_clean.pruned.any()
    assert torch.equal(clean.sequences, plain)


def test_methods_calibrate_and_evaluate(built):
    ctx = llava.LlavaContext(built / "model", built / "data")
    params = M.CleanSightParams(detection_layers=[1, 2], calibration=16)
    fitted = M.cleansight.fit(ctx, params, TrainConfig(), 0, None)
    assert fitted.tensors["mu"].shape == (4,) and fitted.info["calibration_pairs"] == 16
    assert fitted.info["gamma"] == pytest.approx(float(np.percentile(fitted.tensors["calibration_scores"].numpy(), 99)))
    res = M.cleansight.evaluate(ctx, fitted, params, EvalConfig(), 0)["test"]
    assert {"tpr_pct", "fpr_pct", "auroc_pct", "attack_success_rate_pct", "clean_accuracy_pct"} <= set(res["metrics"])
    for method in (M.no_defence, M.jpeg, M.blur):
        m = method.evaluate(ctx, method.fit(ctx, method.Params(), TrainConfig(), 0, None), method.Params(),
                            EvalConfig(), 0)["test"]["metrics"]
        assert set(m) == {"clean_accuracy_pct", "attack_success_rate_pct", "poisoned_accuracy_pct"}
    with pytest.raises(ValueError, match="ascending"):
        M.CleanSightParams(detection_layers=[2, 1])


def test_the_detection_score_stays_finite_when_no_attention_is_left_on_the_text():
    """A last query with all its attention on the image gives S = visual / 1e-12 ~ 1e12; whitened by
    a near-constant clean feature, its square overflows float32 (a seed-6 model's test input did)."""
    import torch

    from repro.studies.cleansight.attention import whitened_distance

    clean = torch.tensor([[0.5, 0.2], [0.5, 0.3], [0.5, 0.25]])
    mu, sigma = clean.mean(0), clean.std(0)
    hit = torch.tensor([[1e12, 0.2]])
    d = whitened_distance(torch.cat([clean, hit]), mu, sigma)
    assert torch.isfinite(d).all() and d[-1] > 1e19 and d[:3].max() < 2
    naive = torch.linalg.vector_norm((hit - mu) / (sigma + 1e-8), dim=1)
    assert torch.isinf(naive).all()  # what the float32 computation gave
