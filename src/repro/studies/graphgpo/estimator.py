"""GraphGPO: credit from a state-transition graph of all rollouts of a task (agentic-rl.md §3.5).

Per task group the rollouts' transitions s -> s' form one graph (every occurrence an edge of cost
1; a won episode's last transition leads into a success sink). A state's distance d(s) is its
shortest path to the sink; a state that cannot reach it gets d_max + 1 (d_max: the group's largest
finite distance), so a group without a success has d = 1 everywhere. An edge earns
``R = 10 * omega^e`` minus the invalid-action penalty, with the exponent ``e`` one of

- ``code``: d(s') (the released ``compute_graph_path_returns``, ``normalize_distance=False``),
- ``paper``: d(s') + c(s, a), c = 1 (the paper's Eq. 4 as reported),
- ``normalized``: d(s') - d(s) + 1 (the code's ``normalize_distance=True``),

and is normalised among the edges leaving the same state (A^G, Bessel std, one edge -> 0). The
advantage is ``beta_G * A^G + beta_E * A^E`` with A^E GRPO's episode advantage over all step rows
(GiGPO's ``episode_norm_reward``). Within one state's edges d(s) is fixed, so the three exponents
differ by a constant factor and agree under ``mean_std_norm`` exactly only with epsilon = 0 and no
invalid step in the group (tests/studies/graphgpo; §3.5.2 "Equivalence").

Vectorised: the graphs of all groups are one block-diagonal sparse graph whose groups share a
single sink (a path cannot cross groups: the sink has no outgoing edge), so one breadth-first
search from the sink over the reversed edges (``scipy.sparse.csgraph``) gives every distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal

import numpy as np

from repro.registry import ESTIMATORS
from repro.rl.advantages.common import (
    Mode,
    StepParams,
    combine_codes,
    dense_codes,
    episode_advantage,
    episode_scores,
    normalize_in_segments,
    resolve,
    segments,
)
from repro.rl.batch import SUCCESS, StepBatch


@dataclass(frozen=True)
class GraphGPOParams(StepParams):
    """``train.gamma`` (the discount of other estimators) is not read: GraphGPO's code calls omega
    ``algorithm.gamma`` (§3.5.2 item 3); here it is ``omega``."""

    omega: float = 0.1  # ALFWorld scripts: algorithm.gamma=0.10 (WebShop 0.20; §4.3)
    step_advantage_w: float = 1.0  # beta^G (§4.3)
    episode_advantage_w: float = 1.0  # beta^E (§4.3)
    mode: Mode = "mean_std_norm"  # every GraphGPO script (§4.3)
    exponent: Literal["code", "paper", "normalized"] = "code"  # normalize_distance=False (§4.3)
    similarity: bool = False  # merge graph nodes whose keys are >= similarity_thresh alike (§3.5.4)
    similarity_thresh: float = 0.95
    success_reward: float = 10.0  # r_succ, ALFWorld's win reward (§3.5.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.omega < 1.0:
            raise ValueError(f"omega must be in (0, 1), got {self.omega!r}")
        if not 0.0 < self.similarity_thresh <= 1.0:
            raise ValueError(f"similarity_thresh must be in (0, 1], got {self.similarity_thresh!r}")


def merge_similar(batch: StepBatch, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Node codes (anchor, next) int64[N] with similar keys merged within each group: a key joins
    the first cluster whose representative (its first key) has ``SequenceMatcher`` ratio >=
    ``thresh``, visiting keys in order of first appearance (row order, each row's anchor before
    its next state), as the released ``StateCanonicalizer``. Needs ``batch.anchor_text``."""
    if batch.anchor_text is None:
        raise ValueError("GraphGPO similarity=true needs the key strings (StepBatch.anchor_text)")
    text = batch.anchor_text
    anchor, nxt = batch.anchor.copy(), batch.next_anchor.copy()
    order = np.argsort(batch.group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, batch.group[order][1:] != batch.group[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rows = order[lo:hi]
        seq = np.stack([batch.anchor[rows], batch.next_anchor[rows]], 1).ravel()
        seq = seq[seq != SUCCESS]
        codes, first = np.unique(seq, return_index=True)
        canon: dict[int, int] = {}
        reps: list[int] = []
        for c in codes[np.argsort(first)].tolist():
            canon[c] = next((r for r in reps if SequenceMatcher(None, text[c], text[r]).ratio() >= thresh), c)
            if canon[c] == c:
                reps.append(c)
        lookup = np.vectorize(canon.__getitem__, otypes=[np.int64])
        anchor[rows] = lookup(batch.anchor[rows])
        keep = batch.next_anchor[rows] != SUCCESS
        nxt[rows[keep]] = lookup(batch.next_anchor[rows][keep])
    return anchor, nxt


def distances(batch: StepBatch, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(d(s), d(s')) float64[N] per step row: shortest distances to the group's success sink in the
    graph of the group's transitions (cost 1 each); unreachable = the group's d_max + 1; s' = sink
    has d = 0. Needs ``batch.next_anchor`` (recorded by the rollout)."""
    from scipy.sparse import csr_matrix  # scipy when training: the workflow parses without it
    from scipy.sparse.csgraph import shortest_path

    p = resolve(GraphGPOParams, params)
    if batch.next_anchor is None:
        raise ValueError("GraphGPO needs the state after each step (StepBatch.next_anchor); "
                         "the multi_turn rollout records it")
    n = len(batch)
    anchor, nxt = merge_similar(batch, p.similarity_thresh) if p.similarity else (batch.anchor, batch.next_anchor)
    group, n_group = dense_codes(batch.group)
    to_sink = nxt == SUCCESS
    # nodes: distinct (group, key) pairs over the anchors and the non-sink next states; sink = V
    keys, n_keys = dense_codes(np.r_[anchor, nxt[~to_sink]])
    node, n_node = combine_codes(np.r_[group, group[~to_sink]], n_group, keys, n_keys)
    src = node[:n]
    dst = np.full(n, n_node, dtype=np.int64)
    dst[~to_sink] = node[n:]
    reverse = csr_matrix((np.ones(n), (dst, src)), shape=(n_node + 1, n_node + 1))
    dist = shortest_path(reverse, method="D", directed=True, unweighted=True, indices=n_node)
    node_group = np.zeros(n_node + 1, dtype=np.int64)
    node_group[src] = group
    node_group[dst[~to_sink]] = group[~to_sink]
    finite = np.isfinite(dist[:n_node])
    d_max = np.zeros(n_group)
    np.maximum.at(d_max, node_group[:n_node][finite], dist[:n_node][finite])
    dist[:n_node][~finite] = d_max[node_group[:n_node][~finite]] + 1.0
    return dist[src], dist[dst]


def graph_rewards(batch: StepBatch, params: Any = None) -> np.ndarray:
    """Edge reward float64[N]: ``success_reward * omega^e`` (``exponent``) minus the penalty on invalid rows."""
    p = resolve(GraphGPOParams, params)
    d, d_next = distances(batch, p)
    e = {"code": d_next, "paper": d_next + 1.0, "normalized": d_next - d + 1.0}[p.exponent]
    return p.success_reward * np.power(p.omega, e) - p.invalid_penalty * ~batch.valid


@ESTIMATORS.register("graphgpo", params=GraphGPOParams)
def graphgpo_advantage(batch: StepBatch, params: Any = None) -> np.ndarray:
    """GraphGPO advantage float64[N]: ``beta_G * A^G + beta_E * A^E`` (§3.5.2 item 5).

    A^G: the edge rewards (:func:`graph_rewards`) normalised among the rows of one group with the
    same anchor, exact key match (the code's ``build_step_group``; the similarity merge acts on the
    graph's nodes only), Bessel std + epsilon, one-row groups 0; ``mean_norm`` drops the division
    in both terms. A^E: the penalised episode score normalised over the group's step rows.
    """
    p = resolve(GraphGPOParams, params)
    batch.check_order()
    remove_std = p.mode == "mean_norm"
    adv_graph = normalize_in_segments(graph_rewards(batch, p), segments(batch.group, batch.anchor),
                                      p.epsilon, remove_std)
    adv = p.step_advantage_w * adv_graph
    if p.episode_advantage_w != 0.0:
        adv_episode = episode_advantage(episode_scores(batch, p.invalid_penalty), batch.group, p.epsilon, remove_std)
        adv = adv + p.episode_advantage_w * adv_episode
    return adv
