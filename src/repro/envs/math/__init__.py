"""Math problems as a single-turn environment: prompt -> response -> verified 1/0 reward.

A dataset folder holds one JSON-lines file per split (``<split>.jsonl``), one problem per line::

    {"id": "train-00017", "question": "...", "answer": "19", "source": "add", "solution": "..."}

``source`` is the problem's family (the embedded generator's operation, or the test set a
paper-scale problem comes from); ``solution`` (a worked solution) only where a warm start learns
from it. ``MathBatchEnv`` follows the batched-environment protocol of the agentic benchmarks
(``reset(games) -> (observations, admissible, infos)``, ``step(actions) -> (observations, rewards,
dones, infos)``), with a problem id as the "game" and every episode one step long: the observation
is the user prompt (question + the study's answer instruction), the action is the whole response,
and the reward is 1 if the verifier finds the gold answer in it, else 0 (binary, as KPO and
Dr. MAS; agentic-rl.md §4.4, §4.5).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from repro.io import read_jsonl_split

log = logging.getLogger(__name__)

#: KPO's answer instruction, appended to every question (verl-kpo examples/data_preprocess/kpo_math.py)
HASH_INSTRUCTION = 'Let\'s think step by step and output the final answer after "####".'
#: the \boxed{} instruction of the DAPO / Dr. MAS math prompts (agentic-rl.md §3.6.4)
BOXED_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
INSTRUCTIONS = {"hash": HASH_INSTRUCTION, "boxed": BOXED_INSTRUCTION}


def split_file(dataset_dir: str | Path, split: str) -> Path:
    return Path(dataset_dir) / f"{split}.jsonl"


def read_problems(dataset_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """The problems of ``split``; a missing split names the file and the splits that exist."""
    return read_jsonl_split(dataset_dir, split, {"id", "question", "answer"}, "math")


def _configs():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig  # noqa: PLC0415

    return [LatexExtractionConfig(), ExprExtractionConfig()]


@functools.lru_cache(maxsize=1 << 16)
def _parse(text: str) -> tuple:
    """math-verify's parse of ``text`` (LaTeX, then plain expressions), memoised: a rollout parses
    each response twice (validity, reward), the gold answer of a problem once per response, and
    a group's samples often repeat one another. Parsing is a pure function of the text, so the
    cache changes no result; it holds immutable sympy values (callers get a fresh list)."""
    from math_verify import parse  # noqa: PLC0415

    return tuple(parse(text, extraction_config=_configs()))


def _parsed(response: str) -> list:
    """math-verify's parse of a response's final answer: the text after its last ``####`` when it
    has one (KPO's format), else a ``\\boxed{}`` or the last expression."""
    return list(_parse(response.split("####")[-1] if "####" in response else response))


def boxed(response: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (braces balanced) in ``response``, or None."""
    start = response.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(response)):
        depth += {"{": 1, "}": -1}.get(response[j], 0)
        if depth == 0:
            return response[i + 1:j]
    return None


def extract_answer(response: str) -> str | None:
    """The final answer the verifier reads from a response, or None when it states none."""
    parsed = _parsed(response)
    return str(parsed[-1]) if parsed else None


@functools.lru_cache(maxsize=1 << 16)
def is_correct(gold: str, response: str, extract: str = "auto") -> bool:
    """Whether ``response`` states an answer equivalent to ``gold`` (math-verify: symbolic and
    numeric equivalence, e.g. ``1/2`` = ``0.5`` = ``\\frac{2}{4}``). ``extract``: ``auto`` (the
    text after the last ``####``, else a ``\\boxed{}`` or the last expression) or ``boxed`` (only
    the last ``\\boxed{}``: no box, no reward, as Dr. MAS's math reward). Memoised (a pure
    function of its arguments; sampled responses repeat within and across groups)."""
    from math_verify import verify  # noqa: PLC0415

    if extract == "boxed":
        inner = boxed(response)
        answer = list(_parse(f"${inner}$")) if inner is not None else []
    else:
        answer = _parsed(response)
    return bool(answer) and bool(verify(list(_parse(gold)), answer))


class MathBatchEnv:
    """Single-step episodes over the problems of one split (``games`` = problem ids).

    Args:
        dataset_dir: folder with ``<split>.jsonl``.
        split: the split whose problems ``list_games`` returns.
        instruction: ``"hash"`` (answer after ``####``, KPO) or ``"boxed"`` (``\\boxed{}``), or the
            instruction text itself, appended to each question (``""``: the question alone, where
            a multi-agent team's roles carry the instructions).
        extract: where the reward reads the answer (``is_correct``): ``auto`` or ``boxed``.
    """

    def __init__(self, dataset_dir: str | Path, split: str, instruction: str = "hash", extract: str = "auto") -> None:
        if extract not in ("auto", "boxed"):
            raise ValueError(f"extract: {extract!r}; allowed: auto, boxed")
        self.dataset_dir, self.split, self.extract = Path(dataset_dir), split, extract
        self.instruction = INSTRUCTIONS.get(instruction, instruction)
        self._problems: dict[str, dict[str, dict[str, Any]]] = {}
        self._batch: list[dict[str, Any]] = []

    def problems(self, split: str | None = None) -> dict[str, dict[str, Any]]:
        split = split or self.split
        if split not in self._problems:
            self._problems[split] = {p["id"]: p for p in read_problems(self.dataset_dir, split)}
        return self._problems[split]

    def list_games(self, split: str | None = None) -> list[str]:
        return list(self.problems(split))

    def prompt(self, problem: dict[str, Any]) -> str:
        return f"{problem['question']} {self.instruction}".strip()

    def reset(self, games: list[str]) -> tuple[list[str], list[list[str]], list[dict]]:
        probs = self.problems()
        unknown = [g for g in games if g not in probs]
        if unknown:
            raise KeyError(f"problem ids not in {split_file(self.dataset_dir, self.split)}: {unknown[:3]}")
        self._batch = [probs[g] for g in games]
        obs = [self.prompt(p) for p in self._batch]
        infos = [{"task_type": p.get("source", "math"), "won": False, "admissible": []} for p in self._batch]
        return obs, [[] for _ in games], infos

    def step(self, actions: list[str]) -> tuple[list[str], list[float], list[bool], list[dict]]:
        if len(actions) != len(self._batch):
            raise ValueError(f"step: {len(actions)} actions for {len(self._batch)} episodes")
        won = [is_correct(str(p["answer"]), a, self.extract) for p, a in zip(self._batch, actions)]
        infos = [{"won": w, "admissible": [], "task_type": p.get("source", "math")} for w, p in zip(won, self._batch)]
        return [""] * len(actions), [float(w) for w in won], [True] * len(actions), infos

    def close(self) -> None:
        pass
