"""OOC-PLL estimators on hand-checkable inputs, and plain loop references on random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro.studies.oocpll import algorithm as A


def _loop_wooden(z: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, n = [], []
    for zi, si in zip(z, S):
        nll = -(zi - np.log(np.exp(zi).sum()))
        cand = [nll[k] for k in range(len(si)) if si[k]]
        non = [nll[k] for k in range(len(si)) if not si[k]]
        c.append(min(cand) if cand else A.MASKED_NLL)
        n.append(min(non) if non else A.MASKED_NLL)
    return np.array(c), np.array(n)


def test_wooden_ce_by_hand():
    z = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    S = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    c, n = A.wooden_ce(z, S)
    assert c.tolist() == pytest.approx([-math.log(0.5), -math.log(0.6)], rel=1e-5)
    assert n.tolist() == pytest.approx([-math.log(0.3), A.MASKED_NLL])  # no non-candidate: masked


def test_wooden_ce_matches_loop_and_keeps_certain_candidates():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 7)) * 3
    S = rng.random((50, 7)) < 0.4
    S[np.arange(50), rng.integers(0, 7, 50)] = True
    c, n = A.wooden_ce(torch.tensor(z), torch.tensor(S, dtype=torch.float32))
    rc, rn = _loop_wooden(z, S)
    assert np.allclose(c.numpy(), rc, atol=1e-5) and np.allclose(n.numpy(), rn, atol=1e-5)
    # a candidate predicted with probability 1 in float32 has loss exactly 0: it stays the minimum
    # (the authors' code masks by value == 0 and would turn it into 1000)
    c0, _ = A.wooden_ce(torch.tensor([[100.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]))
    assert c0.item() == 0.0


def test_select_groups_by_hand():
    c = torch.tensor([0.1, 2.0, 0.5, 3.0, 1.0, 0.2])
    n = torch.tensor([3.0, 0.1, 2.0, 0.2, 1.0, 0.3])
    # n - c = [2.9, -1.9, 1.5, -2.8, 0.0, 0.1]; n + c = [3.1, 2.1, 2.5, 3.2, 2.0, 0.5]
    sel = A.select_groups(c, n, (3, 2, 1))
    assert torch.nonzero(sel.normal).flatten().tolist() == [0, 2, 5]
    assert torch.nonzero(sel.closed).flatten().tolist() == [1, 3]
    assert torch.nonzero(sel.open).flatten().tolist() == [3]
    G = torch.tensor([0, 1, 0, 1, 2, 0])
    prec = A.selection_precision(sel, G)
    assert prec == {"normal": 1.0, "closed": 1.0, "open": 0.0}
    with pytest.raises(ValueError, match="selection sizes"):
        A.select_groups(c, n, (7, 0, 0))


def test_selection_sizes_follow_the_known_proportions():
    assert A.selection_sizes(50000, 0.2, 0.4) == (40000, 10000, 20000)
    assert A.selection_sizes(783, 0.2, 0.4) == (626, 156, 313)


def test_sharpened_and_reversed_targets_by_hand():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    S = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    t = A.sharpened(p, S, 0.5)
    assert t[0].tolist() == pytest.approx([0.25 / 0.34, 0.09 / 0.34, 0.0])
    r = A.sharpened(p, 1 - S, 0.5)
    assert r[0].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert r[1].tolist() == [0.0, 0.0, 0.0]  # no non-candidates: zero target (the NaN rows of train.py)


def test_random_candidate_targets():
    gen = torch.Generator().manual_seed(0)
    R = A.random_candidate_targets(4000, 10, 0.5, gen)
    assert torch.allclose(R.sum(1), torch.ones(4000))
    support = (R > 0).float()
    assert torch.allclose(R, support / support.sum(1, keepdim=True))  # uniform over its set
    assert abs(support.mean().item() - 0.5) < 0.02
    one = A.random_candidate_targets(200, 6, 1e-9, gen)  # empty sets get exactly one label
    assert ((one > 0).sum(1) == 1).all()
    again = A.random_candidate_targets(5, 10, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(again, A.random_candidate_targets(5, 10, 0.5, torch.Generator().manual_seed(3)))


def test_ooc_targets_and_loss_match_a_loop():
    torch.manual_seed(0)
    B, K = 6, 4
    z = torch.randn(2 * B, K)
    S = (torch.rand(B, K) < 0.5).float()
    S[torch.arange(B), torch.randint(0, K, (B,))] = 1.0
    pbar = torch.softmax(torch.randn(B, K), 1)
    sel = {"normal": torch.tensor([1.0, 1, 0, 0, 0, 1]), "closed": torch.tensor([0.0, 0, 1, 0, 0, 0]),
           "open": torch.tensor([0.0, 0, 0, 1, 0, 1])}
    rand = A.random_candidate_targets(B, K, 0.5, torch.Generator().manual_seed(1))
    t = A.ooc_targets(pbar, S, sel, 0.5, rand)
    T2 = torch.cat([t, t])
    loss, parts = A.ooc_loss(z, T2, {g: torch.cat([m, m]) for g, m in sel.items()}, alpha=0.7, beta=0.2)
    ref = {g: 0.0 for g in A.GROUPS}
    for i in range(2 * B):
        j = i % B
        target = np.zeros(K)
        if sel["normal"][j]:
            v = (pbar[j] * S[j]).numpy() ** 2
            target += v / v.sum()
        if sel["closed"][j]:
            v = (pbar[j] * (1 - S[j])).numpy() ** 2
            target += v / v.sum() if v.sum() > 0 else 0
        if sel["open"][j]:
            target += rand[j].numpy()
        assert np.allclose(T2[i].numpy(), target, atol=1e-6)
        ce = -(torch.log_softmax(z[i], 0).numpy() * target).sum()
        for g in A.GROUPS:
            ref[g] += ce * float(sel[g][j]) / (2 * B)  # mean over the whole batch, as train.py
    assert parts == pytest.approx(ref, rel=1e-5)
    assert loss.item() == pytest.approx(ref["normal"] + 0.7 * ref["closed"] + 0.2 * ref["open"], rel=1e-5)


def test_proden_confidence_and_cc_loss_by_hand():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    S = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    prev = torch.tensor([[0.5, 0.5, 0.0], [0.4, 0.6, 0.0]])
    conf = A.proden_confidence(p, S, prev)
    assert conf[0].tolist() == pytest.approx([0.625, 0.375, 0.0])
    assert conf[1].tolist() == pytest.approx([0.4, 0.6, 0.0])  # no candidate mass: kept
    z = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    loss = A.cc_loss(z, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert loss.item() == pytest.approx(-(math.log(0.8) + math.log(0.8)) / 2, rel=1e-5)
    soft = A.soft_ce(z, torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    assert soft.item() == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.3) + math.log(0.8)) / 2, rel=1e-5)


def test_output_ensemble_stores_only_warmup_epochs():
    ens = A.OutputEnsemble(keep=2, eta=0.9)
    with pytest.raises(RuntimeError, match="warm-up"):
        ens(torch.zeros(2, 2), warmup=False)
    outs = [torch.full((2, 2), float(v)) for v in (1, 2, 3)]
    for o in outs:
        assert torch.equal(ens(o, warmup=True), o)  # warm-up selects on the current outputs
    cur = torch.full((2, 2), 10.0)
    expect = 0.9 * 2.5 + 0.1 * 10.0  # the mean of the last 2 warm-up epochs (2 and 3)
    assert torch.allclose(ens(cur, warmup=False), torch.full((2, 2), expect))
    assert torch.allclose(ens(torch.full((2, 2), 20.0), warmup=False), torch.full((2, 2), 0.9 * 2.5 + 2.0))
    assert len(ens.stored) == 2
    with pytest.raises(ValueError):
        A.OutputEnsemble(keep=0, eta=0.9)
