"""PA-MoE's training diagnostic ``task_shares`` (``registry.DIAGNOSTICS``): each task type's share
of the iteration's step rows (what the update's gradient is made of). The paper's Fig. 1 "parameter
occupancy" of a category is the fraction of training batches it makes up more than 50% of
(agentic-rl.md §3.8.1: pick_and_place 75%, heat/cool/clean 5%); the figure computes it from these
columns. [I] The caption does not say whether a batch is counted in episodes or steps: rows here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repro import registry
from repro.envs.alfworld import TASK_TYPES


@dataclass(frozen=True)
class TaskSharesParams:
    task_types: list[str] = field(default_factory=lambda: list(TASK_TYPES.values()))


COLUMNS = tuple(f"share/{t}" for t in TASK_TYPES.values())


@registry.DIAGNOSTICS.register("task_shares", params=TaskSharesParams, columns=COLUMNS)
def task_shares(rollout, params: TaskSharesParams) -> dict[str, float]:
    """Share of the rollout's step rows per task type (ALFWorld's six columns)."""
    rows = np.repeat(np.asarray(rollout.task_types, dtype=object), rollout.lengths)
    n = max(len(rows), 1)
    return {f"share/{t}": float((rows == t).sum() / n) for t in params.task_types}
