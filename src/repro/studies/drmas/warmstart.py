"""The embedded math team's warm start (model builder ``tiny_qwen2_math_team``): the math warm start
(``repro.rl.math_benchmark.build_warmstart``) on the team's role prompts instead of single prompts.

From every train problem's worked solution (``12 + 7 = 19. #### 19`` becomes
``12 + 7 = 19. \\boxed{19}``), seeded: the Solver's first answer; the Verifier's verdict on either
that solution (``<verify>approve</verify>``) or, half of the time, a wrong one whose last result is
off by 1-3 in the step and the box (``<verify>reject</verify>``: the arithmetic must be checked,
not the copy); and after a rejection the Solver's second answer, the right solution, seeing the
wrong one and the verdict. One model learns every role: the shared agents start from it, and so
does each of the non-shared agents (the paper starts all agents from the same base model).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from repro.rl.math_benchmark import build_warmstart
from repro.studies.drmas.orchestra import SOLVER, VERIFIER, team_prompt

APPROVE, REJECT = "<verify>approve</verify>", "<verify>reject</verify>"


def boxed_solution(solution: str) -> str:
    """``"<steps> #### <answer>"`` -> ``"<steps> \\boxed{<answer>}"``."""
    steps, answer = solution.rsplit("####", 1)
    return f"{steps.strip()} \\boxed{{{answer.strip()}}}"


def wrong_solution(right: str, answer: str, rng: random.Random) -> str:
    """``right`` with its last result (the step's and the box's) off by 1-3, never negative."""
    bad = int(answer) + rng.choice([-3, -2, -1, 1, 2, 3])
    bad = bad if bad >= 0 else int(answer) + 1
    steps = right.rsplit("\\boxed{", 1)[0]
    head, sep, tail = steps.rpartition(f"= {answer}")
    steps = f"{head}= {bad}{tail}" if sep else steps
    return f"{steps}\\boxed{{{bad}}}"


def team_pairs(env, train: list[dict[str, Any]], params: dict[str, Any]) -> list[tuple[str, str]]:
    """The roles' (prompt, response) pairs of every train problem (module docstring)."""
    rng, style = random.Random(params["seed"]), params["prompt_style"]
    pairs = []
    for q in train:
        task, right = env.prompt(q), boxed_solution(q["solution"])
        pairs.append((team_prompt(SOLVER, task, [], style), right))
        if rng.random() < 0.5:
            pairs.append((team_prompt(VERIFIER, task, [(SOLVER, right)], style), APPROVE))
        else:
            wrong = wrong_solution(right, str(q["answer"]), rng)
            pairs.append((team_prompt(VERIFIER, task, [(SOLVER, wrong)], style), REJECT))
            pairs.append((team_prompt(SOLVER, task, [(SOLVER, wrong), (VERIFIER, REJECT)], style), right))
    return pairs


def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None) -> None:
    """``params``: the math warm start's (``instruction`` defaults to none: the roles instruct) and
    ``prompt_style`` (the team prompts', as the study's ``train.prompt_style``)."""
    build_warmstart(out_dir, {"instruction": "", "prompt_style": "compact", "max_prompt_tokens": 192, **params},
                    dataset_dir, pairs_fn=team_pairs, builder="tiny_qwen2_math_team")



# --- the search team -------------------------------------------------------------------------------

SEARCH_DEFAULTS: dict[str, Any] = {
    "seed": 0, "prompt_style": "compact", "max_steps": 4, "history_length": 4, "topk": 3,
    "demo_questions": 1000,      # train questions played by the scripted team
    "single_agent": True,        # also the single-agent baseline's prompts
    "sft_epochs": 4, "sft_lr": 2e-3, "sft_batch_size": 64, "sft_micro_batch_size": 16,
    "max_prompt_tokens": 320, "model": {},
}


def search_team_pairs(dataset_dir: Path, p: dict[str, Any]) -> tuple[list[tuple[str, str]], float]:
    """The roles' (prompt, response) pairs of the scripted team on ``demo_questions`` train
    questions, and the share it answers: at step s the Verifier says ``no`` while hops remain and
    the Search agent looks up hop s; then the Verifier says ``yes`` and the Answer agent answers.
    With ``single_agent`` the single-agent baseline's prompt gets the same actions (one model
    learns every role and the lone agent, as every agent starts from the same base model).
    The passages come from the real environment (its retriever), so the prompts are exactly the
    rollout's."""
    from repro.envs.search import SearchBatchEnv  # noqa: PLC0415
    from repro.rl.search_benchmark import SINGLE_TEMPLATES, env_prompt  # noqa: PLC0415
    from repro.studies.drmas.search_team import ANSWER, SEARCH, VERIFIER, role_prompt  # noqa: PLC0415

    env = SearchBatchEnv(dataset_dir, "train", max_turns=p["max_steps"], topk=p["topk"])
    games = random.Random(p["seed"]).sample(env.list_games(), min(p["demo_questions"], len(env.list_games())))
    qs = env.questions()
    questions, _, _ = env.reset(games)
    history: list[list[str]] = [[] for _ in games]
    open_, won, pairs = [True] * len(games), [False] * len(games), []
    style = p["prompt_style"]
    for step in range(1, p["max_steps"] + 1):
        actions = [""] * len(games)
        for i, g in enumerate(games):
            if not open_[i]:
                continue
            team = env_prompt(questions[i], history[i], p["history_length"], style)
            hops = qs[g]["hops"]
            search = step <= len(hops) and step < p["max_steps"]
            verdict = f"<verify>{'no' if search else 'yes'}</verify>"
            pairs.append((role_prompt(VERIFIER, team, step, "", style), verdict))
            if search:
                actions[i] = f"<search>{hops[step - 1]}</search>"
                said = f'The output of "Verifier Agent": {verdict}'
                pairs.append((role_prompt(SEARCH, team, step, said, style), actions[i]))
            else:
                actions[i] = f"<answer>{qs[g]['answers'][0]}</answer>"
                pairs.append((role_prompt(ANSWER, team, step, "", style), actions[i]))
            if p["single_agent"]:
                pairs.append((SINGLE_TEMPLATES[style].format(env=team), actions[i]))
        obs, _, dones, infos = env.step(actions)
        for i in range(len(games)):
            if open_[i]:
                history[i].append(f"{actions[i]} {obs[i]}".rstrip() if obs[i] else actions[i])
                open_[i], won[i] = not dones[i], bool(infos[i]["won"]) if dones[i] else won[i]
    return pairs, sum(won) / max(len(won), 1)


def build_search(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None) -> None:
    """Model builder ``tiny_qwen2_search_team``: one tiny Qwen2 on the search team's roles
    (``search_team_pairs``); the tokenizer also learns the corpus and every split's questions.
    ``params``: ``SEARCH_DEFAULTS`` (``prompt_style``, ``max_steps``, ``history_length``, ``topk``
    as the study's training)."""
    import json  # noqa: PLC0415

    from repro.rl.sft import warm_start_tiny  # noqa: PLC0415

    if dataset_dir is None:
        raise ValueError("tiny_qwen2_search_team needs a dataset (models.<name>.dataset in the study YAML)")
    unknown = sorted(set(params) - set(SEARCH_DEFAULTS))
    if unknown:
        raise ValueError(f"tiny_qwen2_search_team: unknown params {unknown}; allowed: {sorted(SEARCH_DEFAULTS)}")
    p = {**SEARCH_DEFAULTS, **params}
    pairs, solved = search_team_pairs(Path(dataset_dir), p)
    records = [json.loads(line) for f in sorted(Path(dataset_dir).glob("*.jsonl"))
               for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r.get("contents", r.get("question", "")) for r in records]  # passages and questions
    warm_start_tiny(out_dir, pairs, texts, p, {"builder": "tiny_qwen2_search_team", "params": p,
                                               "demonstrations": len(pairs), "scripted_team_success": solved})
