"""Deep visual prompts on a tiny open_clip ViT: no prompts = open_clip's own encoder; prompts
change the features and are the only thing the RVPT loss trains; the repelling term's gradient
pushes the prompted class tokens away from the un-prompted ones."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("open_clip")

from repro.multimodal import clip  # noqa: E402
from repro.studies.rvpt.prompts import encode, init_prompts, rvpt_loss  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m, _ = clip.build_model(clip.model_config({"vision_cfg": {"layers": 4}}))
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def test_without_prompts_equals_open_clip(model):
    x = torch.randn(3, 3, 32, 32)
    feats, cls = encode(model.visual, x)
    torch.testing.assert_close(feats, model.encode_image(x), rtol=1e-5, atol=1e-6)
    assert cls.shape == (3, 4, 64)


def test_prompts_enter_from_the_start_block(model):
    x = torch.randn(2, 3, 32, 32)
    prompts = init_prompts(model.visual, start=2, length=5, std=1.0)
    assert prompts.shape == (2, 5, 64)
    feats, cls = encode(model.visual, x, prompts, start=2)
    plain, cls_plain = encode(model.visual, x, None, start=2)
    assert cls.shape == cls_plain.shape == (2, 2, 64) and not torch.allclose(feats, plain)
    with pytest.raises(ValueError, match="must be in 0..3"):
        init_prompts(model.visual, start=4, length=5)


def test_rvpt_loss_trains_only_prompts_and_repels(model):
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    class_emb = torch.nn.functional.normalize(torch.randn(8, 64), dim=-1)
    prompts = init_prompts(model.visual, start=1, length=3)
    loss, parts = rvpt_loss(model, x, y, class_emb, prompts, start=1, alpha=2.0)
    loss.backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    # one small step against the repelling term alone lowers the cosine to the un-prompted tokens
    fr_only, before = rvpt_loss(model, x, y, class_emb, prompts, start=1, alpha=1e6)
    prompts.grad = None
    fr_only.backward()
    with torch.no_grad():  # a step of norm 0.05 along the negative gradient (alpha makes L_CE negligible)
        prompts -= 0.05 * prompts.grad / prompts.grad.norm()
    _, after = rvpt_loss(model, x, y, class_emb, prompts, start=1, alpha=1e6)
    assert after["fr"] < before["fr"]


def test_a_backdoored_models_column_is_the_trigger_its_name_carries():
    """Embedded and paper-scale names land in the paper's columns (Tables 1 and 2)."""
    from repro.studies.rvpt.figures import attack

    assert [attack(m) for m in ("tiny-clip-badnets", "tiny-clip-blended", "clip-vit-b32-wanet-samoyed",
                                "clip-vit-b32-blended-accordion", "tiny-clip-clean")] == [
        "BadNet", "Blended", "WaNet", "Blended", "tiny-clip-clean"]
