"""The math environment: math-verify's answer checks on hand cases, the generated problems (splits,
unseen test problems, worked solutions that verify), single-step episodes and the single-turn
rollout's rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro.envs.math import MathBatchEnv, extract_answer, is_correct, read_problems
from repro.data import math_embedded as gen
import repro.rl.math_benchmark  # noqa: F401  (registers the math benchmark)
from repro.registry import BENCHMARKS
from repro.rl.generation import Generation
from repro.rl.rollout import PromptOptions, run_single_turn


@pytest.mark.parametrize("gold,response,ok", [
    ("19", "12 + 7 = 19. #### 19", True),
    ("19", "12 + 7 = 19. #### 18", False),          # the answer is what follows ####
    ("1/2", "so the answer is \\boxed{0.5}", True),  # equivalent forms
    ("\\frac{1}{2}", "\\boxed{\\frac{2}{4}}", True),
    ("5", "x = 15 / 3 = 5. #### 5.0", True),
    ("8", "#### ", False),                          # malformed: nothing after the marker
    ("8", "I do not know", False),
    ("8", "", False),
])
def test_verifier_on_hand_cases(gold, response, ok):
    assert is_correct(gold, response) is ok


def test_the_memoised_verifier_equals_parsing_afresh():
    """The memo changes no verdict or extraction, and hands out lists a caller may change."""
    import repro.envs.math as menv

    cases = [("19", "12 + 7 = 19. #### 19"), ("19", "#### 18"), ("1/2", "\\boxed{0.5}"),
             ("8", "no answer"), ("19", "12 + 7 = 19. #### 19")]  # the last repeats the first
    def afresh(*args) -> bool:  # every parse redone: the memo's caches cleared first
        menv._parse.cache_clear()
        return menv.is_correct.__wrapped__(*args)

    expected = [(afresh(gold, text), afresh(gold, text, "boxed")) for gold, text in cases]
    menv._parse.cache_clear()
    menv.is_correct.cache_clear()
    for (gold, text), (auto, boxed) in zip(cases, expected):
        assert is_correct(gold, text) is auto and is_correct(gold, text, "boxed") is boxed
    assert menv.is_correct.cache_info().hits >= 2  # the repeated response
    first = menv._parsed("#### 19")
    first.append("changed")
    assert menv._parsed("#### 19") == list(menv._parse.__wrapped__(" 19")) and len(menv._parsed("#### 19")) == 2


def test_answer_extraction():
    assert extract_answer("3 + 4 = 7. #### 7") == "7"
    assert extract_answer("\\boxed{42}") == "42"
    assert extract_answer("no number here") is None


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("math") / "embedded"
    gen.build(out, {"seed": 3, "train": 300, "valid": 20, "test": 80, "max_number": 9})
    return out


def test_generated_splits_are_deterministic_and_test_problems_unseen(data, tmp_path):
    again = tmp_path / "again"
    gen.build(again, {"seed": 3, "train": 300, "valid": 20, "test": 80, "max_number": 9})
    for split in ("train", "valid", "test"):
        assert (data / f"{split}.jsonl").read_bytes() == (again / f"{split}.jsonl").read_bytes()
    train, test = read_problems(data, "train"), read_problems(data, "test")
    assert len(train) == 300 and len(test) == 80
    train_q = {p["question"] for p in train}
    assert not train_q & {p["question"] for p in test}
    assert 0 < sum(p["held_out_phrasing"] for p in test) < len(test)  # a quarter, by default
    # a multi-step test problem's numbers never occur in a train problem of its family
    nums = lambda p: tuple(int(t) for t in p["question"].replace(".", " ").split() if t.isdigit())  # noqa: E731
    train_tuples = {(p["source"], nums(p)) for p in train if p["source"] in gen.MULTI_STEP}
    assert not {(p["source"], nums(p)) for p in test if p["source"] in gen.MULTI_STEP} & train_tuples
    manifest = json.loads((data / "MANIFEST.json").read_text())
    assert manifest["splits"] == {"train": 300, "valid": 20, "test": 80}


def test_worked_solutions_verify_and_answers_are_integers(data):
    for p in read_problems(data, "train"):
        assert is_correct(p["answer"], p["solution"]), p
        assert int(p["answer"]) >= 0


def test_single_step_episodes(data):
    env = MathBatchEnv(data, "test", instruction="hash")
    games = env.list_games()[:3]
    obs, adm, infos = env.reset(games)
    assert all(o.endswith('output the final answer after "####".') for o in obs) and adm == [[], [], []]
    answers = [p["answer"] for p in (env.problems()[g] for g in games)]
    _, rewards, dones, infos = env.step([f"#### {answers[0]}", "#### -1", "garbage"])
    assert rewards == [1.0, 0.0, 0.0] and dones == [True] * 3 and [i["won"] for i in infos] == [True, False, False]
    with pytest.raises(FileNotFoundError, match="no split 'aime24'.*splits: test, train, valid"):
        MathBatchEnv(data, "aime24").list_games()
    with pytest.raises(KeyError, match="problem ids not in"):
        env.reset(["nope"])


class Answers:
    """A scripted sampler (the rollout's own ``GenerationBackend`` protocol): row i answers
    ``replies[i]``; token ids are the characters' codes."""

    def __init__(self, replies):
        self.replies = replies

    def generate(self, prompts, *, temperature, seed, allowed=None, agents=None):
        return [Generation(text=r, prompt_ids=[ord(c) for c in p[:5]], response_ids=[ord(c) for c in r] or [0],
                           logprobs=[-0.1] * max(len(r), 1)) for p, r in zip(prompts, self.replies)]


def test_single_turn_rollout_rows(data):
    env = MathBatchEnv(data, "train")
    g = env.list_games()[:2]
    probs = env.problems()
    replies = [f"#### {probs[g[0]]['answer']}", "#### 999", "no answer", f"#### {probs[g[1]]['answer']}"]
    ro = run_single_turn(env, Answers(replies), [g[0], g[0], g[1], g[1]], [0, 0, 1, 1], max_steps=1,
                         temperature=1.0, seed=0, prompt=PromptOptions(require_think=False),
                         bench=BENCHMARKS.get("math"))
    b = ro.batch
    assert b.group.tolist() == [0, 0, 1, 1] and b.traj.tolist() == [0, 1, 2, 3] and (b.step == 0).all()
    assert b.reward.tolist() == [1.0, 0.0, 0.0, 1.0] and np.array_equal(b.episode_reward, b.reward)
    assert b.valid.tolist() == [True, True, False, True]
    assert ro.won.tolist() == [True, False, False, True] and ro.lengths.tolist() == [1, 1, 1, 1]
    assert ro.old_logprobs is not None and ro.task_types == [probs[x]["source"] for x in (g[0], g[0], g[1], g[1])]
