"""Dr. MAS's normalisations against a loop over groups and agents written from the paper and the
released code's description (agentic-rl.md §3.6.3): global GRPO on trajectory scores, agent-wise
statistics over every step sample of an agent, the two mixed ablations, Bessel std and the
singleton convention (μ = 0, σ = 1)."""

from __future__ import annotations

import numpy as np
import pytest

import repro.studies.drmas.estimator  # noqa: F401  (registers drmas)
from repro.config import ConfigError
from repro.registry import ESTIMATORS
from repro.rl.batch import StepBatch

EPS = 1e-6


def stats(xs):
    xs = np.asarray(xs, float)
    return (0.0, 1.0) if len(xs) == 1 else (xs.mean(), xs.std(ddof=1))


def loop_reference(rows, norm, penalty):
    """rows: (group, traj, agent, R, valid) in trajectory-major order."""
    r = [R - penalty * (not valid) for _, _, _, R, valid in rows]
    traj_rewards, traj_group = {}, {}
    for (g, t, _, _, _), x in zip(rows, r):
        traj_rewards.setdefault(t, []).append(x)
        traj_group[t] = g
    t_score = {t: float(np.mean(v)) for t, v in traj_rewards.items()}
    by_group = {}
    for t, g in traj_group.items():
        by_group.setdefault(g, []).append(t_score[t])
    by_agent = {}
    for (g, _, k, _, _), x in zip(rows, r):
        by_agent.setdefault((g, k), []).append(x)
    out = []
    for (g, t, k, _, _), x in zip(rows, r):
        mu, sigma = stats(by_group[g])
        mu_k, sigma_k = stats(by_agent[(g, k)])
        if norm == "global":
            out.append((t_score[t] - mu) / (sigma + EPS))
        else:
            num = x - (mu_k if norm in ("agent", "agent_mean") else mu)
            out.append(num / ((sigma_k if norm in ("agent", "agent_std") else sigma) + EPS))
    return np.array(out)


def random_rows(seed: int):
    """Task groups of 1-5 trajectories; each trajectory: 1-4 agent turns (agents 0..2, some agents
    invoked several times, some never), one binary outcome, ~15% invalid steps."""
    rng = np.random.default_rng(seed)
    rows, t = [], 0
    for g in range(rng.integers(2, 7)):
        for _ in range(rng.integers(1, 6)):
            R = float(rng.random() < 0.4)
            for _ in range(rng.integers(1, 5)):
                rows.append((g, t, int(rng.integers(0, 3)), R, bool(rng.random() > 0.15)))
            t += 1
    return rows


def batch_of(rows):
    g, t, k, R, v = map(np.array, zip(*rows))
    steps = np.concatenate([np.arange(c) for c in np.bincount(t)])
    return StepBatch(group=g, traj=t, step=steps, anchor=np.zeros(len(rows)), reward=R, episode_reward=R,
                     valid=v, agent=k)


@pytest.mark.parametrize("norm", ["global", "agent", "agent_mean", "agent_std"])
@pytest.mark.parametrize("seed", range(6))
def test_equals_the_loop_reference(norm, seed):
    rows = random_rows(seed)
    got = ESTIMATORS.get("drmas")(batch_of(rows), {"norm": norm, "invalid_penalty": 0.1})
    np.testing.assert_allclose(got, loop_reference(rows, norm, 0.1), rtol=1e-10, atol=1e-12)


def test_hand_example():
    # one task, two trajectories: A = solver, verifier, solver (won); B = solver (lost)
    rows = [(0, 0, 0, 1.0, True), (0, 0, 1, 1.0, True), (0, 0, 0, 1.0, True), (0, 1, 0, 0.0, True)]
    b = batch_of(rows)
    glob = ESTIMATORS.get("drmas")(b, {"norm": "global", "invalid_penalty": 0.0})
    s = np.std([1.0, 0.0], ddof=1)  # trajectory scores 1 and 0
    np.testing.assert_allclose(glob, [0.5 / (s + EPS)] * 3 + [-0.5 / (s + EPS)])
    agent = ESTIMATORS.get("drmas")(b, {"norm": "agent", "invalid_penalty": 0.0})
    # solver samples 1, 1, 0 (mean 2/3, std 0.577); the verifier has one sample: mean 0, std 1
    s0 = np.std([1.0, 1.0, 0.0], ddof=1)
    np.testing.assert_allclose(agent, [(1 / 3) / (s0 + EPS), 1.0 / (1 + EPS), (1 / 3) / (s0 + EPS),
                                       (-2 / 3) / (s0 + EPS)])


def test_unknown_norm_is_refused():
    with pytest.raises(ConfigError, match="norm"):
        ESTIMATORS.get("drmas")(batch_of(random_rows(0)), {"norm": "per_agent"})


def test_agent_moments_diagnostic():
    """Lemma 4.2's second moment per agent: global normalisation inflates an agent whose rewards sit
    away from the group's; agent-wise statistics hold it near 1 (Bessel: (n - 1) / n)."""
    from types import SimpleNamespace

    from repro.studies.drmas.diagnostics import agent_moments
    from repro.studies.drmas.estimator import DrMASParams

    # one group, 4 trajectories: agent 0 acts once in each; agent 1 only in the two that fail
    traj = np.array([0, 1, 2, 2, 3, 3])
    agent = np.array([0, 0, 0, 1, 0, 1])
    outcome = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    b = StepBatch.from_anchor_strings(group=np.zeros(6, np.int64), traj=traj, step=np.zeros(6, np.int64),
                                      anchor_obs=["s"] * 6, next_obs=None, keep_text=False, reward=outcome,
                                      episode_reward=outcome, valid=np.ones(6, bool), agent=agent)
    m = agent_moments(SimpleNamespace(batch=b), DrMASParams(invalid_penalty=0.0))
    sigma = np.std([1, 1, 0, 0], ddof=1)
    assert m["moment/global/agent0"] == pytest.approx(np.mean([(x - 0.5) ** 2 for x in (1, 1, 0, 0)]) / sigma ** 2, rel=1e-5)
    assert m["moment/global/agent1"] == pytest.approx(0.25 / sigma ** 2, rel=1e-5)  # both rows at -0.5 / sigma
    assert m["moment/agent/agent0"] == pytest.approx(0.75, rel=1e-5) and m["moment/agent/agent1"] == 0.0
    assert "moment/global/agent2" not in m


@pytest.mark.parametrize("seed", range(4))
def test_global_advantage_is_bounded_by_the_group_size(seed):
    """Samuelson's inequality: a trajectory score sits at most (N - 1) / sqrt(N) Bessel stds from
    its group's mean, so under global normalisation every step's A^2 <= (N - 1)^2 / N, and so is
    Lemma 4.2's per-agent second moment, whatever the agents' reward statistics (README: why a
    fixed group size cannot show Proposition 4.3's divergence); the bound is reached by the one
    failed trajectory of a group whose others all succeed."""
    rows = random_rows(seed)
    got = ESTIMATORS.get("drmas")(batch_of(rows), {"norm": "global", "invalid_penalty": 0.1})
    sizes = np.array([len({t for gg, t, *_ in rows if gg == g}) for g, *_ in rows])
    several = sizes > 1  # a singleton group's A is its score (mu = 0, sigma = 1)
    assert several.sum() > len(rows) // 2
    assert np.all(got[several] ** 2 <= (sizes[several] - 1) ** 2 / sizes[several] + 1e-9)
    n = 5
    one_fails = [(0, t, 0, float(t > 0), True) for t in range(n)]
    a = ESTIMATORS.get("drmas")(batch_of(one_fails), {"norm": "global", "invalid_penalty": 0.0})
    assert a[0] ** 2 == pytest.approx((n - 1) ** 2 / n, rel=1e-5)
