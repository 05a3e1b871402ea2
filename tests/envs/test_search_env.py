"""The search environment: SQuAD exact match, the last answer of the history, the turn limit,
empty queries, finished episodes ignored, and clear errors."""

from __future__ import annotations

import pytest

from repro.data import search_embedded as gen
from repro.envs.search import SearchBatchEnv, exact_match, format_information, last_answer, normalize_answer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "embedded"
    gen.build(out, {"seed": 5, "people": 40, "train": 30, "valid": 4, "test": 8})
    return out


def test_normalisation_and_exact_match():
    assert normalize_answer("  The  Eiffel-Tower! ") == "eiffeltower"
    assert exact_match("an Apple", ["apple", "pear"]) and not exact_match("apples", ["apple"])
    assert not exact_match(None, ["x"])
    assert last_answer("<answer>a</answer> x <answer> b </answer>") == "b" and last_answer("none") is None
    assert format_information(["A", "B"]) == "\n<information>Doc 1: A\nDoc 2: B\n</information>\n"


def test_search_answer_and_turn_limit(data):
    env = SearchBatchEnv(data, "test", max_turns=2, topk=2)
    games = env.list_games()[:3]
    qs = env.questions()
    obs, _, infos = env.reset(games)
    assert obs == [qs[g]["question"] for g in games] and infos[0]["won"] is False
    hop = qs[games[0]]["hops"][0]
    obs, rewards, dones, infos = env.step([f"<search>{hop}</search>", "<answer>wrong</answer>", "<search> </search>"])
    assert obs[0].startswith("\n<information>Doc 1: \"" + hop + "\"") and obs[0].count("Doc ") == 2
    assert dones == [False, True, False] and rewards == [0.0, 0.0, 0.0] and obs[2] == ""  # empty query: nothing
    right = qs[games[0]]["answers"][0]
    obs, rewards, dones, infos = env.step([f"<answer>{right}</answer>", "ignored", ""])
    assert dones == [True, True, True]                  # episode 2 hits max_turns unanswered
    assert rewards == [1.0, 0.0, 0.0] and [i["won"] for i in infos] == [True, False, False]


def test_errors(data):
    with pytest.raises(FileNotFoundError, match="no split 'dev'.*splits: test, train, valid"):
        SearchBatchEnv(data, "dev").list_games()
    env = SearchBatchEnv(data, "test")
    with pytest.raises(KeyError, match="question ids not in"):
        env.reset(["nope"])
    env.reset(env.list_games()[:2])
    with pytest.raises(ValueError, match="1 actions for 2 episodes"):
        env.step(["x"])
    with pytest.raises(ValueError, match="must be >= 1"):
        SearchBatchEnv(data, "test", max_turns=0)
