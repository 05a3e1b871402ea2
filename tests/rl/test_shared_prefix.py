"""``train.shared_prefix`` in the update: rows whose prompts start alike, packed into one sequence
each (``repro.rl.policy.pack_shared``), give the log-probs and gradient of one padded row each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from repro.rl import plugin  # noqa: F401  (registers the policy loss ppo_update uses)
from repro.rl.policy import (
    batched_logprobs,
    pack_shared,
    prefix_groups,
    response_logprobs,
    shared_prefix_batches,
)


def tiny(seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                        attn_implementation="sdpa"))


def rows(seed: int = 0):
    """Prompts sharing prefixes every way: equal prompts, one a prefix of others, a shared start
    then different tails, one unrelated; responses of 0-6 tokens; in no particular order."""
    g = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(2, 50, (n,), generator=g).tolist()
    a, b = ids(12), ids(9)
    prompts = [a, a + ids(3), ids(7), a, b + ids(4), a[:5] + ids(6), b + ids(2), a, b, a + ids(5)]
    responses = [ids(n) for n in (3, 2, 4, 0, 5, 1, 6, 2, 3, 4)]
    return prompts, responses


def test_packed_rows_give_the_padded_rows_logprobs_and_gradient():
    model = tiny(0)
    prompts, responses = rows()
    out = {}
    for shared in (False, True):
        model.zero_grad(set_to_none=True)
        logp, ent, mask = response_logprobs(model, prompts, responses, pad_id=0, shared_prefix=shared)
        (logp * mask).sum().backward()
        out[shared] = (logp * mask, ent * mask, mask, [p.grad.clone() for p in model.parameters()])
    (l0, e0, m0, g0), (l1, e1, m1, g1) = out[False], out[True]
    assert torch.equal(m0, m1) and m0.sum() == sum(map(len, responses))
    assert torch.allclose(l0, l1, atol=1e-5) and torch.allclose(e0, e1, atol=1e-5)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-5)
    # the packing did share: fewer tokens than the rows hold
    groups = prefix_groups(prompts, responses, span=1e9)
    packed = sum(p + sum(len(prompts[i]) - p + len(responses[i]) for i in members) for p, members in groups)
    assert packed < sum(len(p) + len(r) for p, r in zip(prompts, responses))


def test_groups_share_the_longest_common_prefix_and_follow_the_cost_rule():
    a, b = [5, 6, 7, 8], [9, 10, 11]
    # equal prompts: one group whose prefix is the whole prompt
    assert prefix_groups([a, a, a], [[1], [2, 3], []], span=1e9) == [(4, [0, 1, 2])]
    # no first token in common: never packed together
    assert prefix_groups([a, b], [[1], [1]], span=1e9) == [(4, [0]), (3, [1])]
    # a shared start, different tails: the prefix is what they share (rows in prompt order)
    assert prefix_groups([a + [12], a[:2] + [40]], [[1], [1]], span=1e9) == [(2, [0, 1])]
    # attention cost: long rows sharing one token stay apart when attention dominates
    long = [[3] + list(range(20, 60)), [3] + list(range(60, 100))]
    assert len(prefix_groups(long, [[1], [1]], span=1.0)) == 2
    assert len(prefix_groups(long, [[1], [1]], span=1e9)) == 1


def test_packed_positions_masks_and_targets():
    prompts, responses = [[5, 6, 7], [5, 6, 8, 9]], [[20, 21], [22]]
    input_ids, position_ids, allow, seq, targets, mask, pos = pack_shared(prompts, responses, 0, [(2, [0, 1])])
    # prefix 5 6 | branch 1: 7 20 21 | branch 2: 8 9 22
    assert input_ids.tolist() == [[5, 6, 7, 20, 21, 8, 9, 22]]
    assert position_ids.tolist() == [[0, 1, 2, 3, 4, 2, 3, 4]]
    a = allow[0, 0].int()
    assert a[5].tolist() == [1, 1, 0, 0, 0, 1, 0, 0]  # branch 2's first token: the prefix and itself
    assert a[4].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert seq.tolist() == [0, 0]
    assert targets.tolist() == [[20, 21], [22, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    assert pos.tolist() == [[2, 3], [6, 0]]  # the token before each response token
    # a whole prompt shared: its first response token is predicted at the prefix's last position
    *_, pos = pack_shared([[5, 6], [5, 6]], [[20, 21], [22]], 0, [(2, [0, 1])])
    assert pos.tolist() == [[1, 2], [1, 0]]


def test_micro_batches_hold_whole_groups_and_every_row_once():
    prompts, responses = rows(1)
    idx = list(range(len(prompts)))
    for micro in (1, 3, 100):
        batches = shared_prefix_batches(prompts, responses, idx, micro, span=1e9)
        assert sorted(i for m in batches for i in m) == idx
        for _, members in prefix_groups(prompts, responses, span=1e9):
            assert sum(set(members) <= set(m) for m in batches) == 1


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_ppo_update_takes_the_same_step_with_shared_prefixes(agg):
    from repro.rl.config import TrainConfig
    from repro.rl.rollout import Rollout
    from repro.rl.trainer import ppo_update

    base = tiny(3)
    prompts, responses = rows(2)
    old = [(x - 0.1).tolist() for x in batched_logprobs(base, prompts, responses, 0, batch_size=4)]
    ro = Rollout(batch=None, prompt_ids=prompts, response_ids=responses, won=np.zeros(0, bool),
                 lengths=np.zeros(0, int), task_types=[], games=[], old_logprobs=old)
    adv = np.linspace(-1.5, 1.5, len(prompts))
    results = []
    for shared in (False, True):
        model = Qwen2ForCausalLM(base.config)
        model.load_state_dict(base.state_dict())
        cfg = TrainConfig(mini_batch_rows=6, micro_batch_rows=2, grad_clip=1e9, shared_prefix=shared,
                          policy_loss_params={"kl_coef": 0.01, "loss_agg_mode": agg})
        parts = ppo_update(model, base, torch.optim.SGD(model.parameters(), lr=0.5), ro, adv, cfg, pad_id=0,
                           rng=np.random.default_rng(0))
        results.append((parts, [p.detach().clone() for p in model.parameters()]))
    (p0, w0), (p1, w1) = results
    assert p0.keys() == p1.keys()
    for k in p0:
        assert abs(p0[k] - p1[k]) < 1e-5, k
    for a, b in zip(w0, w1):
        assert torch.allclose(a, b, atol=1e-5)
