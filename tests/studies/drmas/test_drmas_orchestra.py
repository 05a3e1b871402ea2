"""Dr. MAS's math team on a scripted policy: who acts when, the loop limit, the Verifier skipped on
the last loop, approvals leaving the loop, the released verdict rule, what each role sees, the
rows' agents, validity and the outcome reward on every row."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data import math_embedded as gen
from repro.envs.math import MathBatchEnv
from repro.rl.generation import Generation
import repro.rl.math_benchmark  # noqa: F401  (registers the math benchmark)
from repro.registry import BENCHMARKS
from repro.rl.rollout import PromptOptions
from repro.studies.drmas.orchestra import SOLVER, VERIFIER, run_math_team, team_prompt, verdict


class Script:
    """Answers by role and problem: ``plan[(question, role)]`` is the list of that role's replies
    on that problem, one per turn; every call is recorded with its ``agents`` argument."""

    def __init__(self, plan):
        self.plan, self.calls = plan, []

    def generate(self, prompts, *, temperature, seed, allowed=None, agents=None):
        self.calls.append((list(prompts), agents))
        out = []
        for p in prompts:
            role = VERIFIER if "Role: verifier" in p else SOLVER
            key = next(k for k in self.plan if k[0] in p and k[1] == role)
            text = self.plan[key].pop(0)
            out.append(Generation(text=text, prompt_ids=[1, 2], response_ids=[3] * (1 + len(text) % 4),
                                  logprobs=[-0.5] * (1 + len(text) % 4)))
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("math") / "embedded"
    gen.build(out, {"seed": 1, "train": 40, "valid": 4, "test": 10})
    return out


def play(data, plan, games, max_loops=2, agents=None):
    env = MathBatchEnv(data, "train", instruction="", extract="boxed")
    probs = env.problems()
    script = Script({(probs[g]["question"], role): list(replies) for (g, role), replies in plan(probs).items()})
    ro = run_math_team(env, script, games, list(range(len(games))), max_steps=max_loops, temperature=1.0, seed=0,
                       prompt=PromptOptions(style="compact", require_think=False), bench=BENCHMARKS.get("math"),
                       agents=agents)
    return ro, script, probs


def test_loop_order_limits_and_rewards(data):
    g = MathBatchEnv(data, "train").list_games()[:3]

    def plan(probs):
        a = [probs[x]["answer"] for x in g]
        return {
            # problem 0: wrong, rejected, then right on the last loop (no verifier there)
            (g[0], SOLVER): ["1 + 1 = 2. \\boxed{999}", f"fixed. \\boxed{{{a[0]}}}"],
            (g[0], VERIFIER): ["the sum is off <verify>reject</verify>"],
            # problem 1: right and approved at once: leaves the loop after one Solver + Verifier
            (g[1], SOLVER): [f"\\boxed{{{a[1]}}}"],
            (g[1], VERIFIER): ["<verify>approve</verify>"],
            # problem 2: no box (invalid), an unreadable verdict (approves, invalid: no tag)
            (g[2], SOLVER): [f"the answer is {a[2]}"],
            (g[2], VERIFIER): ["looks fine to me"],
        }

    ro, script, probs = play(data, plan, g)
    b = ro.batch
    assert b.traj.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert b.agent.tolist() == [SOLVER, VERIFIER, SOLVER, SOLVER, VERIFIER, SOLVER, VERIFIER]
    assert b.step.tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert b.valid.tolist() == [True, True, True, True, True, False, False]
    # the final answers: problem 0's second solution, problem 1's; problem 2 has no \boxed{}: 0
    assert ro.won.tolist() == [True, True, False]
    assert b.reward.tolist() == [1.0] * 5 + [0.0] * 2 and np.array_equal(b.episode_reward, b.reward)
    # calls: solver (all three), verifier (all three), solver (problem 0 only); no last verifier
    assert [len(p) for p, _ in script.calls] == [3, 3, 1]
    assert all("Role: solver" in p for p in script.calls[2][0])
    last = script.calls[2][0][0]  # the second solver turn sees both earlier outputs, in order
    assert last.index('"Solver Agent": 1 + 1 = 2.') < last.index('"Verifier Agent": the sum is off')
    assert all(agents is None for _, agents in script.calls)  # one set of weights


def test_one_loop_never_calls_the_verifier_and_weights_per_role(data):
    g = MathBatchEnv(data, "train").list_games()[:2]
    ro, script, _ = play(data, lambda probs: {(x, SOLVER): ["\\boxed{0}"] for x in g}, g, max_loops=1,
                         agents=object())
    assert ro.batch.agent.tolist() == [SOLVER, SOLVER] and len(script.calls) == 1
    assert script.calls[0][1] == [SOLVER, SOLVER]  # with weights per agent, the role is named


def test_verdict_rule_and_prompts():
    assert verdict("x <verify>reject</verify>") == (False, True)
    assert verdict("<verify>approve</verify>") == (True, True)
    assert verdict("<verify>maybe</verify>") == (True, True)  # neither word: approved
    assert verdict("no tag, reject") == (True, False)
    p = team_prompt(SOLVER, "What is 2+2?", [], "full")
    assert "# Task Introduction" in p and "# Your Teammates' Outputs" in p and "\\boxed{}" in p
    assert team_prompt(VERIFIER, "Q", [(SOLVER, "4")], "compact").count('The output of "Solver Agent": 4') == 1
    with pytest.raises(ValueError, match="prompt style 'wide'"):
        team_prompt(SOLVER, "Q", [], "wide")


def test_team_warm_start_pairs(data):
    from repro.studies.drmas.warmstart import APPROVE, REJECT, boxed_solution, team_pairs, wrong_solution

    env = MathBatchEnv(data, "train", instruction="")
    train = list(env.problems().values())[:40]
    pairs = team_pairs(env, train, {"seed": 0, "prompt_style": "compact"})
    solver = [(p, r) for p, r in pairs if "Role: solver" in p]
    verifier = [(p, r) for p, r in pairs if "Role: verifier" in p]
    assert len(verifier) == 40 and {r for _, r in verifier} == {APPROVE, REJECT}
    assert len(solver) == 40 + sum(r == REJECT for _, r in verifier)  # a second answer after each reject
    for q in train:  # every Solver target is the right solution, in \boxed{} form, and grades right
        assert boxed_solution(q["solution"]).endswith(f"\\boxed{{{q['answer']}}}")
    import random
    import re
    for seed in range(20):  # the step's result and the box agree, and both are wrong
        w = wrong_solution("3 + 4 = 7. \\boxed{7}", "7", random.Random(seed))
        step, box = re.fullmatch(r"3 \+ 4 = (\d+)\. \\boxed\{(\d+)\}", w).groups()
        assert step == box != "7"
