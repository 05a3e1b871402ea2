"""Dr. MAS's search team on a scripted policy over the real generated knowledge base and BM25:
who acts when (the Verifier routes, Search only before the last step, Answer ends the episode),
the turn limit, what each role sees, validity, the rows' agents and the exact-match reward on
every row; the single-agent baseline's prompt and history; the scripted warm-start transcripts."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data import search_embedded as gen
from repro.envs.search import SearchBatchEnv
from repro.registry import BENCHMARKS
from repro.rl import prompts
from repro.rl.generation import Generation
from repro.rl.rollout import PromptOptions
from repro.rl.search_benchmark import env_prompt, step_history
import repro.studies.drmas  # noqa: F401  (registers the search benchmark)
from repro.studies.drmas.search_team import ANSWER, SEARCH, VERIFIER, project, run_search_team
from repro.studies.drmas.warmstart import SEARCH_DEFAULTS, search_team_pairs

ROLE_MARK = {"Role: verifier": VERIFIER, "Role: search": SEARCH, "Role: answer": ANSWER}


class Script:
    """Replies by (question, role), one per call, in order; records every call's prompts and agents."""

    def __init__(self, plan):
        self.plan, self.calls = plan, []

    def generate(self, prompts_, *, temperature, seed, allowed=None, agents=None):
        self.calls.append((list(prompts_), agents))
        out = []
        for p in prompts_:
            role = next(r for mark, r in ROLE_MARK.items() if mark in p)
            key = next(k for k in self.plan if p.startswith(f"Question: {k[0]}") and k[1] == role)
            text = self.plan[key].pop(0)
            out.append(Generation(text=text, prompt_ids=[1], response_ids=[3, 4], logprobs=[-0.1, -0.2]))
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "embedded"
    gen.build(out, {"seed": 3, "people": 60, "train": 100, "valid": 8, "test": 16})
    return out


def play(data, plan, games, max_steps=4, agents=None):
    env = SearchBatchEnv(data, "train", max_turns=max_steps)
    qs = env.questions()
    script = Script({(qs[g]["question"], role): list(r) for (g, role), r in plan(qs).items()})
    ro = run_search_team(env, script, games, list(range(len(games))), max_steps=max_steps, temperature=1.0,
                         seed=0, prompt=PromptOptions(style="compact", require_think=False, history_length=4),
                         bench=BENCHMARKS.get("search"), agents=agents)
    return ro, script, qs


def test_generated_questions_need_the_corpus(data):
    d = gen.generate({"seed": 3, "people": 60, "train": 100, "valid": 8, "test": 16})
    corpus = {c["contents"].split("\n")[0].strip('"'): c["contents"] for c in d["corpus"]}
    train_people = {q["hops"][0] for q in d["splits"]["train"] if " " in q["hops"][0] and "Corp" not in q["hops"][0]}
    for q in d["splits"]["test"] + d["splits"]["valid"]:
        assert q["hops"][0] not in train_people            # test people: never named by a train question
        assert q["answers"][0] in corpus[q["hops"][-1]]    # the last hop's passage states the answer
        for a, b in zip(q["hops"], q["hops"][1:]):
            assert b in corpus[a]                          # each hop's passage names the next
    assert len({q["question"] for q in d["splits"]["test"]}) == len(d["splits"]["test"])
    with pytest.raises(ValueError, match="unknown params"):
        gen.generate({"peeple": 3})


def test_routing_turn_limit_and_rewards(data):
    g = [x for x in SearchBatchEnv(data, "train").list_games()][:3]

    def plan(qs):
        q = [qs[x] for x in g]
        return {
            # 0: search its hops, then answer right at step len(hops) + 1
            **{(g[0], VERIFIER): ["<verify>no</verify>"] * len(q[0]["hops"]) + ["<verify>yes</verify>"]},
            (g[0], SEARCH): [f"<search>{h}</search>" for h in q[0]["hops"]],
            (g[0], ANSWER): [f"<answer> {q[0]['answers'][0].upper()}! </answer>"],  # normalised match
            # 1: an unreadable verdict routes to Answer at once (invalid verifier), wrong answer
            (g[1], VERIFIER): ["I think so"],
            (g[1], ANSWER): ["<answer>nowhere</answer>"],
            # 2: always "no": searches on steps 1-3, no search on the last step: ends unanswered
            (g[2], VERIFIER): ["<verify>NO</verify>"] * 4,
            (g[2], SEARCH): ["<search>x</search>", "no tag", "<search>y</search>"],
        }

    ro, script, qs = play(data, plan, g)
    b, h0 = ro.batch, len(qs[g[0]]["hops"])
    assert ro.won.tolist() == [True, False, False]
    assert ro.lengths.tolist() == [2 * h0 + 2, 2, 7]
    agents = [b.agent[b.traj == t].tolist() for t in range(3)]
    assert agents[0] == [VERIFIER, SEARCH] * h0 + [VERIFIER, ANSWER]
    assert agents[1] == [VERIFIER, ANSWER]
    assert agents[2] == [VERIFIER, SEARCH] * 3 + [VERIFIER]           # no Search on the last step
    assert b.valid[b.traj == 1].tolist() == [False, True]
    assert b.valid[b.traj == 2].tolist() == [True, True, True, False, True, True, True]
    assert b.reward[b.traj == 0].tolist() == [1.0] * (2 * h0 + 2) and not b.reward[b.traj != 0].any()
    # the Search agent sees this step's Verifier output; the Answer agent sees the retrieved passages
    search_prompts = [p for ps, _ in script.calls for p in ps if "Role: search" in p]
    assert all('The output of "Verifier Agent": <verify>' in p for p in search_prompts)
    answer0 = next(p for ps, _ in script.calls for p in ps if "Role: answer" in p and qs[g[0]]["question"] in p)
    assert f"Step {h0}:<search>{qs[g[0]]['hops'][-1]}</search>" in answer0 and "<information>Doc 1:" in answer0


def test_per_agent_calls_and_projection():
    assert project(SEARCH, "<search> a b </search>", False) == ("a b", True)
    assert project(SEARCH, "<search>a</search>", True) == ("a", False)               # no think
    assert project(ANSWER, "<think>x</think><answer>a</answer>", True) == ("a", True)
    assert project(ANSWER, "<think>x</think><think>y</think><answer>a</answer>", True)[1] is False
    assert project(VERIFIER, "<verify>yes</verify> 中", False)[1] is False            # CJK


def test_each_call_names_its_role(data):
    g = SearchBatchEnv(data, "train").list_games()[:2]

    def plan(qs):
        return {**{(x, VERIFIER): ["<verify>no</verify>", "<verify>yes</verify>"] for x in g},
                **{(x, SEARCH): ["<search>q</search>"] for x in g}, **{(x, ANSWER): ["<answer>a</answer>"] for x in g}}

    _, script, _ = play(data, plan, g, agents=object())
    assert [a for _, a in script.calls] == [[VERIFIER] * 2, [SEARCH] * 2, [VERIFIER] * 2, [ANSWER] * 2]


def test_single_agent_prompt_history():
    mem = prompts.Memory()
    opts = PromptOptions(style="compact", history_length=1)
    bench = BENCHMARKS.get("search")
    assert bench.prompt("Who?", [], "Who?", mem, opts) == "Question: Who?\nRole: single. Search with <search></search> or answer with <answer></answer>."
    mem.add("Who?", "<search>a</search>")
    mem.add("\n<information>Doc 1: A\n</information>\n", "<search>b</search>")
    steps = step_history(mem, "")
    assert steps == ["<search>a</search> \n<information>Doc 1: A\n</information>", "<search>b</search>"]
    assert env_prompt("Who?", steps, 1, "compact") == "Question: Who?\nHistory:\nStep 2:<search>b</search>"
    assert bench.parse("x <search>q</search> <answer> z </answer>", False) == ("<answer>z</answer>", True)
    assert bench.parse("nothing", False) == ("", False)


def test_scripted_transcripts_solve_every_train_question(data):
    pairs, solved = search_team_pairs(data, {**SEARCH_DEFAULTS, "demo_questions": 30})
    assert solved == 1.0
    verdicts = [r for p, r in pairs if "Role: verifier" in p]
    assert set(verdicts) == {"<verify>no</verify>", "<verify>yes</verify>"}
    assert sum("Role: single" in p for p, _ in pairs) == sum("Role: verifier" in p for p, _ in pairs)
    assert np.mean([r.startswith("<search>") for p, r in pairs if "Role: single" in p]) > 0.3
