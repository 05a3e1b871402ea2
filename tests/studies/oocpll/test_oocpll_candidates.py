"""Candidate-set generation with closed-set and open-set OOC examples (utils_algo.py protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from repro.studies.oocpll.candidates import (
    CLOSED,
    NORMAL,
    OPEN,
    build_ooc_train,
    flip_candidates,
    make_closed_ooc,
    random_candidate_sets,
)


def test_flip_candidates_keeps_the_true_label_and_flips_at_rate_q():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 20000)
    S = flip_candidates(y, 10, 0.3, rng)
    assert S[np.arange(len(y)), y].all()
    false = ~np.eye(10, dtype=bool)[y]
    assert abs(S[false].mean() - 0.3) < 0.01
    with pytest.raises(ValueError, match="partial_rate"):
        flip_candidates(y, 10, 1.5, rng)


def test_make_closed_ooc_swaps_the_true_label_for_a_non_candidate():
    rng = np.random.default_rng(1)
    n, K = 400, 5
    y = rng.integers(0, K, n)
    S = flip_candidates(y, K, 0.3, rng)
    S[:5] = True  # full candidate sets: never made OOC
    before = S.copy()
    idx = make_closed_ooc(S, y, 0.5, np.random.default_rng(2))
    assert len(idx) <= 200 and len(set(idx.tolist())) == len(idx)
    assert not set(idx.tolist()) & set(range(5))               # full rows are never made OOC
    assert not S[idx, y[idx]].any()                           # true label removed
    added = S[idx] & ~before[idx]
    assert (added.sum(1) == 1).all()                           # exactly one new label, a former non-candidate
    assert np.array_equal(S[idx].sum(1), before[idx].sum(1))   # set size unchanged
    rest = np.setdiff1d(np.arange(n), idx)
    assert np.array_equal(S[rest], before[rest])
    # the rows drawn but without a non-candidate are exactly the ones that stayed normal
    drawn = np.random.default_rng(2).permutation(n)[:200]
    assert set(idx.tolist()) == {i for i in drawn.tolist() if not before[i].all()}


def test_random_candidate_sets_are_never_empty():
    S = random_candidate_sets(5000, 6, 0.05, np.random.default_rng(0))
    assert S.any(axis=1).all()
    assert abs(S.mean() - (0.05 + 0.95**6 / 6)) < 0.01  # rate q plus the forced label of empty sets


def test_build_ooc_train_layout():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, 500)
    out = build_ooc_train(y, 400, 6, 0.3, 0.2, 0.4, rng)
    n_os = int(500 * 0.4)
    assert out["S"].shape == (500 + n_os, 6) and out["S"].dtype == np.uint8
    assert len(out["pool_index"]) == n_os == len(np.unique(out["pool_index"])) and out["pool_index"].max() < 400
    G, Y, S = out["G"], out["Y"], out["S"].astype(bool)
    assert (G[500:] == OPEN).all() and (Y[500:] == -1).all() and np.array_equal(Y[:500], y)
    known = np.arange(500)
    assert S[known[G[:500] == NORMAL], y[G[:500] == NORMAL]].all()
    assert not S[known[G[:500] == CLOSED], y[G[:500] == CLOSED]].any()
    assert 95 <= (G == CLOSED).sum() <= 100
    a = build_ooc_train(y, 400, 6, 0.3, 0.2, 0.4, np.random.default_rng(9))
    b = build_ooc_train(y, 400, 6, 0.3, 0.2, 0.4, np.random.default_rng(9))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # deterministic given the generator
    with pytest.raises(ValueError, match="pool has 100"):
        build_ooc_train(y, 100, 6, 0.3, 0.2, 0.4, rng)
    with pytest.raises(ValueError, match="cs_rate"):
        build_ooc_train(y, 400, 6, 0.3, 1.2, 0.4, rng)
