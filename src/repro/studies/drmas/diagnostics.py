"""Dr. MAS's training diagnostic ``agent_moments`` (``registry.DIAGNOSTICS``): on every iteration's
batch, each agent's advantage second moment E_k[A²] under global normalisation and under Dr. MAS's
agent-wise one, whichever the run trains with.

Lemma 4.2 of the paper: under global (μ, σ) an agent's gradient second moment scales with
E_k[A²] = (σ_k² + (μ_k − μ)²) / σ², which grows without bound when the agent's rewards sit away
from the group's or spread more (Proposition 4.3); agent-wise statistics hold it at about 1. So
the global column is the paper's predicted inflation on our own rollouts: where it stays near 1
for every agent, the theory predicts no difference between the two normalisations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from repro import registry
from repro.studies.drmas.estimator import DrMASParams, drmas_advantage

MAX_AGENTS = 3  # the search team's; the math team has 2
COLUMNS = tuple(f"moment/{mode}/agent{k}" for mode in ("global", "agent") for k in range(MAX_AGENTS))


@registry.DIAGNOSTICS.register("agent_moments", params=DrMASParams, columns=COLUMNS)
def agent_moments(rollout, params: DrMASParams) -> dict[str, float]:
    """``moment/<global|agent>/agent<k>``: the mean squared advantage over agent k's rows."""
    b = rollout.batch
    agent = b.agent if b.agent is not None else np.zeros(len(b), dtype=np.int64)
    count = np.bincount(agent, minlength=MAX_AGENTS)
    out = {}
    for mode in ("global", "agent"):
        a = drmas_advantage(b, replace(params, norm=mode))
        m2 = np.bincount(agent, weights=a * a, minlength=MAX_AGENTS) / np.maximum(count, 1)
        out.update({f"moment/{mode}/agent{k}": float(m2[k]) for k in range(MAX_AGENTS) if count[k]})
    return out
