"""PPO's GAE advantage per step row, from a critic's token values (reference/agentic-rl.md §3.2).

verl-agent's PPO baseline (``adv_estimator=gae``) treats every step row as its own sequence: the
row's score (episode reward minus the invalid-action penalty of that row, as GRPO's, §2.4-2.5) is
the reward of its last response token, every other token's reward is 0, and the value after the
last token is 0. Token-level GAE (verl ``compute_gae_advantage_return``) then gives

    delta_t = r_t + gamma * V_{t+1} - V_t,   A_t = delta_t + gamma * lam * A_{t+1},   R_t = A_t + V_t

and the advantages are whitened over all response tokens of the batch (``masked_whiten``, Bessel
variance). With the reference's gamma = lam = 1 this is A_t = score - V_t before whitening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import StepParams, episode_scores, resolve
from repro.rl.batch import StepBatch


def pad_rows(rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D float rows: (values float64[N, T], mask bool[N, T]); T = longest row (>= 1)."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = max(int(lengths.max(initial=0)), 1)
    mask = np.arange(width)[None, :] < lengths[:, None]
    out = np.zeros((len(rows), width))
    out[mask] = np.concatenate([np.asarray(r, dtype=np.float64) for r in rows]) if len(rows) else []
    return out, mask


def gae(rewards: np.ndarray, values: np.ndarray, mask: np.ndarray, gamma: float, lam: float
        ) -> tuple[np.ndarray, np.ndarray]:
    """Token-level GAE over right-padded rows: (advantages, returns), both float64[N, T].

    ``rewards``, ``values``: float64[N, T], zero outside ``mask`` (bool[N, T]); a row's sequence
    ends at its last masked token (next value 0). One numpy update per token position, over all
    rows at once. Advantages are not whitened here; padding positions are 0.
    """
    r = np.where(mask, rewards, 0.0)
    v = np.where(mask, values, 0.0)
    adv = np.zeros_like(r)
    running = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        next_v = v[:, t + 1] if t + 1 < r.shape[1] else 0.0
        delta = r[:, t] + gamma * next_v - v[:, t]
        running = np.where(mask[:, t], delta + gamma * lam * running, 0.0)
        adv[:, t] = running
    return adv, np.where(mask, adv + v, 0.0)


def masked_whiten(x: np.ndarray, mask: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) over masked entries, Bessel variance (verl ``masked_whiten``)."""
    vals = x[mask]
    if vals.size < 2:
        return np.where(mask, x - vals.mean() if vals.size else x, 0.0)
    out = (x - vals.mean()) / np.sqrt(vals.var(ddof=1) + eps)
    return np.where(mask, out, 0.0)


@dataclass(frozen=True)
class GAEParams(StepParams):
    gae_gamma: float = 1.0  # token-level GAE, "gamma = lambda = 1 by default" (verl; §3.2)
    gae_lambda: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("gae_gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


@ESTIMATORS.register("gae", params=GAEParams)
def gae_advantage(batch: StepBatch, params: Any = None, *,
                  values: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-token (advantages, returns) for N step rows: two lists of float64[L_i].

    ``values[i]``: the critic's value of each of row i's L_i response tokens (the state before the
    token). Params: ``invalid_penalty`` (0.1), ``gae_gamma`` (1.0), ``gae_lambda`` (1.0).
    """
    p = resolve(GAEParams, params)
    if len(values) != len(batch):
        raise ValueError(f"values has {len(values)} rows, the batch {len(batch)}")
    v, mask = pad_rows(values)
    score = episode_scores(batch, p.invalid_penalty)
    rewards = np.zeros_like(v)
    lengths = mask.sum(1)
    has = lengths > 0
    rewards[np.flatnonzero(has), lengths[has] - 1] = score[has]  # reward on the last token
    adv, ret = gae(rewards, v, mask, p.gae_gamma, p.gae_lambda)
    adv = masked_whiten(adv, mask)
    return [adv[i, :n] for i, n in enumerate(lengths)], [ret[i, :n] for i, n in enumerate(lengths)]


gae_advantage.needs_values = True  # type: ignore[attr-defined]  # the trainer runs a critic for it
