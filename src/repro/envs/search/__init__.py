"""Open-domain question answering with a search engine, as a multi-turn batched environment.

Search-R1's environment as Dr. MAS runs it (agentic-rl.md §3.6.4; the released
``env_package/search``): a "game" is a question id; each step's action is ``<search>query</search>``
(the engine returns the top-``topk`` passages) or ``<answer>text</answer>`` (the episode ends); an
episode also ends after ``max_turns`` steps. The observation after a search is
``\\n<information>Doc 1: …\\nDoc 2: …\\n</information>\\n`` (an empty or missing query returns
nothing); the reward, given when the episode ends, is 1 if the last ``<answer>`` anywhere in the
episode's history (actions and observations) matches one of the gold answers after SQuAD-style
normalisation (lower case, no punctuation, no articles, single spaces), else 0; ``won`` = reward 1.

The dataset folder (``repro.data.search_embedded``, ``repro.data.search_qa``) holds
``<split>.jsonl`` (``id``, ``question``, ``answers``, ``source``), ``corpus.jsonl`` and
``retriever.json`` (``repro.envs.search.retrieval``). ``reset`` observes the question; the team's
prompts (history, roles) are the orchestration's.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from repro.io import read_jsonl_split

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_SEARCH = re.compile(r"<search>(.*?)</search>", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str | None, answers: list[str]) -> bool:
    return prediction is not None and normalize_answer(prediction) in {normalize_answer(a) for a in answers}


def last_answer(text: str) -> str | None:
    """The content of the last ``<answer>…</answer>`` in ``text``, or None."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


def search_query(action: str) -> str | None:
    """The first ``<search>…</search>`` query of an action, stripped, or None when there is none."""
    found = _SEARCH.search(action)
    return found.group(1).strip() if found and found.group(1).strip() else None


def format_information(passages: list[str]) -> str:
    """Retrieved passages as the search tool shows them."""
    return "\n<information>" + "".join(f"Doc {i + 1}: {p}\n" for i, p in enumerate(passages)) + "</information>\n"


def read_questions(dataset_dir: str | Path, split: str) -> list[dict[str, Any]]:
    return read_jsonl_split(dataset_dir, split, {"id", "question", "answers"}, "search", skip=("corpus",))


class SearchBatchEnv:
    """Episodes over the questions of one split (batched protocol of the agentic benchmarks).

    Args:
        dataset_dir: the dataset folder (module docstring).
        split: the split whose questions ``list_games`` returns.
        max_turns: steps after which an episode ends without an answer (Dr. MAS: 4).
        topk: passages per search (Dr. MAS: 3).
        retriever: an object with ``search(queries, k) -> passages per query``; default: the
            dataset's ``retriever.json``, loaded on the first search.
    """

    def __init__(self, dataset_dir: str | Path, split: str, max_turns: int = 4, topk: int = 3, retriever=None) -> None:
        if max_turns < 1 or topk < 1:
            raise ValueError(f"search env: max_turns {max_turns} and topk {topk} must be >= 1")
        self.dataset_dir, self.split, self.max_turns, self.topk = Path(dataset_dir), split, max_turns, topk
        self._retriever = retriever
        self._questions: dict[str, dict[str, dict[str, Any]]] = {}
        self._batch: list[dict[str, Any]] = []

    @property
    def retriever(self):
        if self._retriever is None:
            from repro.envs.search.retrieval import load_retriever  # noqa: PLC0415

            self._retriever = load_retriever(self.dataset_dir)
        return self._retriever

    def questions(self, split: str | None = None) -> dict[str, dict[str, Any]]:
        split = split or self.split
        if split not in self._questions:
            self._questions[split] = {q["id"]: q for q in read_questions(self.dataset_dir, split)}
        return self._questions[split]

    def list_games(self, split: str | None = None) -> list[str]:
        return list(self.questions(split))

    def reset(self, games: list[str]) -> tuple[list[str], list[list[str]], list[dict]]:
        qs = self.questions()
        unknown = [g for g in games if g not in qs]
        if unknown:
            raise KeyError(f"question ids not in {self.dataset_dir / (self.split + '.jsonl')}: {unknown[:3]}")
        self._batch = [qs[g] for g in games]
        self._turns = [0] * len(games)
        self._history = [""] * len(games)
        self._done = [False] * len(games)
        infos = [{"task_type": q.get("source", "qa"), "won": False, "admissible": []} for q in self._batch]
        return [q["question"] for q in self._batch], [[] for _ in games], infos

    def step(self, actions: list[str]) -> tuple[list[str], list[float], list[bool], list[dict]]:
        """One step of every episode not yet done (the actions of finished ones are ignored)."""
        n = len(self._batch)
        if len(actions) != n:
            raise ValueError(f"step: {len(actions)} actions for {n} episodes")
        obs, rewards, won = [""] * n, [0.0] * n, [False] * n
        live = [i for i in range(n) if not self._done[i]]
        ask = []
        for i in live:
            self._turns[i] += 1
            ends = "<answer>" in actions[i] and "</answer>" in actions[i]
            self._done[i] = ends or self._turns[i] >= self.max_turns
            if not self._done[i] and search_query(actions[i]) is not None:
                ask.append(i)
        if ask:
            found = self.retriever.search([search_query(actions[i]) for i in ask], self.topk)
            for i, passages in zip(ask, found):
                obs[i] = format_information(passages)
        for i in live:
            self._history[i] += actions[i] + obs[i]
            if self._done[i]:
                won[i] = exact_match(last_answer(self._history[i]), self._batch[i]["answers"])
                rewards[i] = float(won[i])
        infos = [{"won": w, "admissible": [], "task_type": q.get("source", "qa")} for w, q in zip(won, self._batch)]
        return obs, rewards, list(self._done), infos

    def close(self) -> None:
        pass
