"""The agentic benchmarks the trainer plays, one registry entry each (``repro.registry.BENCHMARKS``).

A :class:`Benchmark` says how to open the batched environment of a dataset split, which splits
exist, how to read the task from a first observation, how prompts look, how raw responses are
projected onto actions, and where the expert demonstrations of the embedded warm start come from.
The trainer only talks to this interface; nothing in it names a benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from repro import registry
from repro.rl import prompts


@dataclass(frozen=True)
class Benchmark:
    name: str
    train_split: str
    val_split: str                       # train-time validation
    eval_splits: tuple[str, ...]         # splits `evaluate` may name
    #: (dataset_dir, split, *, workers, max_steps, seed, slots, **env) -> batched env with
    #: reset(games), step(actions), close(), list_games(split)
    make: Callable[..., Any]
    #: (dataset_dir, split, **env) -> the split's games (ids the env's reset takes)
    list_games: Callable[..., list]
    task_text: Callable[[str], str]
    templates: dict[str, tuple[str, str]]                 # prompt style -> (first step, later steps)
    observation_filters: dict[str, Callable[[str], str]]  # prompt style -> observation as shown
    #: (raw response, require_think) -> (action, valid): how a response becomes an action
    parser: Callable[[str, bool], tuple[str, bool]]
    #: (dataset_dir, split, n_episodes, noise, seed, max_steps, **env) -> (episodes, won)
    expert_episodes: Callable[..., tuple[list[list[dict]], list[bool]]]
    #: constrained decoding (embedded scale): the admissible list as offered to the policy
    offered_actions: Callable[[list[str], str], list[str]] = field(default=lambda adm, task: adm)
    score_key: str | None = None         # info key of a graded task score (WebShop), else success only
    vocabulary: Callable[[Path], str] = field(default=lambda dataset_dir: "")  # tokenizer extras
    format_actions: Callable[[list[str]], str] = prompts.quoted_inline

    def actions(self, admissible: list[str], task: str, constrained: bool) -> list[str]:
        """The action list the prompt shows (and constrained decoding allows)."""
        return self.offered_actions(admissible, task) if constrained else admissible

    def prompt(self, obs: str, admissible: list[str], task: str, memory: prompts.Memory, opts) -> str:
        """The user message of one step (``opts``: ``rollout.PromptOptions``)."""
        return prompts.build_prompt(obs, self.actions(admissible, task, opts.constrain_to_admissible), task,
                                    memory, opts.history_length, think=opts.require_think,
                                    max_obs_chars=opts.max_obs_chars, style=opts.style,
                                    templates=self.templates, filters=self.observation_filters,
                                    format_actions=self.format_actions)

    def parse(self, text: str, require_think: bool) -> tuple[str, bool]:
        return self.parser(text, require_think)


def get(name: str) -> Benchmark:
    return registry.BENCHMARKS.get(name)


# --- ALFWorld ---------------------------------------------------------------------------------


def _alfworld_make(dataset_dir, split, *, workers, max_steps, seed, slots, **env):
    from repro.envs.alfworld import AlfworldBatchEnv

    # each kept chain holds its own copy of the planner library (~34 MB): keep one batch's worth
    return AlfworldBatchEnv(dataset_dir, split, num_workers=workers, max_steps=max_steps, seed=seed,
                            cache_size=slots, **env)


def _alfworld_games(dataset_dir, split, **env):
    from repro.envs.alfworld import list_games

    return list_games(dataset_dir, split)


def _alfworld_expert(dataset_dir, split, n_episodes, noise, seed, max_steps, **env):
    from repro.envs.alfworld import expert_episodes

    return expert_episodes(dataset_dir, split, n_episodes=n_episodes, noise=noise, seed=seed,
                           max_steps=max_steps)


def _alfworld_vocabulary(dataset_dir: Path) -> str:
    from repro.envs.alfworld import class_vocabulary

    return class_vocabulary(dataset_dir)


registry.BENCHMARKS.register("alfworld")(Benchmark(
    name="alfworld", train_split="train", val_split="valid_seen", eval_splits=("valid_seen", "valid_unseen", "train"),
    make=_alfworld_make, list_games=_alfworld_games, task_text=prompts.task_from_first_observation,
    templates=prompts.TEMPLATES, observation_filters=prompts.OBSERVATION_FILTERS,
    parser=prompts.ActionParser(tail_chars=30),
    expert_episodes=_alfworld_expert, vocabulary=_alfworld_vocabulary,
))


# --- WebShop ----------------------------------------------------------------------------------


def _webshop_params(dataset_dir, env: dict) -> dict:
    """``env`` with the evaluation split size: the dataset's MANIFEST.json ``splits.eval_goals``
    (written by the embedded generator) unless ``env`` sets it, else verl-agent's 500. The goal
    list is shuffled with the env's default seed (42) for every run, so splits are identical
    across training seeds."""
    from repro.io import read_json

    manifest = Path(dataset_dir) / "MANIFEST.json"
    split = read_json(manifest).get("splits", {}) if manifest.exists() else {}
    return {"eval_goals": split.get("eval_goals", 500), **env}


def _webshop_env(dataset_dir, max_steps, env):
    from repro.envs.webshop import WebshopBatchEnv

    return WebshopBatchEnv(dataset_dir, max_steps=max_steps, **_webshop_params(dataset_dir, env))


def _webshop_make(dataset_dir, split, *, workers, max_steps, seed, slots, **env):
    return _webshop_env(dataset_dir, max_steps, env)  # in-process: a step costs ~0.02 ms a slot


def _webshop_games(dataset_dir, split, **env):
    return _webshop_env(dataset_dir, None, env).list_games(split)


def _webshop_expert(dataset_dir, split, n_episodes, noise, seed, max_steps, **env):
    from repro.envs.webshop.expert import expert_episodes

    return expert_episodes(dataset_dir, split, n_episodes=n_episodes, noise=noise, seed=seed,
                           max_steps=max_steps, **_webshop_params(dataset_dir, env))


def _webshop_offered(admissible: list[str], task: str) -> list[str]:
    """deviation (embedded, constrained decoding): the search bar is offered as one concrete
    action, a search for the task instruction itself; the reference lets the model write its query."""
    from repro.envs.webshop import SEARCH_MARKER

    return [f"search[{task}]" if a == SEARCH_MARKER else a for a in admissible]


def _webshop_task(obs: str) -> str:
    from repro.envs.webshop import task_text

    return task_text(obs)


registry.BENCHMARKS.register("webshop")(Benchmark(
    name="webshop", train_split="train", val_split="test", eval_splits=("test",),
    make=_webshop_make, list_games=_webshop_games, task_text=_webshop_task,
    templates=prompts.WEBSHOP_TEMPLATES, observation_filters=prompts.WEBSHOP_OBSERVATION_FILTERS,
    parser=prompts.ActionParser(tail_chars=20), expert_episodes=_webshop_expert, offered_actions=_webshop_offered,
    score_key="task_score", format_actions=prompts.quoted_lines,
))
