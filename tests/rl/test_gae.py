"""PPO's GAE baseline: token-level GAE against a scalar loop, whitening, the clipped value loss,
and the critic's update (reference/agentic-rl.md §3.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from repro.registry import ESTIMATORS
from repro.rl.advantages.gae import gae, gae_advantage, masked_whiten, pad_rows
from repro.rl.batch import StepBatch
from repro.rl.losses import value_loss


def loop_gae(rewards: list[float], values: list[float], gamma: float, lam: float):
    """One row, the textbook recursion (value after the last token 0)."""
    adv, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        nxt = values[t + 1] if t + 1 < len(values) else 0.0
        running = rewards[t] + gamma * nxt - values[t] + gamma * lam * running
        adv[t] = running
    return adv, [a + v for a, v in zip(adv, values)]


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.9, 0.8), (1.0, 0.0), (0.5, 1.0)])
def test_gae_equals_the_scalar_recursion_per_row(gamma, lam):
    rng = np.random.default_rng(0)
    lengths = [3, 1, 0, 6, 2]
    rew = [rng.normal(size=n) for n in lengths]
    val = [rng.normal(size=n) for n in lengths]
    r, mask = pad_rows(rew)
    v, _ = pad_rows(val)
    adv, ret = gae(r, v, mask, gamma, lam)
    for i, n in enumerate(lengths):
        a_ref, r_ref = loop_gae(list(rew[i]), list(val[i]), gamma, lam)
        np.testing.assert_allclose(adv[i, :n], a_ref, atol=1e-12)
        np.testing.assert_allclose(ret[i, :n], r_ref, atol=1e-12)
        assert not adv[i, n:].any() and not ret[i, n:].any()


def test_masked_whiten_uses_masked_entries_and_bessel():
    x = np.array([[1.0, 2.0, 99.0], [3.0, 99.0, 99.0]])
    mask = np.array([[True, True, False], [True, False, False]])
    out = masked_whiten(x, mask)
    vals = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out[mask], (vals - 2.0) / np.sqrt(1.0 + 1e-8))
    assert not out[~mask].any()
    ref = torch.tensor(vals)
    np.testing.assert_allclose(out[mask], ((ref - ref.mean()) * torch.rsqrt(ref.var() + 1e-8)).numpy())


def _batch(episode_reward, valid) -> StepBatch:
    n = len(episode_reward)
    return StepBatch(group=np.zeros(n, int), traj=np.arange(n), step=np.zeros(n, int), anchor=np.arange(n),
                     reward=np.zeros(n), episode_reward=np.asarray(episode_reward, float),
                     valid=np.asarray(valid, bool))


def test_gae_estimator_puts_the_penalised_score_on_the_last_token():
    """gamma = lam = 1: before whitening A_t = score - V_t and R_t = score on every token."""
    assert ESTIMATORS.get("gae") is gae_advantage and gae_advantage.needs_values
    batch = _batch([10.0, 0.0, 10.0], [True, False, True])
    values = [np.array([1.0, 2.0, 3.0]), np.array([0.5]), np.array([4.0, 4.0])]
    adv, ret = gae_advantage(batch, {}, values=values)
    score = [10.0, -0.1, 10.0]
    raw = np.concatenate([s - v for s, v in zip(score, values)])
    np.testing.assert_allclose(np.concatenate(adv), (raw - raw.mean()) / np.sqrt(raw.var(ddof=1) + 1e-8))
    for r, s, v in zip(ret, score, values):
        np.testing.assert_allclose(r, np.full(len(v), s))
    with pytest.raises(ValueError, match="values has 2 rows"):
        gae_advantage(batch, {}, values=values[:2])
    with pytest.raises(ValueError, match="gae_lambda"):
        gae_advantage(batch, {"gae_lambda": 1.5}, values=values)


def test_value_loss_is_clipped_around_the_old_values():
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    # token 0: V = 2 overshoots: unclipped (2-1)^2 = 1, clipped to 0.5: (0.5-1)^2 = 0.25 -> max 1
    # token 1: V = -0.2: unclipped 0.64, clipped (-0.2) 0.64 -> 0.64
    loss, frac = value_loss(torch.tensor([[2.0, -0.2]]), old, ret, mask, clip=0.5)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.64) / 2) and frac.item() == 0.0
    loss, frac = value_loss(torch.tensor([[0.9, 0.9]]), old, ret, mask, clip=0.5)
    # token 0: (0.9-1)^2=0.01 vs (0.5-1)^2=0.25 -> 0.25 (clipped wins); token 1: 3.61 vs 2.25 -> 3.61
    assert loss.item() == pytest.approx(0.5 * (0.25 + 3.61) / 2) and frac.item() == 0.5


def test_value_loss_counts_only_values_outside_the_clip_range():
    """A value inside V_old ± clip is kept bit for bit, so it never counts as clipped (computing it
    as V_old + clamp(V - V_old) rounds, and about half of such values then counted as clipped)."""
    g = torch.Generator().manual_seed(0)
    v, old, ret = (torch.randn(64, 32, generator=g) * 0.3 for _ in range(3))
    inside = ((v - old).abs() < 0.5).float()  # the test counts only these tokens
    assert inside.sum() > 1000
    loss, frac = value_loss(v, old, ret, inside, clip=0.5)
    assert frac.item() == 0.0
    assert loss.item() == pytest.approx(0.5 * (((v - ret) ** 2) * inside).sum().item() / inside.sum().item())


def test_critic_learns_the_returns(tmp_path):
    """A few value-loss steps on fixed rows bring the critic's values towards the returns."""
    from repro.rl.critic import Critic
    from repro.rl.policy import update_plan

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path)
    critic = Critic(tmp_path, lr=1e-2, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 40, (n,), generator=gen).tolist() for n in (5, 7, 4, 6)]
    responses = [torch.randint(1, 40, (n,), generator=gen).tolist() for n in (3, 1, 2, 4)]
    returns = [np.full(len(r), t) for r, t in zip(responses, (1.0, -1.0, 0.5, 2.0))]

    def err() -> float:
        v = critic.values(prompts, responses, 0, batch_size=2)
        assert [len(x) for x in v] == [3, 1, 2, 4]
        return float(np.mean(np.concatenate([(a - b) ** 2 for a, b in zip(v, returns)])))

    before = err()
    rng = np.random.default_rng(0)
    for _ in range(30):
        old = critic.values(prompts, responses, 0, batch_size=4)
        plan = update_plan([len(r) for r in responses], [len(p) + len(r) for p, r in zip(prompts, responses)],
                           4, 2, 1, rng)
        parts = critic.update(prompts, responses, returns, old, plan, 0, clip=0.5, grad_clip=1.0)
    assert set(parts) == {"critic/value_loss", "critic/value_clipfrac"}
    assert err() < 0.2 * before
