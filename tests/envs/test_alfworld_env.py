"""The batched ALFWorld environment and the expert demonstrations, on generated games run by
the real TextWorld PDDL engine with ALFWorld's wrappers (two worker processes)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# alfworld creates $ALFWORLD_DATA when imported; keep it in a temporary directory
if "ALFWORLD_DATA" not in os.environ:
    os.environ["ALFWORLD_DATA"] = tempfile.mkdtemp(prefix="alfworld-data-")

from repro.data.alfworld import generate_embedded, write_alfworld_config  # noqa: E402
from repro.envs.alfworld import (  # noqa: E402
    TASK_TYPES,
    AlfworldBatchEnv,
    expert_episodes,
    list_games,
    task_type,
)

# 12 train games (two per task type) keep the expert test meaningful; eval splits stay tiny.
SMALL = {"seed": 5, "n_layouts_seen": 4, "n_layouts_unseen": 2,
         "games": {"train": 12, "valid_seen": 3, "valid_unseen": 3}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alfworld_env") / "embedded"
    generate_embedded(root, SMALL)
    return root


@pytest.fixture(scope="module")
def env(data_root):
    with AlfworldBatchEnv(data_root, "train", num_workers=2, max_steps=50, seed=0) as e:
        yield e


def _walkthrough(gamefile: str) -> list[str]:
    return json.loads(Path(gamefile).read_text())["walkthrough"]


def test_list_games_matches_alfredtwenv(data_root):
    from alfworld.agents.environment import get_environment

    cfg = write_alfworld_config(data_root)
    for split, train_eval in (("train", "train"), ("valid_seen", "eval_in_distribution"),
                              ("valid_unseen", "eval_out_of_distribution")):
        ours = list_games(data_root, split)
        assert ours == sorted(ours) and len(ours) == SMALL["games"][split]
        theirs = get_environment("AlfredTWEnv")(cfg, train_eval=train_eval).game_files
        assert ours == sorted(theirs)
    assert {task_type(g) for g in list_games(data_root, "train")} == set(TASK_TYPES.values())
    assert list_games(data_root, "train", task_types=[2]) == [
        g for g in list_games(data_root, "train") if task_type(g) == "look_at_obj_in_light"]


def test_reset_step_protocol(env):
    games = env.games[:3]
    batch = [g for g in games for _ in range(2)]  # three groups of two rollouts
    obs, adm, infos = env.reset(batch)
    assert len(obs) == len(adm) == len(infos) == 6
    for o, a, info, g in zip(obs, adm, infos, batch):
        assert "Your task is to: " in o and a and "help" not in a
        assert info["admissible"] == a and info["gamefile"] == g and info["won"] is False
        assert info["task_type"] == task_type(g)
    assert obs[0] == obs[1]  # a group shares the initial state

    # member 0 of each group follows the walkthrough, member 1 only looks
    plans = [_walkthrough(g) if i % 2 == 0 else [] for i, g in enumerate(batch)]
    total = [0.0] * 6
    won_at = [None] * 6
    for t in range(max(len(p) for p in plans) + 2):
        acts = [p[t] if t < len(p) else "look" for p in plans]
        obs, rewards, dones, infos = env.step(acts)
        assert len(obs) == len(rewards) == len(dones) == len(infos) == 6
        for i in range(6):
            total[i] += rewards[i]
            assert rewards[i] in (0.0, 10.0)
            if rewards[i] == 10.0:
                won_at[i] = t
                assert dones[i] and infos[i]["won"]
            assert set(infos[i]) >= {"won", "task_type", "admissible", "gamefile"}
            assert "help" not in infos[i]["admissible"]
    for i in range(6):
        if i % 2 == 0:
            assert total[i] == 10.0 and won_at[i] == len(plans[i]) - 1
            assert infos[i]["step"] == len(plans[i])  # finished slots ignore further actions
        else:
            assert total[i] == 0.0 and not dones[i] and not infos[i]["won"]
    # a finished slot keeps returning its final observation, reward 0, done True
    final = list(obs)
    obs2, rewards2, dones2, _ = env.step(["look"] * 6)
    for i in range(0, 6, 2):
        assert obs2[i] == final[i] and rewards2[i] == 0.0 and dones2[i]


def test_invalid_action_and_step_limit(data_root):
    with AlfworldBatchEnv(data_root, "valid_unseen", num_workers=1, max_steps=3) as e:
        games = e.list_games()
        obs, adm, _ = e.reset(games[:2])
        obs, rewards, dones, infos = e.step(["jump around", adm[1][0]])
        assert obs[0] == "Nothing happens." and not infos[0]["action_admissible"]
        assert infos[1]["action_admissible"] and not any(dones)
        e.step(["look", "look"])
        obs, rewards, dones, infos = e.step(["look", "look"])
        assert dones == [True, True] and rewards == [0.0, 0.0]
        assert not infos[0]["won"] and infos[0]["step"] == 3
        with pytest.raises(ValueError):
            e.step(["look"])


def test_cached_games_are_not_reloaded(env):
    batch = env.sample_games(2, group_size=2)
    assert batch[0] == batch[1] and batch[2] == batch[3] and batch[0] != batch[2]
    env.reset(batch)
    loads = sum(s["loads"] for s in env.worker_stats())
    obs_a, _, _ = env.reset(batch)
    assert sum(s["loads"] for s in env.worker_stats()) == loads  # replay hits the cache
    assert obs_a[0] == obs_a[1]


def test_engine_cache_changes_nothing(data_root):
    """Memoized translation and parsing give the same episodes as the unmodified engine, also
    when several slots load the same game (each copy is stepped independently)."""
    def play(cache: bool) -> list:
        with AlfworldBatchEnv(data_root, "valid_seen", num_workers=1,
                              engine_cache=cache) as e:
            games = [g for g in e.list_games() for _ in range(2)]  # groups of 2: repeated loads
            out = []
            for _ in range(2):  # the second reset replays the cached translation
                obs, adm, _ = e.reset(games)
                out.append((obs, adm))
                for t in range(max(len(_walkthrough(g)) for g in games)):
                    acts = [_walkthrough(g)[t] if t < len(_walkthrough(g)) else "look"
                            for g in games]
                    out.append(e.step(acts))
            obs, adm, _ = e.reset(games)  # and a walk through other states (rotating choices)
            for t in range(8):
                obs, _, _, infos = e.step([a[(3 * t + i) % len(a)] for i, a in enumerate(adm)])
                adm = [info["admissible"] for info in infos]
                out.append((obs, adm))
            return out

    assert play(True) == play(False)


def test_chains_reloaded_in_place_play_like_fresh_ones(data_root):
    """With a cache as small as the batch, the second batch's games load into the first batch's
    chains (same planner library); its episodes equal those of a fresh environment."""
    games = list_games(data_root, "train")
    first, second = games[:8], games[4:12]

    def play(env, batch):
        obs, adm, _ = env.reset(batch)
        out = [(obs, adm)]
        for t in range(6):
            obs, rewards, dones, infos = env.step([a[(2 * t + i) % len(a)] for i, a in enumerate(adm)])
            adm = [info["admissible"] for info in infos]
            out.append((obs, rewards, dones, adm))
        return out

    with AlfworldBatchEnv(data_root, "train", num_workers=1, cache_size=8) as small:
        play(small, first)
        reused = play(small, second)
        assert small.worker_stats()[0]["chains"] == 8
    with AlfworldBatchEnv(data_root, "train", num_workers=1) as fresh:
        assert reused == play(fresh, second)


def test_spawn_workers(data_root):
    with AlfworldBatchEnv(data_root, "valid_seen", num_workers=2, start_method="spawn") as e:
        g = e.list_games()[0]
        obs, adm, infos = e.reset([g, g])
        acts = _walkthrough(g)
        for a in acts:
            obs, rewards, dones, infos = e.step([a, a])
        assert rewards == [10.0, 10.0] and dones == [True, True]


def test_expert_wins_most_train_games(data_root):
    n = SMALL["games"]["train"]
    episodes, won = expert_episodes(data_root, "train", n, noise=0.0, seed=0, max_steps=50)
    assert len(episodes) == len(won) == n
    assert len({ep[0]["gamefile"] for ep in episodes}) == n  # each game once
    assert sum(won) >= 0.7 * n  # ALFWorld's hand-coded expert fails on some pick_two games
    steps = [s for ep in episodes for s in ep]
    # without noise every step is the expert's, except where a stuck expert said "help"
    assert all(s["expert"] or s["expert_action"] is None for s in steps)
    assert sum(s["expert"] for s in steps) >= 0.9 * len(steps)
    for ep, w in zip(episodes, won):
        assert ep[0]["obs"].startswith("-= Welcome to TextWorld, ALFRED! =-")
        assert ep[0]["task"] and all(s["task"] == ep[0]["task"] for s in ep)
        assert all(s["action"] in s["admissible"] or s["action"] == "look" for s in ep)
        assert all("help" not in s["admissible"] for s in ep)
        if w:
            assert len(ep) < 50


def test_expert_noise_is_seeded(data_root):
    kw = dict(n_episodes=4, noise=0.5, seed=7, max_steps=12)
    a, won_a = expert_episodes(data_root, "train", **kw)
    b, won_b = expert_episodes(data_root, "train", **kw)
    assert [[s["action"] for s in ep] for ep in a] == [[s["action"] for s in ep] for ep in b]
    assert won_a == won_b
    flags = [s["expert"] for ep in a for s in ep]
    assert any(flags) and not all(flags)  # noise actions are flagged
    for s in (s for ep in a for s in ep):
        assert s["action"] in s["admissible"] or s["action"] == s["expert_action"]
