"""Partial-label data with closed-set and open-set out-of-candidate (OOC) examples, vectorised numpy.

The protocol of the authors' ``utils/utils_algo.py`` (reference/other-papers.md §2.3): every false
label of a known example joins its candidate set with probability q; a share ``cs_rate`` of the
known examples become closed-set OOC (true label removed, one random non-candidate added); and
``os_rate`` x n open-set images, drawn from a foreign pool, get random candidate sets (each label
with probability q, at least one).
"""

from __future__ import annotations

import numpy as np

NORMAL, CLOSED, OPEN = 0, 1, 2  # group codes of G_train (algorithm.GROUPS)


def flip_candidates(y: np.ndarray, K: int, q: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform candidate generation: y int[n] -> S bool[n, K] with the true label and each false
    label independently with probability q (generate_uniform_cv_candidate_labels)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"partial_rate must lie in [0, 1], got {q}")
    S = rng.random((len(y), K)) < q
    S[np.arange(len(y)), y] = True
    return S


def make_closed_ooc(S: np.ndarray, y: np.ndarray, cs_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Turn a random ``int(n * cs_rate)`` of the examples into closed-set OOC, in place: the true
    label leaves the candidate set and one uniformly drawn non-candidate joins it. Examples drawn
    without any non-candidate stay normal. Returns the indices made OOC, int[m] (m <= n * cs_rate)."""
    n, K = S.shape
    idx = rng.permutation(n)[: int(n * cs_rate)]
    idx = idx[(~S[idx]).any(axis=1)]
    r = rng.random((len(idx), K))
    r[S[idx]] = -1.0  # candidates can never win the argmax: a uniform non-candidate
    new = r.argmax(axis=1)
    S[idx, y[idx]] = False
    S[idx, new] = True
    return idx


def random_candidate_sets(n: int, K: int, q: float, rng: np.random.Generator) -> np.ndarray:
    """Candidate sets of open-set examples: each label with probability q; an empty set gets one
    uniformly drawn label (generate_random_candidate_labels). -> bool[n, K]."""
    S = rng.random((n, K)) < q
    empty = ~S.any(axis=1)
    S[np.flatnonzero(empty), rng.integers(0, K, int(empty.sum()))] = True
    return S


def build_ooc_train(y_known: np.ndarray, n_pool: int, K: int, partial_rate: float, cs_rate: float,
                    os_rate: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The OOC training set's labels. The known examples keep their order; ``int(n * os_rate)``
    open-set examples, drawn without replacement from a pool of ``n_pool``, follow them.

    Returns ``pool_index`` int[m] (which pool items), ``S`` uint8[n + m, K] candidate sets,
    ``G`` int8[n + m] group codes and ``Y`` int64[n + m] true labels (-1 for open-set examples).
    """
    for name, v in (("cs_rate", cs_rate), ("os_rate", os_rate)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {v}")
    n = len(y_known)
    m = int(n * os_rate)
    if m > n_pool:
        raise ValueError(f"os_rate {os_rate} x {n} known examples needs {m} open-set examples; the pool "
                         f"has {n_pool}")
    S = flip_candidates(y_known, K, partial_rate, rng)
    closed = make_closed_ooc(S, y_known, cs_rate, rng)
    pool_index = np.sort(rng.permutation(n_pool)[:m])
    S_all = np.concatenate([S, random_candidate_sets(m, K, partial_rate, rng)]).astype(np.uint8)
    G = np.zeros(n + m, np.int8)
    G[closed] = CLOSED
    G[n:] = OPEN
    Y = np.concatenate([y_known.astype(np.int64), np.full(m, -1, np.int64)])
    return {"pool_index": pool_index, "S": S_all, "G": G, "Y": Y}
