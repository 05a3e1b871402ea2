"""PPO-clip, dual clip, low-variance KL and entropy against hand-computed values."""

from __future__ import annotations

import math

import torch

from repro.rl.losses import low_var_kl, masked_mean, ppo_clip_loss, token_logprobs_and_entropy


def test_masked_mean_is_token_mean():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(x, m).item() == 2.0


def test_ppo_clip_positive_advantage_clips_above():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.9]]))   # ratios 1.5 (clipped to 1.2) and 0.9
    loss, clipfrac = ppo_clip_loss(logp, old, torch.tensor([2.0]), torch.ones(1, 2), clip=0.2)
    assert math.isclose(loss.item(), (-2 * 1.2 + -2 * 0.9) / 2, rel_tol=1e-6)
    assert math.isclose(clipfrac.item(), 0.5)


def test_ppo_dual_clip_bounds_negative_advantage():
    old = torch.zeros(1, 1)
    logp = torch.log(torch.tensor([[10.0]]))       # huge ratio with A < 0
    loss, _ = ppo_clip_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 1), clip=0.2, clip_c=3.0)
    assert math.isclose(loss.item(), 3.0, rel_tol=1e-6)   # min(max(10, 1.2), 3) * |A|


def test_low_var_kl_zero_at_equality_and_positive_otherwise():
    a = torch.tensor([[-1.0, -2.0]])
    assert torch.allclose(low_var_kl(a, a), torch.zeros_like(a))
    d = torch.tensor([[0.5]])
    expected = math.exp(0.5) - 0.5 - 1
    assert math.isclose(low_var_kl(torch.zeros(1, 1), d).item(), expected, rel_tol=1e-6)


def test_logprobs_and_entropy_of_uniform():
    logits = torch.zeros(1, 1, 4)
    logp, ent = token_logprobs_and_entropy(logits, torch.tensor([[2]]))
    assert math.isclose(logp.item(), math.log(0.25), rel_tol=1e-6)
    assert math.isclose(ent.item(), math.log(4), rel_tol=1e-6)
