"""HGPO: hierarchical history-context groups with length-weighted aggregation (reference/agentic-rl.md §3.4).

The reference (``recipe/hgpo/core_hgpo.py``) builds a dict key per (trajectory, step, level) and
aggregates per row in Python. Here each level is one exact integer key per row, built from the
previous level's key and one shifted anchor code, and the aggregation is a masked weighted sum
over an implicit N x (K+2) item matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import (
    Mode,
    Segments,
    StepParams,
    centered,
    combine_codes,
    dense_codes,
    episode_advantage,
    episode_scores,
    resolve,
    segment_std,
    step_returns,
)
from repro.rl.batch import StepBatch

_WEIGHT_EPS = 1e-6  # "w_i = w_raw,i / (sum_j w_raw,j + 1e-6)" (§3.4.3), independent of params["epsilon"]


@dataclass(frozen=True)
class HGPOParams(StepParams):
    mode: Mode = "mean_std_norm"  # HGPO ALFWorld scripts (§3.4.4)
    history_length: int = 2  # K, ALFWorld "2 (comment: 2 or 4)" (§3.4.4); from train.history_length
    length_weight_alpha: float = 1.0  # alpha (§3.4.4)
    base_group: bool = False  # level-0 episode item, off by default (§3.4.1 item 5)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.history_length < 0:
            raise ValueError(f"history_length must be an integer >= 0, got {self.history_length!r}")


@ESTIMATORS.register("hgpo", params=HGPOParams)
def hgpo_advantage(batch: StepBatch, params: Any = None) -> np.ndarray:
    """HGPO advantage float64[N] (``compute_hgpo_outcome_advantage``; §3.4, §3.9 item 5).

    - R = discounted return (``gamma``) minus ``invalid_penalty`` on invalid rows, per row.
    - Level k = 1 .. K+1 (K = ``history_length``), inside one ``group``: the row at step t takes
      part only if t >= k - 1, with key (o_{t-k+1}, ..., o_t), the last k anchors ending at t
      (§3.4.1). Clusters span trajectories and time steps.
    - Per cluster of >= 2 members: a = (R - mu) / (sigma + eps) with the **population** sigma
      (``mean_std_norm``), or R - mu (``mean_norm``). A cluster of one gives no item (§3.4.2).
    - Optional level 0 (``base_group``): the episode advantage of the penalised episode score
      (row-weighted, Bessel std, singleton -> mean 0 / std 1), without std when ``mean_norm``.
    - Aggregation (§3.4.3): items with a == 0 exactly are dropped; weight (k+1)^alpha;
      A = sum_i w_i a_i / (sum_i w_i + 1e-6); a row with no item gets 0.

    Params: ``gamma`` (0.95), ``invalid_penalty`` (0.1), ``epsilon`` (1e-6), ``mode``
    ("mean_std_norm"), ``history_length`` K (2), ``length_weight_alpha`` alpha (1.0),
    ``base_group`` (False). Requires trajectory-major chronological rows (checked).
    """
    p = resolve(HGPOParams, params)
    remove_std = p.mode == "mean_norm"
    eps = p.epsilon
    alpha = float(p.length_weight_alpha)
    n = len(batch)
    ret = step_returns(batch, p.gamma, p.invalid_penalty)  # also checks the row order

    weighted = np.zeros(n)  # sum_i w_raw,i * a_i per row
    weight = np.zeros(n)  # sum_i w_raw,i per row

    def add_items(rows: np.ndarray, adv: np.ndarray, keep: np.ndarray, level: int) -> None:
        w = float(level + 1) ** alpha
        keep &= adv != 0.0  # "drop every item whose advantage is exactly 0"
        weighted[rows[keep]] += w * adv[keep]
        weight[rows[keep]] += w

    if p.base_group:  # level 0: the trajectory-level (episode) item, §3.4.1 item 5
        adv0 = episode_advantage(episode_scores(batch, p.invalid_penalty), batch.group, eps, remove_std)
        add_items(np.arange(n), adv0, np.ones(n, dtype=bool), level=0)

    anchor, n_anchor = dense_codes(batch.anchor)
    rows = np.arange(n)  # rows taking part at the current level (step >= k - 1)
    key, n_key = dense_codes(batch.group)  # level "0" key: the group alone
    for k in range(1, int(p.history_length) + 2):
        if k > 1:
            deep = batch.step[rows] >= k - 1
            rows, key = rows[deep], key[deep]
        # key_k(t) = (key_{k-1}(t), o_{t-k+1}) = (group, o_{t-k+1}, ..., o_t); row t-k+1 is in the
        # same trajectory because rows are contiguous and step >= k - 1.
        key, n_key = combine_codes(key, n_key, anchor[rows - (k - 1)], n_anchor)
        seg = Segments(key, np.bincount(key, minlength=n_key))
        adv = centered(ret[rows], seg)
        if not remove_std:
            adv /= segment_std(adv, seg, ddof=0)[key] + eps
        add_items(rows, adv, seg.count[key] >= 2, level=k)

    out = np.zeros(n)
    has = weight > 0
    out[has] = weighted[has] / (weight[has] + _WEIGHT_EPS)
    return out
