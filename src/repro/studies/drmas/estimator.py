"""Dr. MAS's advantage normalisation for multi-agent GRPO (agentic-rl.md §3.6.2-3.6.3), registered as
estimator ``drmas`` with ``norm`` choosing the statistics:

- ``global`` (μ, σ), vanilla multi-agent GRPO as the released code computes it: each trajectory's
  step rewards are averaged into one score; mean and Bessel std over the task group's
  trajectories; every step of a trajectory gets its trajectory's advantage.
- ``agent`` (μ_k, σ_k), Dr. MAS (Eq. 5; ``group_by_agent_id=True``): per task group and agent k,
  mean and Bessel std over *every step sample* of agent k (a trajectory counts once per
  invocation of k); A = (r_t − μ_k)/(σ_k + ε) with r_t the step's reward.
- ``agent_mean`` (μ_k, σ) and ``agent_std`` (μ, σ_k): Table 3's mixed ablations, each step's
  reward against the agent's mean and the group's std over trajectory scores, or the group's mean
  and the agent's std [I: the paper states the pairs, not how the global half is computed; here
  as the ``global`` mode computes it].

A step's reward r_t is the episode's outcome reward (on the last token of every agent response)
minus the invalid-action penalty of that step (0.1 math, 0.01 search; ``train.invalid_penalty``).
A one-sample statistic uses mean 0 and std 1, as the code. Vectorised over rows (``bincount``
segments, no loop over groups or agents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import StepParams, episode_scores, resolve, segments
from repro.rl.batch import StepBatch

NORMS = ("global", "agent", "agent_mean", "agent_std")


@dataclass(frozen=True)
class DrMASParams(StepParams):
    norm: Literal["global", "agent", "agent_mean", "agent_std"] = "agent"


def _stats(x: np.ndarray, ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment (mean, Bessel std) float64[n]; a one-sample segment gets (0, 1)."""
    count = np.bincount(ids, minlength=n)
    mean = np.bincount(ids, weights=x, minlength=n) / np.maximum(count, 1)
    dev = x - mean[ids]
    var = np.bincount(ids, weights=dev * dev, minlength=n) / np.maximum(count - 1, 1)
    single = count <= 1
    return np.where(single, 0.0, mean), np.where(single, 1.0, np.sqrt(var))


@ESTIMATORS.register("drmas", params=DrMASParams)
def drmas_advantage(batch: StepBatch, params: Any = None) -> np.ndarray:
    """Advantages float64[N], one per step row (each row one agent response), as ``norm`` says."""
    p = resolve(DrMASParams, params)
    r = episode_scores(batch, p.invalid_penalty)  # [N] step rewards
    agent = batch.agent if batch.agent is not None else np.zeros(len(batch), dtype=np.int64)
    traj = segments(batch.traj)
    t_score = np.bincount(traj.ids, weights=r, minlength=traj.n) / np.maximum(traj.count, 1)  # [T]
    t_group = np.empty(traj.n, dtype=np.int64)
    t_group[traj.ids] = batch.group
    groups = segments(t_group)
    g_mean, g_std = _stats(t_score, groups.ids, groups.n)  # over trajectories of a task group
    mu, sigma = g_mean[groups.ids][traj.ids], g_std[groups.ids][traj.ids]  # [N]
    if p.norm == "global":
        return (t_score[traj.ids] - mu) / (sigma + p.epsilon)
    ga = segments(batch.group, agent)
    a_mean, a_std = _stats(r, ga.ids, ga.n)
    mu_k, sigma_k = a_mean[ga.ids], a_std[ga.ids]
    num = r - (mu_k if p.norm in ("agent", "agent_mean") else mu)
    den = sigma_k if p.norm in ("agent", "agent_std") else sigma
    return num / (den + p.epsilon)
