"""Dr. MAS's search team as a rollout kind (``registry.ROLLOUTS`` ``drmas_search``; agentic-rl.md
§3.6.4, the released ``agent_system/agent/orchestra/search``).

Three agents over ``repro.envs.search.SearchBatchEnv``, at most ``max_steps`` environment steps
(Dr. MAS: 4). At each step, for every open question:

1. the **Verifier** reads the question and the team's history and routes: ``<verify>no</verify>``
   (information insufficient) to the Search agent, anything else (``yes``, a malformed verdict)
   to the Answer agent (the released rule);
2. the **Search** agent, only while the step is not the last, writes ``<search>query</search>``,
   seeing the Verifier's output of this step; the environment returns the top passages;
3. the **Answer** agent (any step) writes ``<answer>…</answer>``, which ends the episode.

A question routed to Search at the last step sends no action and ends unanswered (reward 0). The
history the prompts show is the last ``history_length`` steps, each ``Step k:<action> <information>``.
As in the code, neither the Verifier's nor the Answer agent's prompt shows teammates' outputs; the
Search agent's shows this step's Verifier output. Validity (the invalid-action penalty's): the
role's tag present (``<verify>``, ``<search>``, ``<answer>``, opening and closing); with
``require_think`` also exactly one ``<think>…</think>`` before it for Search and Answer (the code's
``check_think_tag``); any CJK character is invalid. The action sent to the environment is the
projected tag (``<search>q</search>``, ``<answer>a</answer>``) or nothing.

Rows: one per agent call, trajectory-major and chronological; ``StepBatch.agent``: Verifier 0,
Search 1, Answer 2 (the code's agent order); every row carries the episode's exact-match reward.
"""

from __future__ import annotations

import re
import time

import numpy as np

from repro.rl.rollout import PromptOptions, Rollout
from repro.rl.search_benchmark import env_prompt
from repro.studies.drmas.orchestra import team_rollout

VERIFIER, SEARCH, ANSWER = 0, 1, 2
_TAGS = {VERIFIER: "verify", SEARCH: "search", ANSWER: "answer"}
_CJK = re.compile(r"[\u4e00-\u9fff]")

ROLE_TEMPLATES = {
    "full": {
        VERIFIER: ("# Task Introduction\n{env}\n\n# Your Role\nYou are the Verifier Agent, at step {step}. Review "
                   "the team's searches and the information they retrieved: are the queries good and is the "
                   "information enough to answer the question? Reason step by step, then end with "
                   "<verify>yes</verify> if it is enough or <verify>no</verify> if more searching is needed."),
        SEARCH: ("# Task Introduction\n{env}\n\n# Your Teammates' Outputs at Step {step}\n{context}\n\n# Your Role\n"
                 "You are the Search Agent. Write the search query the team needs next. Reason inside <think> "
                 "</think> first, then give the query inside <search> </search>."),
        ANSWER: ("# Task Introduction\n{env}\n\n# Your Role\nYou are the Answer Agent. Using the searches and the "
                 "information retrieved so far, reason inside <think> </think>, then give the final answer "
                 "inside <answer> </answer>, without explanation, e.g. <answer>Beijing</answer>."),
    },
    "compact": {
        VERIFIER: "{env}\nStep {step}. Role: verifier. Enough information? <verify>yes</verify> or <verify>no</verify>.",
        SEARCH: "{env}\nTeammates: {context}\nRole: search. Query in <search></search>.",
        ANSWER: "{env}\nRole: answer. Answer in <answer></answer>.",
    },
}


def role_prompt(role: int, env: str, step: int, context: str, style: str) -> str:
    return ROLE_TEMPLATES[style][role].format(env=env, step=step, context=context)


def project(role: int, text: str, require_think: bool) -> tuple[str, bool]:
    """(tag content, valid) of a response: the content of the role's first tag pair ('' if none)."""
    tag = _TAGS[role]
    found = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    valid = found is not None and not _CJK.search(text)
    if valid and require_think and role != VERIFIER:
        think = text.find("<think>")
        valid = (text.count("<think>") == 1 and text.count("</think>") == 1
                 and think < text.find("</think>") < found.start())
    return (found.group(1).strip() if found else ""), valid


def run_search_team(env, backend, games: list, group_ids: list[int], *, max_steps: int, temperature: float,
                    seed: int, prompt: PromptOptions, bench, state_keys=None, agents=None) -> Rollout:
    """Play the Verifier / Search / Answer team on every question of ``games`` (module docstring)."""
    n = len(games)
    t0 = time.perf_counter()
    questions, _, infos = env.reset(games)
    t_env, t_gen = time.perf_counter() - t0, 0.0
    history: list[list[str]] = [[] for _ in range(n)]
    rows: list[list[tuple]] = [[] for _ in range(n)]  # (agent, generation, valid)
    open_ = np.ones(n, dtype=bool)
    won = np.zeros(n, dtype=bool)
    outcome = np.zeros(n)

    def play(role: int, idx: np.ndarray, step: int, contexts: dict[int, str]) -> list:
        nonlocal t_gen
        g0 = time.perf_counter()
        texts = [role_prompt(role, env_prompt(questions[i], history[i], prompt.history_length, prompt.style),
                             step, contexts.get(i, ""), prompt.style) for i in idx]
        gens = backend.generate(texts, temperature=temperature, seed=seed * 1_000_003 + 3 * step + role,
                                **({} if agents is None else {"agents": [role] * len(idx)}))
        t_gen += time.perf_counter() - g0
        return gens

    for step in range(1, max_steps + 1):
        idx = np.flatnonzero(open_)
        if idx.size == 0:
            break
        actions, searching, answering, said = [""] * n, [], [], {}
        for i, g in zip(idx, play(VERIFIER, idx, step, {})):
            verdict, valid = project(VERIFIER, g.text, prompt.require_think)
            rows[i].append((VERIFIER, g, valid))
            said[i] = f'The output of "Verifier Agent": {g.text}'
            (searching if valid and verdict.lower() == "no" else answering).append(i)
        if step < max_steps and searching:
            for i, g in zip(searching, play(SEARCH, np.asarray(searching), step, said)):
                query, valid = project(SEARCH, g.text, prompt.require_think)
                rows[i].append((SEARCH, g, valid))
                actions[i] = f"<search>{query}</search>" if query else ""
        if answering:
            for i, g in zip(answering, play(ANSWER, np.asarray(answering), step, {})):
                answer, valid = project(ANSWER, g.text, prompt.require_think)
                rows[i].append((ANSWER, g, valid))
                actions[i] = f"<answer>{answer}</answer>" if "<answer>" in g.text and "</answer>" in g.text else ""
        e0 = time.perf_counter()
        obs, rewards, dones, step_infos = env.step(actions)
        t_env += time.perf_counter() - e0
        for i in idx:
            history[i].append(f"{actions[i]} {obs[i]}".rstrip() if obs[i] else actions[i])
            if dones[i]:
                open_[i] = False
                won[i], outcome[i] = bool(step_infos[i]["won"]), float(rewards[i])
    return team_rollout(rows, outcome, list(won), group_ids, list(questions), infos, games,
                        {"env": t_env, "generate": t_gen})
