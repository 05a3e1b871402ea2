"""GraphGPO's vectorised estimator against the plain-loop reference and hand-made graphs
(agentic-rl.md §3.5.2-3.5.3, §3.9 item 8)."""

from __future__ import annotations

import numpy as np
import pytest

import repro.studies.graphgpo  # noqa: F401  (registers the estimator)
from repro.registry import ESTIMATORS
from repro.rl.batch import SUCCESS, StepBatch
from repro.studies.graphgpo.estimator import GraphGPOParams, distances, graph_rewards
from repro.studies.graphgpo.loop_reference import graphgpo_loop

N_STATES = 6
#: key strings: states 2k and 2k+1 differ by one character (ratio ~0.99: merged by similarity)
TEXTS = [f"{'You are in the middle of a room with many receptacles. ' * 2}state {s // 2}{'.' if s % 2 else ''}"
         for s in range(N_STATES + 3)]


def random_batch(seed, group_sizes, *, max_len=10, p_invalid=0.2, p_success=0.5, text=False):
    """Trajectory-major rows, interleaved groups; random walks over N_STATES states with revisits
    and cycles; a failed episode ends in one of three dead-end states (codes N_STATES..+2), so some
    states cannot reach success; a group may have no success."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("group", "traj", "step", "anchor", "next_anchor", "reward", "episode_reward", "valid")}
    traj_id = 0
    trajectories = []
    for gid, size in enumerate(group_sizes):
        group_success = rng.random() < 0.8
        for _ in range(size):
            length = int(rng.integers(1, max_len + 1))
            states = [0]
            for _ in range(length - 1):
                states.append(int((states[-1] + rng.choice([-1, 0, 1, 2])) % N_STATES))
            won = group_success and rng.random() < p_success
            last = SUCCESS if won else int(N_STATES + rng.integers(0, 3)) if rng.random() < 0.5 else \
                int(rng.integers(0, N_STATES))
            trajectories.append((gid * 7 + 3, states, won, last))
    for pos in rng.permutation(len(trajectories)):
        gid, states, won, last = trajectories[pos]
        for t, s in enumerate(states):
            cols["group"].append(gid)
            cols["traj"].append(traj_id)
            cols["step"].append(t)
            cols["anchor"].append(s)
            cols["next_anchor"].append(states[t + 1] if t + 1 < len(states) else last)
            cols["reward"].append(10.0 if won and t == len(states) - 1 else 0.0)
            cols["episode_reward"].append(10.0 if won else 0.0)
            cols["valid"].append(bool(rng.random() >= p_invalid))
        traj_id += 1
    return StepBatch(**cols, anchor_text=TEXTS if text else None)


def loop(b, **kw):
    return np.array(graphgpo_loop(b.group.tolist(), b.anchor.tolist(), b.next_anchor.tolist(), b.valid.tolist(),
                                  b.episode_reward.tolist(), texts=b.anchor_text, **kw))


LAYOUTS = {"singletons": [1, 1, 1], "mixed": [1, 2, 5, 8], "eights": [8, 8, 8, 8]}
CASES = [(layout, seed) for layout in LAYOUTS for seed in range(4)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
@pytest.mark.parametrize("mode", ["mean_std_norm", "mean_norm"])
@pytest.mark.parametrize("exponent", ["code", "paper", "normalized"])
def test_matches_loop(case, mode, exponent):
    b = random_batch(case[1], LAYOUTS[case[0]])
    params = {"omega": 0.3, "mode": mode, "exponent": exponent}
    got = ESTIMATORS.get("graphgpo")(b, params)
    want = loop(b, omega=0.3, mode=mode, exponent=exponent)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("similarity", [False, True])
def test_similarity_merge_matches_loop(seed, similarity):
    b = random_batch(seed, [8, 8, 3], text=True)
    params = {"omega": 0.2, "similarity": similarity, "step_advantage_w": 0.7, "episode_advantage_w": 0.5}
    got = ESTIMATORS.get("graphgpo")(b, params)
    want = loop(b, omega=0.2, similarity=similarity, beta_g=0.7, beta_e=0.5)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_similarity_changes_the_graph():
    """Merging 2k with 2k+1 shortens distances somewhere (else the similarity test proves nothing)."""
    changed = 0
    for seed in range(6):
        b = random_batch(seed, [8, 8], text=True)
        changed += not np.allclose(distances(b, {"similarity": True})[1], distances(b, {})[1])
    assert changed >= 3


def _hand_batch(trajs):
    """Rows from [(group, [(s, s_next, valid), ...], won)], trajectory-major."""
    cols = {k: [] for k in ("group", "traj", "step", "anchor", "next_anchor", "reward", "episode_reward", "valid")}
    for t_id, (g, steps, won) in enumerate(trajs):
        for t, (s, s2, v) in enumerate(steps):
            for k, x in zip(cols, (g, t_id, t, s, s2, 10.0 * (won and t == len(steps) - 1), 10.0 * won, v)):
                cols[k].append(x)
    return StepBatch(**cols)


def test_hand_made_graph_distances():
    """Group 0: 0 -> 1 -> success; 0 -> 2 -> 2 (a self-loop) -> 3 (dead end); 2 -> 1 by another path.
    d(success) 0, d(1) 1, d(0) 2, d(2) 2 (2 -> 1 -> success), d(3) unreachable = d_max + 1 = 3.
    Group 1: no success: every d = 1."""
    S = SUCCESS
    b = _hand_batch([
        (0, [(0, 1, True), (1, S, True)], True),
        (0, [(0, 2, True), (2, 2, True), (2, 3, True)], False),
        (0, [(0, 2, True), (2, 1, False), (1, 4, True)], False),
        (1, [(0, 1, True), (1, 0, True)], False),
    ])
    d, d_next = distances(b)
    np.testing.assert_array_equal(d, [2, 1, 2, 2, 2, 2, 2, 1, 1, 1])
    np.testing.assert_array_equal(d_next, [1, 0, 2, 2, 3, 2, 1, 3, 1, 1])
    r = graph_rewards(b, {"omega": 0.1})
    np.testing.assert_allclose(r, 10 * 0.1 ** d_next - 0.1 * ~b.valid)
    # the two edges leaving 0 in group 0: to 1 (d 1) beats to 2 (d 2), whatever the episode did
    adv_g = ESTIMATORS.get("graphgpo")(b, {"episode_advantage_w": 0.0})
    assert adv_g[0] > 0 > adv_g[2]


def test_no_success_gives_zero_graph_advantage_only_without_penalty():
    b = random_batch(1, [8, 8], p_success=0.0)
    assert not (b.next_anchor == SUCCESS).any()
    valid = StepBatch(**{**{k: getattr(b, k) for k in ("group", "traj", "step", "anchor", "next_anchor",
                                                        "reward", "episode_reward")}, "valid": np.ones(len(b), bool)})
    np.testing.assert_array_equal(ESTIMATORS.get("graphgpo")(valid, {"episode_advantage_w": 0.0}), 0.0)
    assert np.abs(ESTIMATORS.get("graphgpo")(b, {"episode_advantage_w": 0.0})).max() > 0  # the penalty still applies


def test_exponent_conventions_agree_only_without_epsilon_and_penalty():
    """Within one state's edges d(s) is fixed, so the three exponents scale rewards by a constant:
    equal A^G under mean_std_norm when epsilon is negligible and no step is invalid (§3.5.2)."""
    b = random_batch(3, [8, 8, 8], p_invalid=0.0)
    adv = {e: ESTIMATORS.get("graphgpo")(b, {"omega": 0.5, "epsilon": 1e-12, "exponent": e, "episode_advantage_w": 0.0})
           for e in ("code", "paper", "normalized")}
    np.testing.assert_allclose(adv["paper"], adv["code"], atol=1e-6)
    np.testing.assert_allclose(adv["normalized"], adv["code"], atol=1e-6)
    # with the paper's epsilon (1e-6) and omega = 0.1 they part where rewards are tiny: a state 7
    # steps from success with one edge closer (d 6) and one into a dead end (d_max + 1 = 8) gets
    # +-0.619 (code), +-0.291 (paper), +-0.707 (normalized), the reference's worked numbers
    S = SUCCESS
    chain = _hand_batch([(0, [(7 - k, 6 - k if k < 6 else S, True) for k in range(7)], True),
                         (0, [(7, 9, True)], False)])
    got = {e: ESTIMATORS.get("graphgpo")(chain, {"omega": 0.1, "exponent": e, "episode_advantage_w": 0.0})
           for e in ("code", "paper", "normalized")}
    for e, want in (("code", 0.619), ("paper", 0.291), ("normalized", 0.707)):
        assert got[e][0] == pytest.approx(want, abs=5e-4) and got[e][-1] == pytest.approx(-want, abs=5e-4)
    # and invalid steps break it at any epsilon (the penalty is not scaled with the rewards)
    bad = random_batch(3, [8, 8, 8], p_invalid=0.3)
    pen = {e: ESTIMATORS.get("graphgpo")(bad, {"omega": 0.5, "epsilon": 1e-12, "exponent": e, "episode_advantage_w": 0.0})
           for e in ("code", "paper")}
    assert np.abs(pen["paper"] - pen["code"]).max() > 0.05


def test_needs_next_states_and_texts():
    b = random_batch(0, [2])
    plain = StepBatch(**{k: getattr(b, k) for k in ("group", "traj", "step", "anchor", "reward", "episode_reward", "valid")})
    with pytest.raises(ValueError, match="next_anchor"):
        ESTIMATORS.get("graphgpo")(plain, {})
    with pytest.raises(ValueError, match="anchor_text"):
        ESTIMATORS.get("graphgpo")(b, {"similarity": True})
    with pytest.raises(ValueError, match="omega"):
        GraphGPOParams(omega=1.0)


def test_from_anchor_strings_codes_next_states_like_anchors():
    b = StepBatch.from_anchor_strings(group=[0, 0, 0], traj=[0, 0, 1], step=[0, 1, 0], anchor_obs=["a", "b", "a"],
                                      next_obs=["b", None, "c"], reward=[0, 10, 0], episode_reward=[10, 10, 0],
                                      valid=[1, 1, 1], keep_text=True)
    np.testing.assert_array_equal(b.anchor, [0, 1, 0])
    np.testing.assert_array_equal(b.next_anchor, [1, SUCCESS, 2])
    assert b.anchor_text == ["a", "b", "c"]


@pytest.mark.parametrize("seed", range(3))
def test_released_loop_structure_gives_the_same_numbers(seed):
    """The benchmark's reference-cost implementation computes what the estimator computes."""
    from repro.studies.graphgpo.loop_reference import graphgpo_released_loops

    b = random_batch(seed, [8, 8, 5, 1])
    text = lambda c: "success" if c == SUCCESS else f"state {c}"  # noqa: E731
    got = graphgpo_released_loops([f"u{g}" for g in b.group], [f"t{t}" for t in b.traj],
                                  [text(c) for c in b.anchor], [text(c) for c in b.next_anchor], b.valid,
                                  b.episode_reward, omega=0.3)
    np.testing.assert_allclose(got, ESTIMATORS.get("graphgpo")(b, {"omega": 0.3}), rtol=1e-9, atol=1e-9)
