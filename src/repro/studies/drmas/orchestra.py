"""Dr. MAS's math team as a rollout kind (``registry.ROLLOUTS`` ``drmas_math``; agentic-rl.md §3.6.4,
the released orchestration ``agent_system/agent/orchestra/math``).

One episode per problem, one environment step: a Solver and a Verifier take turns for at most
``max_steps`` loops (Dr. MAS's ``max_loop_num``, 2 in its math script). In each loop the Solver
answers every problem not yet approved (its answer, the whole response, becomes the team's), then
the Verifier reviews the latest solution and ends with ``<verify>approve</verify>`` or
``<verify>reject</verify>``; approved problems leave the loop. The Verifier is skipped on the last
loop, and a verdict without either word counts as approval (as the code). Every agent sees the
problem, its teammates' outputs so far (``The output of "<agent>": <text>``) and its role.

Rows: one per agent response, trajectory-major and chronological; ``StepBatch.agent`` is 0 for the
Solver and 1 for the Verifier. Every row of a trajectory carries the episode's outcome reward
(the final answer's, graded by the environment; Dr. MAS puts it on the last token of every agent
response) in ``reward`` and ``episode_reward``; ``valid`` is the role's format check (Solver: a
``\\boxed{}`` answer; Verifier: a ``<verify>…</verify>`` tag), which the estimator's invalid
penalty reads.

With one set of weights every role is the same policy; with one per agent (``agents`` given: the
fine-tuning item picks each role's weights) every ``generate`` call is one role's, named by
``agents``.
"""

from __future__ import annotations

import re
import time

import numpy as np

from repro.envs.math import boxed
from repro.rl.batch import StepBatch
from repro.rl.rollout import PromptOptions, Rollout

SOLVER, VERIFIER = 0, 1
ROLE_NAMES = {SOLVER: "Solver Agent", VERIFIER: "Verifier Agent"}
_VERIFY = re.compile(r"<verify>(.*?)</verify>", re.DOTALL)

# (prompt style) -> role -> template with {task} and {context}. "full": the released prompts'
# structure (task introduction, teammates' outputs, role), our wording; "compact": the same three
# parts in fewer words, for the embedded scale's short context.
TEMPLATES = {
    "full": {
        SOLVER: ("# Task Introduction\nYou are a member of an expert multi-agent team solving a math problem.\n"
                 "The team's math problem is: {task}\n\n# Your Teammates' Outputs\n{context}\n\n# Your Role\n"
                 "You are the Solver Agent. Reason through the problem step by step, using your teammates' "
                 "outputs (if any) as auxiliary context, and give the final answer within \\boxed{{}}."),
        VERIFIER: ("# Task Introduction\nYou are a member of an expert multi-agent team solving a math problem.\n"
                   "The team's math problem is: {task}\n\n# Your Teammates' Outputs\n{context}\n\n# Your Role\n"
                   "You are the Verifier Agent. Critically review the most recent solution of the Solver "
                   "Agent. End your output with your verdict: <verify>approve</verify> if every step and the "
                   "final answer are correct, <verify>reject</verify> if you find any issue."),
    },
    "compact": {
        SOLVER: "Team problem: {task}\nTeammates: {context}\nRole: solver. Solve step by step; answer in \\boxed{{}}.",
        VERIFIER: "Team problem: {task}\nTeammates: {context}\nRole: verifier. Check the solver's latest "
                  "solution; end with <verify>approve</verify> or <verify>reject</verify>.",
    },
}


def team_prompt(role: int, task: str, outputs: list[tuple[int, str]], style: str) -> str:
    """The user message of ``role`` given the teammates' ``outputs`` so far ((role, text), in order)."""
    if style not in TEMPLATES:
        raise ValueError(f"prompt style {style!r}; allowed: {', '.join(TEMPLATES)}")
    context = "".join(f'\nThe output of "{ROLE_NAMES[r]}": {text}\n' for r, text in outputs) or "none"
    return TEMPLATES[style][role].format(task=task, context=context.strip() if style == "compact" else context)


def verdict(text: str) -> tuple[bool, bool]:
    """(approved, valid) of a Verifier response: rejected only by ``reject`` inside the last
    ``<verify>`` tag; anything else approves (the released rule); valid = a ``<verify>…</verify>`` tag."""
    tags = _VERIFY.findall(text)
    return not (tags and "reject" in tags[-1].lower()), bool(tags)


def run_math_team(env, backend, games: list, group_ids: list[int], *, max_steps: int, temperature: float,
                  seed: int, prompt: PromptOptions, bench, state_keys=None, agents=None) -> Rollout:
    """Play the Solver / Verifier loop on every problem of ``games`` (``max_steps`` = loops)."""
    n = len(games)
    t0 = time.perf_counter()
    obs, _, infos = env.reset(games)
    tasks = [bench.task_text(o) for o in obs]
    t_env, t_gen = time.perf_counter() - t0, 0.0
    outputs: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    rows: list[list[tuple]] = [[] for _ in range(n)]  # (agent, generation, valid)
    approved = np.zeros(n, dtype=bool)
    final = [""] * n

    def play(role: int, idx: np.ndarray, turn: int):
        nonlocal t_gen
        g0 = time.perf_counter()
        gens = backend.generate([team_prompt(role, tasks[i], outputs[i], prompt.style) for i in idx],
                                temperature=temperature, seed=seed * 1_000_003 + 2 * turn + role,
                                **({} if agents is None else {"agents": [role] * len(idx)}))
        t_gen += time.perf_counter() - g0
        return gens

    for loop in range(max_steps):
        idx = np.flatnonzero(~approved)
        if idx.size == 0:
            break
        for i, g in zip(idx, play(SOLVER, idx, loop)):
            final[i] = g.text
            rows[i].append((SOLVER, g, boxed(g.text) is not None))
            outputs[i].append((SOLVER, g.text))
        if loop == max_steps - 1:
            break  # the Verifier is skipped on the last loop
        for i, g in zip(idx, play(VERIFIER, idx, loop)):
            ok, valid = verdict(g.text)
            rows[i].append((VERIFIER, g, valid))
            outputs[i].append((VERIFIER, g.text))
            approved[i] = ok
    e0 = time.perf_counter()
    _, rewards, _, done = env.step(final)
    t_env += time.perf_counter() - e0
    return team_rollout(rows, np.asarray(rewards, dtype=np.float64), [bool(d["won"]) for d in done], group_ids,
                        tasks, infos, games, {"env": t_env, "generate": t_gen})


def team_rollout(rows: list[list[tuple]], outcome: np.ndarray, won: list[bool], group_ids: list[int],
                 tasks: list[str], infos: list[dict], games: list, seconds: dict[str, float]) -> Rollout:
    """A team's episodes as step rows: ``rows[i]`` = episode i's agent calls in order, each
    ``(agent, generation, valid)``; every row carries its episode's ``outcome`` (Dr. MAS puts the
    episode reward on the last token of every agent response)."""
    n = len(rows)
    won = np.asarray(won, dtype=bool)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    traj = np.repeat(np.arange(n), lengths)
    flat = [x for r in rows for x in r]
    batch = StepBatch.from_anchor_strings(
        group=np.repeat(np.asarray(group_ids, dtype=np.int64), lengths), traj=traj,
        step=np.concatenate([np.arange(k) for k in lengths]) if n else np.zeros(0, np.int64),
        anchor_obs=[tasks[t] for t in traj], next_obs=None, keep_text=False, reward=outcome[traj],
        episode_reward=outcome[traj], valid=np.array([v for _, _, v in flat], dtype=bool),
        agent=np.array([a for a, _, _ in flat], dtype=np.int64))
    gens = [g for _, g, _ in flat]
    return Rollout(batch=batch, prompt_ids=[g.prompt_ids for g in gens], response_ids=[g.response_ids for g in gens],
                   won=won, lengths=lengths, task_types=[i["task_type"] for i in infos], games=list(games),
                   scores=won.astype(float), seconds=seconds, anchor_obs=[tasks[t] for t in traj], next_obs=None,
                   old_logprobs=None if any(g.logprobs is None for g in gens) else [g.logprobs for g in gens])
