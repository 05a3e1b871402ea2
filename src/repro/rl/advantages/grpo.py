"""GRPO outcome advantage, per step row (reference/agentic-rl.md §3.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import StepParams, episode_advantage, episode_scores, resolve
from repro.rl.batch import StepBatch


@dataclass(frozen=True)
class GRPOParams(StepParams):
    norm_adv_by_std: bool = True  # verl algorithm.norm_adv_by_std_in_grpo, default True (§3.1)


@ESTIMATORS.register("grpo", params=GRPOParams)
def grpo_advantage(batch: StepBatch, params: Any = None) -> np.ndarray:
    """GRPO advantage float64[N] for a batch of N step rows (verl ``compute_grpo_outcome_advantage``).

    - score_i = episode_reward_i - invalid_penalty * [row i invalid] (the penalty hits this row only).
    - Group = rows sharing ``batch.group``; mean and **Bessel** std over all its step rows
      (row-weighted: ``compute_mean_std_cross_steps=True``).
    - A_i = (score_i - mean_g) / (std_g + epsilon) if ``norm_adv_by_std`` else score_i - mean_g.
    - One-row group: mean 0, std 1, so A_i = score_i / (1 + epsilon) (or score_i).

    Params: ``invalid_penalty`` (0.1), ``epsilon`` (1e-6), ``norm_adv_by_std`` (True).
    Row order does not matter.
    """
    p = resolve(GRPOParams, params)
    score = episode_scores(batch, p.invalid_penalty)
    return episode_advantage(score, batch.group, p.epsilon, remove_std=not p.norm_adv_by_std)
