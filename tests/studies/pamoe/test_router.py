"""PA-MoE's phase router and losses (agentic-rl.md §3.8.2-3.8.3): shapes, the temperature schedule,
the straight-through switching penalty, and hand-computed balance and diversity values."""

from __future__ import annotations

import math

import pytest
import torch

from repro.studies.pamoe.router import (
    PhaseRouter,
    RouterParams,
    balance_loss,
    choose,
    diversity_loss,
    probabilities,
    reinforce_loss,
    switching_loss,
    temperature,
)


def test_router_shapes_and_masks():
    torch.manual_seed(0)
    p = RouterParams(experts=4, history=5)
    router = PhaseRouter(32, p).eval()
    b = 3
    obs, goal, hist = torch.randn(b, 7, 32), torch.randn(b, 4, 32), torch.randn(b, 5, 32)
    obs_mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4, [True] * 5 + [False] * 2])
    goal_mask = torch.tensor([[True] * 4, [True] * 2 + [False] * 2, [True] * 4])
    logits = router(obs, obs_mask, goal, goal_mask, hist, torch.tensor([5, 0, 2]))
    assert logits.shape == (b, 4)
    # padding is ignored: changing padded positions changes nothing
    obs2, goal2 = obs.clone(), goal.clone()
    obs2[1, 3:] = 100.0
    goal2[1, 2:] = -100.0
    again = router(obs2, obs_mask, goal2, goal_mask, hist, torch.tensor([5, 0, 2]))
    torch.testing.assert_close(again, logits)
    # the history is read up to its last real pair
    hist2 = hist.clone()
    hist2[2, 2:] = 7.0
    torch.testing.assert_close(router(obs, obs_mask, goal, goal_mask, hist2, torch.tensor([5, 0, 2])), logits)
    probs = probabilities(logits, 2.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(b))
    assert choose(probs, "argmax").tolist() == probs.argmax(-1).tolist()
    assert choose(probs, "sample", torch.Generator().manual_seed(0)).shape == (b,)


def test_temperature_schedule():
    p = RouterParams()  # tau 2.0 -> 0.5 over 3000 router steps
    assert [temperature(s, p) for s in (0, 1500, 3000, 9000)] == [2.0, 1.25, 0.5, 0.5]


def test_switching_penalty_counts_hard_switches_and_has_a_soft_gradient():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    probs = torch.softmax(logits, -1)
    chosen = probs.argmax(-1)                      # 0, 1, 1 | 0, 1
    episode = torch.tensor([0, 0, 0, 1, 1])
    loss = switching_loss(probs, chosen, episode, coef=0.05)
    # episode 0: 1 switch over 2 pairs; episode 1: 1 switch over 1 pair -> 0.05 * mean(0.5, 1.0)
    assert loss.item() == pytest.approx(0.05 * 0.75)
    loss.backward()
    assert logits.grad.abs().sum() > 0             # the surrogate's gradient, not the count's (none)
    single = switching_loss(probs.detach(), chosen, torch.tensor([0, 1, 2, 3, 4]), 0.05)
    assert single.item() == 0.0


def test_balance_hand_computed():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
    f = [0.6, 0.25, 0.15]
    want = 0.001 * sum((x - 1 / 3) ** 2 for x in f)
    assert balance_loss(probs, 0.001).item() == pytest.approx(want)


def test_diversity_hand_computed():
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]])  # identical routing: KL 0 < 0.1
    # dist columns (0.5, 0.5) each; co-activation mean(0.25, 0.25) = 0.25; one pair
    assert diversity_loss(probs, 0.01, 0.1).item() == pytest.approx(0.01 * 0.1 * 0.25)
    apart = torch.tensor([[0.99, 0.01], [0.01, 0.99]])
    pi, pj = [0.99, 0.01], [0.01, 0.99]
    kl = sum(a * math.log(a / b) for a, b in zip(pi, pj))
    assert kl > 0.1 and diversity_loss(apart, 0.01, 0.1).item() == 0.0


def test_reinforce_hand_computed():
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.8, 0.2]])
    chosen, episode = torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1])
    want = -((math.log(0.5) + math.log(0.75)) * 10.0 + math.log(0.8) * 0.0) / 2
    assert reinforce_loss(probs, chosen, episode, torch.tensor([10.0, 0.0])).item() == pytest.approx(want)
