"""Advantage estimators against plain loop references (reference/agentic-rl.md §3.1-3.4, §3.9).

The ``ref_*`` functions below are written independently of ``repro.rl.advantages``: Python lists,
dicts and scalar arithmetic only, following the reference semantics line by line. They read a
trajectory's time order from the row order (as the reference code does), not from ``step``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

import repro.rl.advantages  # noqa: F401  (registers the estimators)
from repro.registry import ESTIMATORS
from repro.rl.advantages import StepParams, discounted_returns
from repro.rl.batch import StepBatch, factorize

EPS = 1e-6

# --- loop references --------------------------------------------------------------------------


def _mean(values):
    total = 0.0
    for v in values:  # sequential sum, like a scalar accumulator (not Python 3.12's compensated sum)
        total += v
    return total / len(values)


def _std(values, ddof):
    m = _mean(values)
    total = 0.0
    for v in values:
        total += (v - m) ** 2
    return math.sqrt(total / (len(values) - ddof))


def _columns(b):
    return (
        b.group.tolist(),
        b.traj.tolist(),
        b.anchor.tolist(),
        b.reward.tolist(),
        b.episode_reward.tolist(),
        b.valid.tolist(),
    )


def ref_returns(reward, traj, gamma):
    rows_of = defaultdict(list)
    for i, t in enumerate(traj):
        rows_of[t].append(i)
    out = [0.0] * len(reward)
    for rows in rows_of.values():
        running = 0.0
        for i in reversed(rows):
            running = reward[i] + gamma * running
            out[i] = running
    return out


def ref_scores(b, penalty):
    _, _, _, _, ep, valid = _columns(b)
    return [ep[i] - (0.0 if valid[i] else penalty) for i in range(len(ep))]


def ref_step_returns(b, gamma, penalty):
    _, traj, _, reward, _, valid = _columns(b)
    ret = ref_returns(reward, traj, gamma)
    return [ret[i] - (0.0 if valid[i] else penalty) for i in range(len(ret))]


def ref_episode_norm(scores, group, remove_std):
    """GRPO / GiGPO episode term: row-weighted, Bessel std, singleton -> mean 0 / std 1."""
    by_group = defaultdict(list)
    for i, g in enumerate(group):
        by_group[g].append(scores[i])
    stats = {}
    for g, vals in by_group.items():
        stats[g] = (0.0, 1.0) if len(vals) == 1 else (_mean(vals), _std(vals, 1))
    out = []
    for i, g in enumerate(group):
        m, s = stats[g]
        out.append(scores[i] - m if remove_std else (scores[i] - m) / (s + EPS))
    return out


def ref_grpo(b, penalty=0.1, norm=True):
    return ref_episode_norm(ref_scores(b, penalty), b.group.tolist(), remove_std=not norm)


def ref_rloo(b, penalty=0.1):
    scores = ref_scores(b, penalty)
    by_group = defaultdict(list)
    for i, g in enumerate(b.group.tolist()):
        by_group[g].append(scores[i])
    out = []
    for i, g in enumerate(b.group.tolist()):
        n = len(by_group[g])
        out.append(0.0 if n == 1 else n / (n - 1) * (scores[i] - _mean(by_group[g])))
    return out


def ref_gigpo(b, gamma=0.95, penalty=0.1, mode="mean_std_norm", w=1.0):
    group, _, anchor, _, _, _ = _columns(b)
    remove_std = mode == "mean_norm"
    episode = ref_episode_norm(ref_scores(b, penalty), group, remove_std)
    ret = ref_step_returns(b, gamma, penalty)
    clusters = defaultdict(list)
    for i in range(len(group)):
        clusters[(group[i], anchor[i])].append(i)
    step = [0.0] * len(group)
    for rows in clusters.values():
        if len(rows) == 1:
            continue  # singleton step group -> 0
        vals = [ret[i] for i in rows]
        m, s = _mean(vals), _std(vals, 1)
        for i in rows:
            step[i] = ret[i] - m if remove_std else (ret[i] - m) / (s + EPS)
    return [episode[i] + w * step[i] for i in range(len(group))]


def ref_hgpo(b, gamma=0.95, penalty=0.1, mode="mean_std_norm", K=2, alpha=1.0, base_group=False):
    group, traj, anchor, _, _, _ = _columns(b)
    remove_std = mode == "mean_norm"
    ret = ref_step_returns(b, gamma, penalty)
    items = defaultdict(list)  # row -> [(level, advantage)]
    if base_group:
        episode = ref_episode_norm(ref_scores(b, penalty), group, remove_std)
        for i in range(len(group)):
            items[i].append((0, episode[i]))
    trajs_of_group = defaultdict(dict)  # group -> traj -> rows in batch order
    for i in range(len(group)):
        trajs_of_group[group[i]].setdefault(traj[i], []).append(i)
    for trajs in trajs_of_group.values():
        clusters = defaultdict(list)
        for rows in trajs.values():
            obs = [anchor[i] for i in rows]
            for t, i in enumerate(rows):
                for k in range(1, K + 2):
                    if k <= t + 1:
                        clusters[(k, tuple(obs[t - k + 1 : t + 1]))].append(i)
        for (k, _), rows in clusters.items():
            if len(rows) < 2:
                continue
            vals = [ret[i] for i in rows]
            mu, sigma = _mean(vals), _std(vals, 0)
            for i in rows:
                if all(v == vals[0] for v in vals):
                    a = 0.0  # sigma = 0 => a = 0 (§3.4.3)
                elif remove_std:
                    a = ret[i] - mu
                else:
                    a = (ret[i] - mu) / (sigma + EPS)
                items[i].append((k, a))
    out = []
    for i in range(len(group)):
        kept = [(k, a) for k, a in items[i] if a != 0.0]
        if not kept:
            out.append(0.0)
            continue
        raw = [(k + 1) ** alpha for k, _ in kept]
        total = sum(raw)
        out.append(sum(r / (total + 1e-6) * a for r, (_, a) in zip(raw, kept)))
    return out


# --- random batches ---------------------------------------------------------------------------


def random_batch(seed, group_sizes, *, max_len=12, n_states=4, p_invalid=0.2, rewards="terminal"):
    """Trajectory-major batch with interleaved groups, random ids and random-walk anchors.

    ``rewards``: "terminal" (10 on the last step of ~half the trajectories), "dense" (random 0/1/10
    on any step), "equal" (every trajectory succeeds), "zero" (nothing succeeds).
    Anchor codes are shared across groups (state s has code s everywhere), so grouping must
    separate them by group. Every trajectory of a group starts from state 0.
    """
    rng = np.random.default_rng(seed)
    trajectories = []
    group_ids = rng.choice(10**6, size=len(group_sizes), replace=False)
    for gid, size in zip(group_ids, group_sizes):
        for _ in range(size):
            length = int(rng.integers(1, max_len + 1))
            states = [0]
            for _ in range(length - 1):
                states.append(int((states[-1] + rng.choice([-1, 0, 1, 1])) % n_states))
            if rewards == "terminal":
                r = [0.0] * length
                if rng.random() < 0.5:
                    r[-1] = 10.0
            elif rewards == "dense":
                r = [float(x) for x in rng.choice([0.0, 0.0, 1.0, 10.0], size=length)]
            elif rewards == "equal":
                r = [0.0] * (length - 1) + [10.0]
            else:
                r = [0.0] * length
            valid = (rng.random(length) >= p_invalid).tolist()
            trajectories.append((int(gid), states, r, valid))
    order = rng.permutation(len(trajectories))
    traj_ids = rng.choice(10**9, size=len(trajectories), replace=False)
    cols = defaultdict(list)
    for pos in order:
        gid, states, r, valid = trajectories[pos]
        for t in range(len(states)):
            cols["group"].append(gid)
            cols["traj"].append(int(traj_ids[pos]))
            cols["step"].append(t)
            cols["anchor"].append(states[t])
            cols["reward"].append(r[t])
            cols["episode_reward"].append(sum(r))
            cols["valid"].append(valid[t])
    return StepBatch(**cols)


GROUP_LAYOUTS = {
    "singletons": [1, 1, 1],
    "pairs": [2, 2, 1],
    "mixed": [1, 2, 5, 8],
    "eights": [8, 8, 8, 8],
}
REWARDS = ["terminal", "dense", "equal", "zero"]
CASES = [(layout, rewards, seed) for layout in GROUP_LAYOUTS for rewards in REWARDS for seed in (0, 1)]


def _batch(case):
    layout, rewards, seed = case
    return random_batch(seed, GROUP_LAYOUTS[layout], rewards=rewards)


def _ids(case):
    return "-".join(map(str, case))


# --- discounted returns -----------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.95, 1.0])
def test_discounted_returns_match_loop_on_interleaved_rows(gamma):
    rng = np.random.default_rng(3)
    traj = rng.integers(0, 30, size=400)  # trajectories interleaved, not contiguous
    reward = rng.choice([0.0, 1.0, 10.0, -0.5], size=400)
    got = discounted_returns(reward, traj, gamma)
    assert np.allclose(got, ref_returns(reward.tolist(), traj.tolist(), gamma), rtol=1e-12, atol=1e-12)


def test_discounted_returns_terminal_closed_form():
    lengths = [1, 5, 24, 50, 300]
    traj = np.repeat(np.arange(len(lengths)), lengths)
    reward = np.zeros(len(traj))
    ends = np.cumsum(lengths) - 1
    reward[ends] = 10.0
    t = np.concatenate([np.arange(n) for n in lengths])
    T = np.repeat(lengths, lengths)
    assert np.allclose(discounted_returns(reward, traj, 0.95), 10.0 * 0.95 ** (T - 1 - t))


def test_discounted_returns_edge_cases():
    assert discounted_returns(np.zeros(0), np.zeros(0, dtype=np.int64), 0.9).shape == (0,)
    assert discounted_returns([3.0], [7], 0.9).tolist() == [3.0]
    with pytest.raises(ValueError):
        discounted_returns([1.0, 2.0], [0], 0.9)


# --- estimators vs loop references ------------------------------------------------------------


def test_registry_has_estimators():
    assert {"grpo", "rloo", "gigpo", "hgpo"} <= set(ESTIMATORS.names())


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("norm", [True, False])
def test_grpo_matches_loop(case, norm):
    b = _batch(case)
    got = ESTIMATORS.get("grpo")(b, {"norm_adv_by_std": norm})
    assert got.dtype == np.float64 and got.shape == (len(b),)
    assert np.allclose(got, ref_grpo(b, norm=norm))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_rloo_matches_loop(case):
    b = _batch(case)
    assert np.allclose(ESTIMATORS.get("rloo")(b, {}), ref_rloo(b))


def test_rloo_singleton_group_is_zero_and_loo_identity():
    b = random_batch(5, [1, 5], rewards="dense")
    adv = ESTIMATORS.get("rloo")(b, {"invalid_penalty": 0.0})
    counts = {g: int(np.sum(b.group == g)) for g in np.unique(b.group)}
    single = np.array([counts[g] == 1 for g in b.group])
    assert np.all(adv[single] == 0.0)
    # leave-one-out identity: A_i = score_i - mean of the other rows of the group
    i = int(np.flatnonzero(~single)[0])
    others = (b.group == b.group[i]) & (np.arange(len(b)) != i)
    assert np.isclose(adv[i], b.episode_reward[i] - b.episode_reward[others].mean())


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("mode", ["mean_std_norm", "mean_norm"])
def test_gigpo_matches_loop(case, mode):
    b = _batch(case)
    params = {"mode": mode, "gamma": 0.9, "step_advantage_w": 0.7}
    assert np.allclose(ESTIMATORS.get("gigpo")(b, params), ref_gigpo(b, gamma=0.9, mode=mode, w=0.7))


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("mode", ["mean_std_norm", "mean_norm"])
@pytest.mark.parametrize("K", [0, 1, 2, 4])
@pytest.mark.parametrize("base_group", [False, True])
def test_hgpo_matches_loop(case, mode, K, base_group):
    b = _batch(case)
    alpha = [0.0, 1.0, 2.0][(case[2] + K) % 3]  # every alpha in {0, 1, 2} meets every K
    params = {"mode": mode, "history_length": K, "length_weight_alpha": alpha, "base_group": base_group}
    want = ref_hgpo(b, mode=mode, K=K, alpha=alpha, base_group=base_group)
    assert np.allclose(ESTIMATORS.get("hgpo")(b, params), want)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_hgpo_long_loops_many_levels(alpha):
    """Long random walks on 3 states: many repeated multi-step keys across and within trajectories."""
    b = random_batch(11, [8, 8, 5], max_len=40, n_states=3, rewards="terminal")
    for K in (0, 1, 2, 4):
        params = {"history_length": K, "length_weight_alpha": alpha}
        assert np.allclose(ESTIMATORS.get("hgpo")(b, params), ref_hgpo(b, K=K, alpha=alpha))


def test_penalty_after_discounting_stays_local():
    # one trajectory of 3 steps, winning at the end, middle step invalid
    b = StepBatch(group=[0, 0, 0, 0], traj=[0, 0, 0, 1], step=[0, 1, 2, 0], anchor=[0, 1, 2, 0],
                  reward=[0, 0, 10, 0], episode_reward=[10, 10, 10, 0], valid=[True, False, True, True])
    # step 0 (s0) is grouped with the other trajectory's s0; its return must be 9.025, not 9.025 - 0.095
    adv = ESTIMATORS.get("gigpo")(b, {"mode": "mean_norm", "step_advantage_w": 1.0})
    scores = np.array([10.0, 9.9, 10.0, 0.0])
    episode = scores - scores.mean()
    step0 = (9.025 - 0.0) / 2
    assert np.isclose(adv[0], episode[0] + step0)
    assert np.isclose(adv[1], episode[1])  # singleton step group -> A^S = 0


# --- the worked example of reference §3.4.5 ---------------------------------------------------


def _worked_example():
    return StepBatch.from_anchor_strings(
        group=[0] * 6,
        traj=[0, 0, 0, 1, 1, 1],
        step=[0, 1, 2, 0, 1, 2],
        anchor_obs=["s0", "s1", "s2", "s0", "s1", "s1"],
        reward=[0, 0, 10, 0, 0, 0],
        episode_reward=[10, 10, 10, 0, 0, 0],
        valid=[True] * 6,
    )


@pytest.mark.parametrize(
    "name, params, expected",
    [
        ("hgpo", {"history_length": 2}, [1.0, 1.166, 0.0, -1.0, -0.883, -0.707]),
        ("hgpo", {"history_length": 2, "base_group": True}, [0.971, 1.124, 0.913, -0.971, -0.888, -0.776]),
        ("gigpo", {"mode": "mean_std_norm"}, [1.620, 2.068, 0.913, -1.620, -1.490, -1.490]),
    ],
)
def test_reference_worked_example(name, params, expected):
    b = _worked_example()
    got = ESTIMATORS.get(name)(b, {"gamma": 0.95, **params})
    assert np.allclose(got, expected, rtol=0, atol=1e-3), got


def test_worked_example_unique_winning_state_gets_exactly_zero():
    # HGPO without base_group: A2 sits in singleton clusters at every level, so it has no item (§3.4.5)
    assert ESTIMATORS.get("hgpo")(_worked_example(), {})[2] == 0.0


# --- parameter handling -----------------------------------------------------------------------


def test_unknown_or_bad_params_raise():
    b = _worked_example()
    with pytest.raises(ValueError, match="history_lenght"):
        ESTIMATORS.get("hgpo")(b, {"history_lenght": 2})
    with pytest.raises(ValueError, match="mode"):
        ESTIMATORS.get("gigpo")(b, {"mode": "std"})
    with pytest.raises(ValueError, match="history_length"):
        ESTIMATORS.get("hgpo")(b, {"history_length": -1})
    with pytest.raises(ValueError, match="mode"):  # rloo's params have no mode
        ESTIMATORS.get("rloo")(b, {"mode": "mean_norm"})
    assert StepParams().gamma == 0.95 and StepParams().invalid_penalty == 0.1


def test_every_estimator_owns_typed_params():
    """Each estimator declares its params dataclass (``params=`` at registration), with the trainer's
    step keys and its own; what one estimator does not read, another's params do not carry."""
    from dataclasses import fields

    keys = {name: {f.name for f in fields(ESTIMATORS.meta(name)["params"])} for name in ESTIMATORS.names()}
    assert all({"gamma", "invalid_penalty", "epsilon"} <= k for k in keys.values())
    assert "norm_adv_by_std" in keys["grpo"] and "mode" not in keys["grpo"] and "mode" not in keys["rloo"]
    assert {"mode", "step_advantage_w"} <= keys["gigpo"] and "history_length" not in keys["gigpo"]
    assert {"mode", "history_length", "length_weight_alpha", "base_group"} <= keys["hgpo"]
    assert {"gae_gamma", "gae_lambda"} <= keys["gae"]


def test_order_dependent_estimators_refuse_shuffled_rows():
    b = _worked_example()
    perm = np.array([0, 3, 1, 4, 2, 5])
    shuffled = StepBatch(group=b.group[perm], traj=b.traj[perm], step=b.step[perm], anchor=b.anchor[perm],
                         reward=b.reward[perm], episode_reward=b.episode_reward[perm], valid=b.valid[perm])
    for name in ("gigpo", "hgpo"):
        with pytest.raises(ValueError, match="not contiguous"):
            ESTIMATORS.get(name)(shuffled, {})
    # order-free estimators give the permuted result
    assert np.allclose(ESTIMATORS.get("grpo")(shuffled, {}), ESTIMATORS.get("grpo")(b, {})[perm])


# --- StepBatch --------------------------------------------------------------------------------


def _cols(**over):
    cols = dict(group=[0, 0, 0], traj=[1, 1, 2], step=[0, 1, 0], anchor=[0, 1, 0],
                reward=[0.0, 10.0, 0.0], episode_reward=[10.0, 10.0, 0.0], valid=[True, True, False])
    cols.update(over)
    return cols


def test_stepbatch_coerces_dtypes():
    b = StepBatch(**_cols(group=np.array([0, 0, 0], dtype=np.int32), reward=[0, 10, 0], valid=[1, 1, 0],
                          step=np.array([0.0, 1.0, 0.0])))
    assert b.group.dtype == np.int64 and b.step.dtype == np.int64
    assert b.reward.dtype == np.float64 and b.valid.dtype == bool
    assert len(b) == 3 and b.agent is None
    b.check_order()


@pytest.mark.parametrize(
    "over, column",
    [
        (dict(traj=[1, 1]), "traj"),
        (dict(reward=[0.0, 1.0, 2.0, 3.0]), "reward"),
        (dict(agent=[0, 1]), "agent"),
        (dict(anchor=[[0], [1], [0]]), "anchor"),
        (dict(step=[0, 0.5, 0]), "step"),
        (dict(group=["a", "a", "b"]), "group"),
        (dict(episode_reward=[np.nan, 1.0, 0.0]), "episode_reward"),
        (dict(valid=[1, 2, 0]), "valid"),
        (dict(step=[0, -1, 0]), "step"),
    ],
)
def test_stepbatch_validation_names_column(over, column):
    with pytest.raises(ValueError, match=rf"StepBatch\.{column}\b"):
        StepBatch(**_cols(**over))


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(traj=[1, 2, 1], step=[0, 0, 1]), "not contiguous"),
        (dict(step=[1, 2, 0]), "not chronological"),
        (dict(step=[0, 2, 0]), "not chronological"),
        (dict(group=[0, 1, 1]), "spans several groups"),
    ],
)
def test_check_order_errors(over, message):
    with pytest.raises(ValueError, match=message):
        StepBatch(**_cols(**over)).check_order()


def test_factorize_exact_string_identity():
    strings = ["You are in the kitchen.", "you are in the kitchen.", "You are in the kitchen.", "", " "]
    codes = factorize(strings)
    assert codes.dtype == np.int64
    assert codes.tolist() == [0, 1, 0, 2, 3]
    b = StepBatch.from_anchor_strings(group=[0] * 5, traj=[0] * 5, step=range(5), anchor_obs=strings,
                                      reward=[0] * 5, episode_reward=[0] * 5, valid=[True] * 5)
    assert b.anchor.tolist() == codes.tolist()


# --- context inconsistency of GiGPO step groups (HGPO's motivation) ----------------------------


def ref_context(b, K):
    """Loop reference: per (group, anchor) step group, the set of previous-K anchor tuples."""
    cols = {k: getattr(b, k).tolist() for k in ("group", "traj", "step", "anchor")}
    by_traj = defaultdict(list)
    for i, t in enumerate(cols["traj"]):
        by_traj[t].append(i)
    hist = {}
    for rows in by_traj.values():
        rows = sorted(rows, key=lambda i: cols["step"][i])
        for pos, i in enumerate(rows):
            hist[i] = tuple(cols["anchor"][rows[pos - j]] if pos - j >= 0 else None for j in range(1, K + 1))
    groups = defaultdict(list)
    for i in range(len(b)):
        groups[(cols["group"][i], cols["anchor"][i])].append(i)
    multi = [rows for rows in groups.values() if len(rows) >= 2]
    bad = [rows for rows in multi if len({hist[i] for i in rows}) > 1]
    return multi, bad


@pytest.mark.parametrize("case", CASES[::3], ids=_ids)
@pytest.mark.parametrize("K", [0, 1, 2, 4])
def test_context_inconsistency_matches_loop(case, K):
    from repro.studies.hgpo.diagnostics import context_inconsistency

    b = _batch(case)
    multi, bad = ref_context(b, K)
    got = context_inconsistency(b, {"history_length": K})
    if not multi:
        assert np.isnan(got["inconsistent_group_frac"])
        return
    assert got["inconsistent_group_frac"] == pytest.approx(len(bad) / len(multi))
    n_multi = sum(len(r) for r in multi)
    assert got["inconsistent_row_frac"] == pytest.approx(sum(len(r) for r in bad) / n_multi)
    gap = np.abs(np.asarray(ref_gigpo(b, w=1.0)) - np.asarray(ref_grpo(b))
                 - np.asarray(ref_hgpo(b, K=K)))  # A^S = A_GiGPO - A^E (A^E = GRPO's advantage)
    bad_rows = [i for r in bad for i in r]
    good_rows = [i for r in multi if r not in bad for i in r]
    gap_mn = np.abs(np.asarray(ref_gigpo(b, w=1.0, mode="mean_norm")) - np.asarray(ref_grpo(b, norm=False))
                    - np.asarray(ref_hgpo(b, K=K, mode="mean_norm")))
    for key, rows, g in (("adv_gap_inconsistent", bad_rows, gap), ("adv_gap_consistent", good_rows, gap),
                         ("adv_gap_inconsistent_mean_norm", bad_rows, gap_mn),
                         ("adv_gap_consistent_mean_norm", good_rows, gap_mn)):
        if rows:
            assert got[key] == pytest.approx(g[rows].mean(), abs=1e-9)
        else:
            assert np.isnan(got[key])
    if good_rows:  # a consistent group: under mean_norm both baselines are its mean (HGPO's 1e-6 guard aside)
        assert got["adv_gap_consistent_mean_norm"] < 1e-5
    if bad_rows:  # shares of the return variance inside those groups (NaN: the returns do not vary there)
        share, null = got["return_context_share"], got["return_context_share_null"]
        assert np.isnan(share) == np.isnan(null)
        assert np.isnan(share) or (0.0 <= share <= 1.0 and 0.0 <= null <= 1.0)
    if K == 0:
        assert got["inconsistent_group_frac"] == 0.0  # no history: every step group is consistent


def test_context_inconsistency_hand_example():
    """Two trajectories a-b-c and a-d-c of one task: the step group of c saw different
    previous observations (b vs d), the step group of a did not."""
    from repro.studies.hgpo.diagnostics import context_inconsistency

    b = StepBatch.from_anchor_strings(group=[0] * 6, traj=[0, 0, 0, 1, 1, 1], step=[0, 1, 2] * 2,
                                      anchor_obs=list("abc") + list("adc"), reward=[0, 0, 10, 0, 0, 0],
                                      episode_reward=[10] * 3 + [0] * 3, valid=[True] * 6)
    for K, frac in ((0, 0.0), (1, 0.5), (2, 0.5)):
        got = context_inconsistency(b, {"history_length": K})
        assert got["inconsistent_group_frac"] == frac and got["inconsistent_row_frac"] == frac


def test_between_share_matches_loop():
    """eta^2 of returns between context labels inside groups, against a loop over groups."""
    from repro.studies.hgpo.diagnostics import between_share

    rng = np.random.default_rng(3)
    group, label = rng.integers(0, 5, 200), rng.integers(0, 3, 200)
    x = rng.normal(size=200) + 0.5 * label
    between = total = 0.0
    for g in np.unique(group):
        xg, lg = x[group == g], label[group == g]
        total += ((xg - xg.mean()) ** 2).sum()
        between += sum((lg == c).sum() * (xg[lg == c].mean() - xg.mean()) ** 2 for c in np.unique(lg))
    assert between_share(x, group, label) == pytest.approx(between / total, rel=1e-12)


def test_context_share_can_fail():
    """The null share comes from labels shuffled inside each group (each group keeps its labels);
    returns set by the context give share 1 above the null, returns blind to it give share ~ null."""
    from repro.studies.hgpo.diagnostics import between_share, shuffled_within

    rng = np.random.default_rng(0)
    group, label = np.repeat(np.arange(40), 6), np.tile([0, 0, 0, 1, 1, 1], 40)
    perm = shuffled_within(label, group, rng)
    for g in range(40):
        assert sorted(perm[group == g]) == sorted(label[group == g])
    assert (perm != label).any()
    by_context = label.astype(float) + 0.0 * group
    null = np.mean([between_share(by_context, group, shuffled_within(label, group, rng)) for _ in range(50)])
    assert between_share(by_context, group, label) == 1.0 and null < 0.5
    blind = rng.normal(size=len(group))
    observed = between_share(blind, group, label)
    null = np.mean([between_share(blind, group, shuffled_within(label, group, rng)) for _ in range(200)])
    assert abs(observed - null) < 0.1  # no dependence on context: nothing to find
