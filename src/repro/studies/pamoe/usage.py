"""How experts were used on a rollout: switches per episode and each expert's share of the steps,
overall and per task type (PA-MoE's routing metrics, agentic-rl.md §3.8.1, §6.9)."""

from __future__ import annotations

import numpy as np


def switches(choice: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Per episode (in order of first appearance; rows of one episode contiguous and in order):
    how many consecutive rows change choice. ``choice``, ``episode`` [N] -> float[E]."""
    if len(choice) == 0:
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    changed = np.r_[False, (choice[1:] != choice[:-1]) & (episode[1:] == episode[:-1])]
    return np.add.reduceat(changed.astype(float), starts)


def expert_usage(agent: np.ndarray, episode: np.ndarray, experts: int, task_type: np.ndarray | None = None) -> dict:
    """``agent`` [N] the expert of each step row, ``episode`` [N] its trajectory, ``task_type``
    [N] (optional) its task type: switches per episode (mean) and expert shares [K]."""
    agent = np.asarray(agent, dtype=np.int64)

    def share(sel: np.ndarray) -> list[float]:
        counts = np.bincount(agent[sel], minlength=experts)[:experts]
        return (counts / max(counts.sum(), 1)).round(4).tolist()

    every = np.ones(len(agent), dtype=bool)
    out = {"switches_per_episode": float(switches(agent, np.asarray(episode)).mean()) if len(agent) else 0.0,
           "share": share(every)}
    if task_type is not None:
        out["share_by_task_type"] = {str(t): share(task_type == t) for t in sorted(set(task_type.tolist()))}
    return out
