"""Segment operations and shared pieces of the group-relative estimators.

Everything is vectorised over rows: segments (groups, step groups, HGPO clusters) become dense
integer ids through ``np.unique(return_inverse=True)``, and per-segment counts, sums and sums of
squared deviations come from ``np.bincount``. Multi-column keys are combined by exact mixed-radix
packing of dense codes (no hashing, so no collisions). Semantics follow reference/agentic-rl.md
§3.9; section numbers below refer to that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from repro.rl.batch import StepBatch

#: keys every estimator reads that the trainer supplies from its own config (``train.<key>``), so
#: they are not a method's params: ``repro.rl.family`` refuses them there
TRAINER_KEYS = ("gamma", "invalid_penalty", "history_length")


@dataclass(frozen=True)
class StepParams:
    """What every estimator reads (reference §3.3.1, §2.4, §3.9): each estimator's own ``Params``
    extends it with its keys and defaults."""

    gamma: float = 0.95  # "algorithm.gamma = 0.95 in the GiGPO and HGPO scripts" (§3.3.1); from train.gamma
    invalid_penalty: float = 0.1  # "invalid_action_penalty_coef=0.1" (§2.4); from train.invalid_penalty
    epsilon: float = 1e-6  # added to every std (§3.9 items 3 and 6)

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not self.epsilon > 0.0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon!r}")


Mode = Literal["mean_std_norm", "mean_norm"]  # with or without the division by (std + eps)


def resolve(cls: type, params: Any) -> Any:
    """``params`` (a mapping, an instance of ``cls`` or None) as ``cls``; unknown keys and bad
    values raise ``ValueError`` naming the key and what is allowed."""
    from repro.config import check_dataclass  # ConfigError is a ValueError

    if isinstance(params, cls):
        return params
    return check_dataclass(cls, dict(params or {}), f"{cls.__name__}")


# --- segments ---------------------------------------------------------------------------------


def dense_codes(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes of an int64[N] key: (codes int64[N] in [0, S), S = number of distinct values)."""
    uniq, inv = np.unique(x, return_inverse=True)
    return inv.reshape(-1).astype(np.int64, copy=False), len(uniq)


def combine_codes(a: np.ndarray, n_a: int, b: np.ndarray, n_b: int) -> tuple[np.ndarray, int]:
    """Dense code of the pair (a, b) for dense codes a in [0, n_a), b in [0, n_b); exact.

    ``a * n_b + b`` is a bijection of [0, n_a) x [0, n_b) onto [0, n_a * n_b); with n_a, n_b <= N
    it fits int64 for N < 3e9, so distinct pairs never collide.
    """
    if n_a * n_b >= 2**63:
        raise OverflowError(f"key space {n_a} x {n_b} does not fit int64")
    return dense_codes(a * np.int64(n_b) + b)


@dataclass(frozen=True)
class Segments:
    """Partition of rows into segments: ``ids`` int64[N] in [0, n), ``count`` int64[n]."""

    ids: np.ndarray
    count: np.ndarray

    @property
    def n(self) -> int:
        return len(self.count)


def segments(*keys: np.ndarray) -> Segments:
    """Segments of rows sharing every key column (each int64[N]); exact, order-independent."""
    ids, n = dense_codes(np.asarray(keys[0], dtype=np.int64))
    for key in keys[1:]:
        codes, n_key = dense_codes(np.asarray(key, dtype=np.int64))
        ids, n = combine_codes(ids, n, codes, n_key)
    return Segments(ids, np.bincount(ids, minlength=n))


def centered(x: np.ndarray, seg: Segments) -> np.ndarray:
    """Deviation from the segment mean, ``x - mean[seg]``: float64[N].

    Means are ``bincount`` sums (row order) over counts. In a segment whose values are all equal
    the deviation is set to exactly 0, so that "sigma = 0 => a = 0" (§3.4.3) holds without
    round-off (a mean of equal floats need not round back to the value).
    """
    mean = np.bincount(seg.ids, weights=x, minlength=seg.n) / np.maximum(seg.count, 1)
    dev = x - mean[seg.ids]
    representative = np.empty(seg.n)
    representative[seg.ids] = x  # any member's value; which one wins does not matter
    varies = np.bincount(seg.ids, weights=(x != representative[seg.ids]), minlength=seg.n) > 0
    dev[~varies[seg.ids]] = 0.0
    return dev


def segment_std(dev: np.ndarray, seg: Segments, ddof: int) -> np.ndarray:
    """Per-segment std from deviations: float64[n]; ddof=1 Bessel, ddof=0 population.

    Segments with ``count <= ddof`` get std 1 (the reference's singleton convention; callers
    override those rows anyway).
    """
    ss = np.bincount(seg.ids, weights=dev * dev, minlength=seg.n)
    denom = seg.count - ddof
    std = np.ones(seg.n)
    ok = denom > 0
    std[ok] = np.sqrt(ss[ok] / denom[ok])
    return std


def normalize_in_segments(x: np.ndarray, seg: Segments, epsilon: float, remove_std: bool) -> np.ndarray:
    """``(x - mean) / (std + eps)`` per segment, Bessel std (``x - mean`` when ``remove_std``):
    float64[N]; exactly 0 in one-row segments (GiGPO's step groups, §3.3.4; GraphGPO's edge groups)."""
    dev = centered(x, seg)
    if not remove_std:
        dev /= segment_std(dev, seg, ddof=1)[seg.ids] + epsilon
    return dev


# --- returns and scores -----------------------------------------------------------------------


def discounted_returns(reward: np.ndarray, traj: np.ndarray, gamma: float) -> np.ndarray:
    """Per-step discounted return within each trajectory: float64[N] (§3.3.1, GiGPO Eq. for R_t).

    ``R_t = r_t + gamma * R_{t+1}``, backwards from each trajectory's last row, taking a
    trajectory's rows in batch order (which must be chronological). Rows of one trajectory need
    not be contiguous. Vectorised: a stable sort brings trajectories together, then one numpy
    update per distance-to-end d = 1 .. max T - 1 runs over all trajectories at once (O(N) work,
    O(max T) numpy calls), with the same arithmetic as the scalar recursion.
    """
    reward = np.asarray(reward, dtype=np.float64)
    traj = np.asarray(traj, dtype=np.int64)
    if reward.shape != traj.shape or reward.ndim != 1:
        raise ValueError(f"reward {reward.shape} and traj {traj.shape} must be 1-D of equal length")
    n = len(reward)
    if n == 0:
        return np.zeros(0)
    order = np.argsort(traj, kind="stable")
    t = traj[order]
    r = reward[order]
    last = np.flatnonzero(np.r_[t[1:] != t[:-1], True])  # last sorted row of each trajectory
    run = np.repeat(np.arange(len(last)), np.diff(np.r_[-1, last]))
    to_end = last[run] - np.arange(n)  # 0 on a trajectory's last row
    by_distance = np.argsort(to_end, kind="stable")
    bounds = np.cumsum(np.bincount(to_end))
    ret = r.copy()  # to_end == 0: R = r
    for d in range(1, len(bounds)):
        rows = by_distance[bounds[d - 1] : bounds[d]]
        ret[rows] = r[rows] + gamma * ret[rows + 1]
    out = np.empty(n)
    out[order] = ret
    return out


def step_returns(batch: StepBatch, gamma: float, invalid_penalty: float) -> np.ndarray:
    """Penalised step returns float64[N]: discounted return, then ``- penalty`` on invalid rows.

    The penalty comes after discounting, so it stays local to its step (§2.4, §3.9 item 2).
    Checks the row order first (:meth:`StepBatch.check_order`).
    """
    batch.check_order()
    return discounted_returns(batch.reward, batch.traj, gamma) - invalid_penalty * ~batch.valid


def episode_scores(batch: StepBatch, invalid_penalty: float) -> np.ndarray:
    """Per-row episode score float64[N]: ``episode_reward - penalty * invalid`` of that row only (§3.1)."""
    return batch.episode_reward - invalid_penalty * ~batch.valid


def episode_advantage(score: np.ndarray, group: np.ndarray, epsilon: float, remove_std: bool) -> np.ndarray:
    """Group-normalised episode score float64[N] (GRPO §3.1 = GiGPO ``episode_norm_reward`` §3.3.2).

    Statistics over all rows of a group (row-weighted), Bessel std; ``(score - mean) / (std + eps)``,
    or ``score - mean`` when ``remove_std``. A one-row group uses mean 0 and std 1, so its
    advantage is ``score / (1 + eps)`` (or ``score``).
    """
    seg = segments(group)
    dev = centered(score, seg)
    single = seg.count[seg.ids] == 1
    dev[single] = score[single]  # mean 0
    if remove_std:
        return dev
    std = segment_std(dev, seg, ddof=1)  # singletons get std 1
    return dev / (std[seg.ids] + epsilon)
