"""GraphGPO's training diagnostic ``graph_progress`` (``registry.DIAGNOSTICS``): the paper's
motivating statistics measured on each iteration's rollout batch (agentic-rl.md §3.5.1).

A step makes progress when it leaves the agent closer to success in its task's graph,
d(s') < d(s) (:func:`repro.studies.graphgpo.estimator.distances`, with the run's GraphGPO params:
similarity merge and all). Trajectory-level credit gives every step of a failed episode the same
blame and every step of a won one the same praise; the paper counts how wrong that is (ALFWorld,
its own rollouts: 22.0% of the steps in failed trajectories make progress, 65.3% of the steps in
successful ones do not [S]). Only groups with at least one success count: without one there is no
distance (every d is 1) and no step can make progress. Columns (NaN when there are no such steps):

- ``graph/progress_in_failed``: share of steps of failed trajectories with d(s') < d(s);
- ``graph/nonprogress_in_successful``: share of steps of won trajectories with d(s') >= d(s);
- ``graph/nodes_per_group``: mean number of distinct states per group (how much the graph merges).
"""

from __future__ import annotations

import numpy as np

from repro import registry
from repro.rl.advantages.common import segments
from repro.rl.batch import SUCCESS, StepBatch
from repro.studies.graphgpo.estimator import GraphGPOParams, distances

COLUMNS = ("graph/progress_in_failed", "graph/nonprogress_in_successful", "graph/nodes_per_group")


def progress_statistics(batch: StepBatch, params=None) -> dict[str, float]:
    """The three columns for one batch (``params``: ``GraphGPOParams`` or a mapping of them)."""
    nan = float("nan")
    if len(batch) == 0:
        return dict.fromkeys(COLUMNS, nan)
    d, d_next = distances(batch, params)
    won_row = np.zeros(len(batch), dtype=bool)
    won_traj = np.unique(batch.traj[batch.next_anchor == SUCCESS])
    won_row[np.isin(batch.traj, won_traj)] = True
    has_success = np.isin(batch.group, np.unique(batch.group[won_row]))
    progress = d_next < d
    failed, succeeded = has_success & ~won_row, won_row

    def share(mask: np.ndarray) -> float:
        return float(mask.mean()) if mask.size else nan

    groups = segments(batch.group)
    states = segments(batch.group, batch.anchor)
    return {"graph/progress_in_failed": share(progress[failed]),
            "graph/nonprogress_in_successful": share(~progress[succeeded]),
            "graph/nodes_per_group": states.n / groups.n}


@registry.DIAGNOSTICS.register("graph_progress", params=GraphGPOParams, columns=COLUMNS)
def graph_progress(rollout, params: GraphGPOParams) -> dict[str, float]:
    """The hook: :func:`progress_statistics` of the rollout's step rows."""
    return progress_statistics(rollout.batch, params)
