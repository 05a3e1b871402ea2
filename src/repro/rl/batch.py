"""Flat columnar step batch shared by rollouts, advantage estimators and losses (DESIGN.md §6).

One row per environment step. Rows are trajectory-major and chronological within a trajectory,
which is how the reference ``gather_rollout_data`` lays them out (reference/agentic-rl.md §2.1) and
what discounted returns and HGPO rely on (§3.9 items 1 and 5).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

_INT_COLUMNS = ("group", "traj", "step", "anchor")
#: ``StepBatch.next_anchor`` of a won episode's last step: the success sink (GraphGPO §3.5.2)
SUCCESS = -1
_FLOAT_COLUMNS = ("reward", "episode_reward")


def factorize(strings: Sequence[str]) -> np.ndarray:
    """Integer codes for strings: ``int64[N]``, equal strings <=> equal codes.

    Codes follow first appearance (0, 1, 2, ...), so they are deterministic for a given sequence.
    Identity is the exact full string, as GiGPO's ``build_step_group`` and HGPO's keys use it
    (reference §3.3.3): nothing is normalised.
    """
    index: dict[str, int] = {}
    codes = [index.setdefault(s, len(index)) for s in strings]
    return np.asarray(codes, dtype=np.int64).reshape(len(codes))


def _as_int64(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"StepBatch.{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)  # integral floats (e.g. from a CSV); empty float arrays too
    raise ValueError(f"StepBatch.{name} must hold integers, got dtype {arr.dtype}")


def _as_float64(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"StepBatch.{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iubf":
        raise ValueError(f"StepBatch.{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"StepBatch.{name} must be finite; row {bad} is {arr[bad]}")
    return arr


def _as_bool(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"StepBatch.{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iu" and np.all((arr == 0) | (arr == 1)):
        return arr.astype(bool)
    raise ValueError(f"StepBatch.{name} must be boolean (or 0/1 integers), got dtype {arr.dtype}")


@dataclass
class StepBatch:
    """Flat columnar batch, one row per environment step; rows are trajectory-major and chronological
    within a trajectory (required by returns and HGPO; see :meth:`check_order`).

    All columns have length N. Inputs are coerced to the dtypes below; a wrong shape, a length
    mismatch or an uncoercible dtype raises ``ValueError`` naming the column.
    """

    group: np.ndarray  # int64[N]  group id (rollouts sharing one task / initial state), the "uid"
    traj: np.ndarray  # int64[N]  trajectory id, unique across the batch, the "traj_uid"
    step: np.ndarray  # int64[N]  0-based step index within its trajectory
    anchor: np.ndarray  # int64[N]  code of the raw env observation at this step (equal strings <=> equal codes)
    reward: np.ndarray  # float64[N] per-step env reward (ALFWorld: 10 on the winning step, else 0)
    episode_reward: np.ndarray  # float64[N] the trajectory's summed env reward, repeated on its rows
    valid: np.ndarray  # bool[N]   action parsed validly (invalid rows get the penalty, §2.4)
    agent: np.ndarray | None = None  # int64[N] agent id (multi-agent studies; None = single agent)
    #: int64[N] code of the state the step led to (same codes as ``anchor``; the next row's anchor
    #: within a trajectory), ``SUCCESS`` after a won episode's last step; None when not recorded
    next_anchor: np.ndarray | None = None
    #: the key string of each code (``anchor_text[code]``), kept where an estimator compares
    #: keys by similarity; None when not kept
    anchor_text: Sequence[str] | None = None

    def __post_init__(self) -> None:
        for name in _INT_COLUMNS:
            setattr(self, name, _as_int64(name, getattr(self, name)))
        for name in _FLOAT_COLUMNS:
            setattr(self, name, _as_float64(name, getattr(self, name)))
        self.valid = _as_bool("valid", self.valid)
        if self.agent is not None:
            self.agent = _as_int64("agent", self.agent)
        if self.next_anchor is not None:
            self.next_anchor = _as_int64("next_anchor", self.next_anchor)
        n = len(self.group)
        for f in fields(self):
            col = getattr(self, f.name)
            if col is not None and f.name != "anchor_text" and len(col) != n:
                raise ValueError(f"StepBatch.{f.name} has {len(col)} rows but StepBatch.group has {n}")
        if n and self.step.min() < 0:
            raise ValueError(f"StepBatch.step must be >= 0; row {int(np.argmin(self.step))} is {self.step.min()}")

    @classmethod
    def from_anchor_strings(
        cls,
        *,
        group: Sequence[int] | np.ndarray,
        traj: Sequence[int] | np.ndarray,
        step: Sequence[int] | np.ndarray,
        anchor_obs: Sequence[str],
        reward: Sequence[float] | np.ndarray,
        episode_reward: Sequence[float] | np.ndarray,
        valid: Sequence[bool] | np.ndarray,
        agent: Sequence[int] | np.ndarray | None = None,
        next_obs: Sequence[str | None] | None = None,
        keep_text: bool = False,
    ) -> "StepBatch":
        """Build a batch from anchor key strings (factorised with :func:`factorize`); ``next_obs``
        (the key after each step, None = the success sink) gives ``next_anchor`` in the same codes;
        ``keep_text`` keeps the strings (``anchor_text``)."""
        n = len(anchor_obs)
        nexts = [] if next_obs is None else [s for s in next_obs if s is not None]
        codes = factorize(list(anchor_obs) + nexts)  # anchors first: their codes do not depend on nexts
        next_anchor = None
        if next_obs is not None:
            next_anchor = np.full(len(next_obs), SUCCESS, dtype=np.int64)
            next_anchor[np.flatnonzero([s is not None for s in next_obs])] = codes[n:]
        text = None
        if keep_text:
            text = [""] * (int(codes.max()) + 1 if len(codes) else 0)
            for s, c in zip(list(anchor_obs) + nexts, codes.tolist()):
                text[c] = s
        return cls(
            group=group,
            traj=traj,
            step=step,
            anchor=codes[:n],
            reward=reward,
            episode_reward=episode_reward,
            valid=valid,
            agent=agent,
            next_anchor=next_anchor,
            anchor_text=text,
        )

    def __len__(self) -> int:
        return len(self.group)

    def check_order(self) -> None:
        """Raise ``ValueError`` unless rows are trajectory-major and chronological.

        Requires: each trajectory's rows are contiguous, its ``step`` column reads 0, 1, ..., T-1 in
        row order, and it belongs to a single group. O(N), vectorised.
        """
        n = len(self)
        if n == 0:
            return
        starts = np.flatnonzero(np.r_[True, self.traj[1:] != self.traj[:-1]])  # first row of each run
        run_traj = self.traj[starts]
        if len(np.unique(run_traj)) != len(run_traj):
            counts = np.unique(run_traj, return_counts=True)
            bad = counts[0][np.argmax(counts[1] > 1)]
            raise ValueError(f"rows of trajectory {bad} are not contiguous (StepBatch.traj must be trajectory-major)")
        run_len = np.diff(np.r_[starts, n])
        position = np.arange(n) - np.repeat(starts, run_len)  # 0-based row position within its run
        wrong = np.flatnonzero(self.step != position)
        if wrong.size:
            i = int(wrong[0])
            raise ValueError(
                f"StepBatch.step is not chronological: row {i} of trajectory {self.traj[i]} has step "
                f"{self.step[i]} but is at position {position[i]} of its trajectory"
            )
        mixed = np.flatnonzero(self.group != np.repeat(self.group[starts], run_len))
        if mixed.size:
            i = int(mixed[0])
            raise ValueError(f"trajectory {self.traj[i]} spans several groups (StepBatch.group)")
