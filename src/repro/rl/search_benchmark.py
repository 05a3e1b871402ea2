"""The ``search`` benchmark of the agentic-RL family: question answering with a search engine.

Imported by the plugin of a study that searches (Dr. MAS); registers

- ``BENCHMARKS["search"]``: episodes of ``repro.envs.search.SearchBatchEnv`` (at most the run's
  ``max_steps`` turns; ``env.topk`` passages per search); a team rollout builds the prompts;
- ``DATASETS["search/embedded"]`` (``repro.data.search_embedded``: a generated knowledge base,
  BM25) and ``DATASETS["search/nq_hotpotqa"]`` (``repro.data.search_qa``: NQ + HotpotQA training
  questions, the seven QA test sets, wiki-18 with E5).

Splits: ``train``, ``valid`` (train-time validation) and the evaluation sets: ``test`` (embedded)
or the paper's seven.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from repro import registry
from repro.data import search_embedded  # noqa: F401  (registers search/embedded)
from repro.data import search_qa  # noqa: F401  (registers search/nq_hotpotqa)
from repro.envs import search as senv
from repro.rl import prompts
from repro.rl.benchmarks import Benchmark

PAPER_EVAL_SPLITS = ("nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle")
_TAG = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)

# style -> the team's view of the task without / with history (Dr. MAS's environment prompts,
# our wording)
ENV_TEMPLATES = {
    "full": ("You are a member of an expert multi-agent team answering a question.\nThe team's question is: "
             "{question}\nYour team can use an external search engine to find the knowledge it needs.",
             "You are a member of an expert multi-agent team answering a question.\nThe team's question is: "
             "{question}\nYour team can use an external search engine to find the knowledge it needs.\n"
             "Before this step your team has taken {taken} step(s). The last {shown} step(s):\n{memory}"),
    "compact": ("Question: {question}", "Question: {question}\nHistory:\n{memory}"),
}
# style -> the single agent's prompt over {env} (Search-R1's instruction, our wording)
SINGLE_TEMPLATES = {
    "full": ("{env}\n\nAnswer the question. Reason inside <think> </think> first. To look something up, write "
             "<search> query </search>; the results come back between <information> and </information>. When "
             "you know the answer, give it inside <answer> </answer>, without explanation, e.g. "
             "<answer>Beijing</answer>."),
    "compact": "{env}\nRole: single. Search with <search></search> or answer with <answer></answer>.",
}


def env_prompt(question: str, history: list[str], history_length: int, style: str) -> str:
    """The team's view of the task: the question and the last ``history_length`` steps."""
    if style not in ENV_TEMPLATES:
        raise ValueError(f"prompt style {style!r}; allowed: {', '.join(ENV_TEMPLATES)}")
    shown = history[-history_length:] if history_length > 0 else []
    first = len(history) - len(shown)
    memory = "\n".join(f"Step {first + k + 1}:{h}" for k, h in enumerate(shown))
    return ENV_TEMPLATES[style][bool(shown)].format(question=question, taken=len(history), shown=len(shown),
                                                    memory=memory)


@dataclass(frozen=True)
class SearchBenchmark(Benchmark):
    """One agent searches and answers (the single-agent baseline's prompt, ``multi_turn`` rollout);
    a team rollout composes its roles' prompts from ``env_prompt`` instead."""

    def prompt(self, obs: str, admissible: list[str], task: str, memory: prompts.Memory, opts) -> str:
        steps = step_history(memory, obs)
        return SINGLE_TEMPLATES[opts.style].format(env=env_prompt(task, steps, opts.history_length, opts.style))


def step_history(memory: prompts.Memory, obs: str) -> list[str]:
    """``Step k`` entries (action, then what it retrieved) from a multi-turn rollout's memory of
    (observation shown, action) and the current observation."""
    after = [o for o, _ in memory.records[1:]] + [obs]
    return [f"{a} {o}".rstrip() if o else a for (_, a), o in zip(memory.records, after)]


def _make(dataset_dir, split, *, workers, max_steps, seed, slots, **env):
    return senv.SearchBatchEnv(dataset_dir, split, max_turns=max_steps, **env)


def _games(dataset_dir, split, **env):
    return senv.SearchBatchEnv(dataset_dir, split).list_games()


def _parse(text: str, require_think: bool) -> tuple[str, bool]:
    """A response's last ``<search>`` / ``<answer>`` tag as the action (valid when there is one)."""
    found = _TAG.findall(text)
    return (f"<{found[-1][0]}>{found[-1][1].strip()}</{found[-1][0]}>", True) if found else ("", False)


def _no_expert(*args, **kwargs):
    raise NotImplementedError("the search benchmark has no expert episodes; its team warm start "
                              "(builder tiny_qwen2_search_team) scripts them from the questions' hops")


registry.BENCHMARKS.register("search")(SearchBenchmark(
    name="search", train_split="train", val_split="valid", eval_splits=("test", "valid", "train") + PAPER_EVAL_SPLITS,
    make=_make, list_games=_games, task_text=lambda obs: obs, templates={}, observation_filters={},
    parser=_parse, expert_episodes=_no_expert,
))
