"""A plain-loop GraphGPO for tests and ``scripts/bench_advantages.py``: written independently of
:mod:`repro.studies.graphgpo.estimator` (Python dicts, lists, ``heapq`` and scalar arithmetic),
one task at a time, following the released code's steps (agentic-rl.md §3.5.3): per-task graph,
greedy similarity canonicalisation, reverse Dijkstra from the success node, d_max + 1 for
unreachable states, edge rewards, normalisation among edges leaving a state, episode advantage
over all step rows. Not used in training.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from difflib import SequenceMatcher

SINK = "<success>"


def _mean(values):
    total = 0.0
    for v in values:
        total += v
    return total / len(values)


def _std(values):
    m = _mean(values)
    total = 0.0
    for v in values:
        total += (v - m) ** 2
    return math.sqrt(total / (len(values) - 1))


class _Canon:
    def __init__(self, texts, enable, thresh):
        self.texts, self.enable, self.thresh = texts, enable, thresh
        self.reps: list = []
        self.cache: dict = {}

    def __call__(self, key):
        if key == SINK or not self.enable:
            return key
        if key not in self.cache:
            for rep in self.reps:
                if SequenceMatcher(None, self.texts[key], self.texts[rep]).ratio() >= self.thresh:
                    self.cache[key] = rep
                    break
            else:
                self.reps.append(key)
                self.cache[key] = key
        return self.cache[key]


def _distances(edges):
    """Reverse Dijkstra from SINK over (u, v) edges of cost 1; unreachable -> far + 1."""
    reverse = defaultdict(list)
    nodes = set()
    for u, v in edges:
        reverse[v].append(u)
        nodes.update((u, v))
    dist = {node: math.inf for node in nodes}
    dist[SINK] = 0.0
    heap = [(0.0, SINK)]
    while heap:
        cost, node = heapq.heappop(heap)
        if cost > dist[node]:
            continue
        for prev in reverse[node]:
            if cost + 1.0 < dist[prev]:
                dist[prev] = cost + 1.0
                heapq.heappush(heap, (cost + 1.0, prev))
    far = 0.0
    for value in dist.values():
        if value != math.inf and value > far:
            far = value
    return {node: (far + 1.0 if value == math.inf else value) for node, value in dist.items()}


def graphgpo_loop(group, anchor, next_anchor, valid, episode_reward, *, omega=0.1, penalty=0.1,
                  eps=1e-6, mode="mean_std_norm", exponent="code", beta_g=1.0, beta_e=1.0,
                  similarity=False, thresh=0.95, texts=None, r_succ=10.0):
    """GraphGPO advantages (list of floats) for step rows given as lists; ``next_anchor`` None (or
    -1) marks a transition into the success node; ``texts[code]`` are the key strings."""
    n = len(group)
    nexts = [SINK if (x is None or x == -1) else x for x in next_anchor]
    rows_of = defaultdict(list)
    for i in range(n):
        rows_of[group[i]].append(i)
    graph_reward = [0.0] * n
    for rows in rows_of.values():
        canon = _Canon(texts, similarity, thresh)
        edges = []
        for i in rows:
            edges.append((canon(anchor[i]), canon(nexts[i])))
        dist = _distances(edges)
        for i, (u, v) in zip(rows, edges):
            if exponent == "code":
                e = dist[v]
            elif exponent == "paper":
                e = dist[v] + 1.0
            else:
                e = dist[v] - dist[u] + 1.0
            graph_reward[i] = r_succ * omega ** e - (0.0 if valid[i] else penalty)
    adv = [0.0] * n
    # graph advantage: edges leaving the same (exact) state of the same task
    members = defaultdict(list)
    for i in range(n):
        members[(group[i], anchor[i])].append(i)
    for rows in members.values():
        vals = [graph_reward[i] for i in rows]
        if len(rows) == 1:
            continue  # advantage 0
        m = _mean(vals)
        s = _std(vals)
        for i in rows:
            adv[i] += beta_g * ((graph_reward[i] - m) if mode == "mean_norm" else (graph_reward[i] - m) / (s + eps))
    # episode advantage over all step rows of the task
    if beta_e != 0.0:
        for rows in rows_of.values():
            scores = [episode_reward[i] - (0.0 if valid[i] else penalty) for i in rows]
            if len(rows) == 1:
                m, s = 0.0, 1.0
            else:
                m, s = _mean(scores), _std(scores)
            for i, sc in zip(rows, scores):
                adv[i] += beta_e * ((sc - m) if mode == "mean_norm" else (sc - m) / (s + eps))
    return adv


def graphgpo_released_loops(uid, traj_uid, anchor_obs, next_obs, valid, episode_reward, *, omega=0.1,
                            penalty=0.1, eps=1e-6):
    """The same numbers with the released code's data access pattern (agentic-rl.md §8.2, §3.5.3),
    for the benchmark's "reference cost" column: object arrays of ids and key strings (``next_obs``
    ``"success"`` after a won episode), a graph per task found by scanning the whole batch
    (``np.where``), edges as attribute dicts, Dijkstra carrying paths, returns per trajectory
    scanned and put back row by row (each row locating itself with two scans: O(N^2)), step and
    episode groups normalised with 0-d torch tensors per row. Code exponent, mean_std_norm, exact keys."""
    import numpy as np
    import torch

    uid, traj_uid = np.asarray(uid, dtype=object), np.asarray(traj_uid, dtype=object)
    n = len(uid)
    graphs = {}
    for u in set(uid.tolist()):
        edges = defaultdict(lambda: defaultdict(list))
        nodes = set()
        for i in np.where(uid == u)[0]:
            edges[anchor_obs[i]][next_obs[i]].append({"traj_uid": traj_uid[i], "uid": u, "data_id": int(i),
                                                      "episode_rewards": episode_reward[i], "weight": 1.0})
            nodes.update((anchor_obs[i], next_obs[i]))
        reverse = defaultdict(list)
        for a in edges:
            for b in edges[a]:
                for attr in edges[a][b]:
                    reverse[b].append((a, attr["weight"]))
        dist = {x: math.inf for x in nodes}
        paths = {x: [] for x in nodes}
        dist["success"] = 0.0
        heap = [(0.0, "success", ["success"])]
        while heap:
            cost, node, path = heapq.heappop(heap)
            if cost > dist[node]:
                continue
            for prev, w in reverse[node]:
                if cost + w < dist[prev]:
                    dist[prev] = cost + w
                    paths[prev] = [prev] + path
                    heapq.heappush(heap, (cost + w, prev, [prev] + path))
        far = max([d for d in dist.values() if d != math.inf] + [0.0])
        graphs[u] = {x: (far + 1.0 if d == math.inf else d) for x, d in dist.items()}
    by_traj = {}
    for t in np.unique(traj_uid):
        idx = np.where(traj_uid == t)[0]
        d = graphs[uid[idx[0]]]
        by_traj[t] = [10.0 * omega ** (d[next_obs[i]] + 1.0 - 1.0) for i in idx]
    returns = np.zeros(n)
    for i, t in enumerate(traj_uid):
        idx = np.where(traj_uid == t)[0]
        returns[i] = by_traj[t][np.where(idx == i)[0][0]]
    returns -= penalty * ~np.asarray(valid, dtype=bool)

    def normalise(values, group_of, singleton_zero):
        members = defaultdict(list)
        for i in range(n):
            members[group_of[i]].append(torch.tensor(values[i], dtype=torch.float64))
        stats = {}
        for g, vals in members.items():
            if len(vals) == 1:
                stats[g] = (vals[0] if singleton_zero else torch.tensor(0.0, dtype=torch.float64),
                            torch.tensor(1.0, dtype=torch.float64))
            else:
                stacked = torch.stack(vals)
                stats[g] = (torch.mean(stacked), torch.std(stacked))
        out = torch.zeros(n, dtype=torch.float64)
        for i in range(n):
            m, s = stats[group_of[i]]
            out[i] = (values[i] - m) / (s + eps)
        return out.numpy()

    step_group = np.zeros(n, dtype=object)
    for u in set(uid.tolist()):
        clusters = {}
        for i in np.where(uid == u)[0]:
            clusters.setdefault(anchor_obs[i], len(clusters))
            step_group[i] = (u, clusters[anchor_obs[i]])
    scores = np.asarray(episode_reward, dtype=float) - penalty * ~np.asarray(valid, dtype=bool)
    return normalise(returns, step_group, True) + normalise(scores, uid, False)
