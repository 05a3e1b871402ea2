"""Routing metrics counted by hand: switches per episode, expert shares, the token-routed
projection, and the task-type shares behind the paper's Fig. 1 occupancy."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from repro.studies.pamoe.diagnostics import TaskSharesParams, task_shares
from repro.studies.pamoe.params import TokenMoEParams
from repro.studies.pamoe.token_moe import TokenRoutedLoRA, add_token_experts, plain
from repro.studies.pamoe.usage import expert_usage, switches


def test_switches_count_changes_within_each_episode_only():
    choice = np.array([0, 0, 1, 1, 0, 2, 2, 1])
    episode = np.array([5, 5, 5, 5, 5, 9, 9, 3])            # the change 0 -> 2 crosses episodes: not a switch
    assert switches(choice, episode).tolist() == [2.0, 0.0, 0.0]


def test_expert_usage_by_hand():
    agent = np.array([0, 1, 1, 2, 0, 0])
    episode = np.array([0, 0, 0, 1, 1, 1])
    task = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    use = expert_usage(agent, episode, 3, task)
    assert use["switches_per_episode"] == pytest.approx((1 + 1) / 2)
    assert use["share"] == pytest.approx([0.5, 2 / 6, 1 / 6], abs=1e-4)
    assert use["share_by_task_type"] == {"a": pytest.approx([1 / 3, 2 / 3, 0.0], abs=1e-4),
                                         "b": pytest.approx([2 / 3, 0.0, 1 / 3], abs=1e-4)}


def test_task_shares_are_row_shares():
    ro = SimpleNamespace(task_types=["pick_and_place_simple", "pick_heat_then_place_in_recep", "pick_and_place_simple"],
                         lengths=np.array([2, 5, 1]))
    out = task_shares(ro, TaskSharesParams())
    assert out["share/pick_and_place_simple"] == pytest.approx(3 / 8)
    assert out["share/pick_heat_then_place_in_recep"] == pytest.approx(5 / 8)
    assert out["share/look_at_obj_in_light"] == 0.0


def test_token_routed_lora_starts_as_the_base_and_routes_each_token_to_one_expert():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    layer = TokenRoutedLoRA(base, TokenMoEParams(experts=3, rank=2, alpha=4, dropout=0.0))
    x = torch.randn(2, 7, 6)
    torch.testing.assert_close(layer(x), base(x))             # B = 0
    with torch.no_grad():
        layer.moe_B.normal_()
    layer.record = True
    y = layer(x)
    top = layer.choice
    probs = torch.softmax(layer.moe_gate(x), -1)
    for b in range(2):
        for t in range(7):                                    # one expert per token, weighted by its gate probability
            k = int(top[b, t])
            lora = layer.moe_B[k] @ (layer.moe_A[k] @ x[b, t])
            torch.testing.assert_close(y[b, t], base(x[b, t]) + 2.0 * probs[b, t, k] * lora)
    y.sum().backward()
    assert layer.moe_gate.weight.grad.abs().sum() > 0        # the gate learns through the policy loss


def test_token_experts_replace_only_the_targets_and_unwrap():
    model = torch.nn.ModuleDict({"q_proj": torch.nn.Linear(4, 4), "mlp": torch.nn.Linear(4, 4)})
    wrapped = add_token_experts(model, TokenMoEParams(experts=2, rank=1, alpha=2, targets=["q_proj"]))
    assert len(wrapped) == 1 and isinstance(model["q_proj"], TokenRoutedLoRA)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "q_proj.moe_A", "q_proj.moe_B", "q_proj.moe_gate.weight"]
    back = plain(model)
    assert isinstance(back["q_proj"], torch.nn.Linear) and isinstance(model["q_proj"], TokenRoutedLoRA)
    with pytest.raises(ValueError, match="no nn.Linear named"):
        add_token_experts(torch.nn.ModuleDict({"x": torch.nn.Linear(2, 2)}), TokenMoEParams(targets=["q_proj"]))
