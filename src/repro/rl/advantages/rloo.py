"""RLOO outcome advantage, per step row (reference/agentic-rl.md §3.2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import StepParams, centered, episode_scores, resolve, segments
from repro.rl.batch import StepBatch


@ESTIMATORS.register("rloo", params=StepParams)
def rloo_advantage(batch: StepBatch, params: Any = None) -> np.ndarray:
    """RLOO advantage float64[N] (verl ``compute_rloo_outcome_advantage``, leave-one-out baseline).

    - score_i = episode_reward_i - invalid_penalty * [row i invalid], as for GRPO.
    - n = number of **rows** in the group; A_i = n / (n - 1) * (score_i - mean_g), which equals
      score_i minus the mean of the other n - 1 rows.
    - One-row group (n = 1): A_i = 0. *Deliberate deviation*: verl keeps the raw score there
      (its mean is set to 0 and no rescaling happens); with no other sample there is no
      leave-one-out baseline, so 0 is the consistent value.

    Params: ``invalid_penalty`` (0.1). Row order does not matter.
    """
    p = resolve(StepParams, params)
    score = episode_scores(batch, p.invalid_penalty)
    seg = segments(batch.group)
    n = seg.count[seg.ids].astype(np.float64)
    scale = np.divide(n, n - 1.0, out=np.zeros_like(n), where=n > 1)
    return scale * centered(score, seg)
