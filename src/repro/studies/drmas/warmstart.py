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

