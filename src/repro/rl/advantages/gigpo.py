"""GiGPO: episode-level plus anchor-state step-level advantage (reference/agentic-rl.md §3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import (
    Mode,
    StepParams,
    episode_advantage,
    episode_scores,
    normalize_in_segments,
    resolve,
    segments,
    step_returns,
)
from repro.rl.batch import StepBatch


@dataclass(frozen=True)
class GiGPOParams(StepParams):
    mode: Mode = "mean_std_norm"  # ALFWorld scripts of GiGPO and HGPO (§3.3.5)
    step_advantage_w: float = 1.0  # omega, "1.0 in all scripts" (§3.3.5)


@ESTIMATORS.register("gigpo", params=GiGPOParams)
def gigpo_advantage(batch: StepBatch, params: Any = None) -> np.ndarray:
    """GiGPO advantage float64[N]: ``A = A^E + omega * A^S`` (GiGPO paper Eq. 8; §3.3.5), no renormalisation.

    - A^E (Eq. 3; §3.3.2): the GRPO advantage of the penalised episode score, row-weighted group
      statistics, Bessel std, one-row group -> mean 0 / std 1.
    - Step groups (Eq. 6; §3.3.3): rows of one ``group`` with exactly the same ``anchor``, at any
      step of any trajectory (loops included). Exact match only; the similarity mode is not
      implemented.
    - A^S (Eq. 7; §3.3.4) on R = discounted return (``gamma``) minus ``invalid_penalty`` on
      invalid rows (penalty after discounting): (R - mean) / (std + eps) with Bessel std;
      a one-row step group gives A^S = 0.
    - ``mode="mean_norm"`` drops the division by (std + eps) in **both** terms (F_norm = 1).

    Params: ``gamma`` (0.95), ``invalid_penalty`` (0.1), ``epsilon`` (1e-6),
    ``mode`` ("mean_std_norm"), ``step_advantage_w`` omega (1.0).
    Requires trajectory-major chronological rows (``StepBatch.check_order``) for the returns.
    """
    p = resolve(GiGPOParams, params)
    remove_std = p.mode == "mean_norm"
    adv_episode = episode_advantage(episode_scores(batch, p.invalid_penalty), batch.group, p.epsilon, remove_std)
    return adv_episode + float(p.step_advantage_w) * step_advantage(batch, p)


def step_advantage(batch: StepBatch, p: Any) -> np.ndarray:
    """GiGPO's step-level term A^S float64[N] (Eq. 7) for params ``p`` (``gamma``,
    ``invalid_penalty``, ``mode``, ``epsilon`` attributes); 0 in one-row step groups."""
    ret = step_returns(batch, p.gamma, p.invalid_penalty)
    return normalize_in_segments(ret, segments(batch.group, batch.anchor), p.epsilon, p.mode == "mean_norm")
