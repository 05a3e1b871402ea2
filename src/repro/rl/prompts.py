"""Step prompts and action parsing for text agents (reference: agentic-rl.md §2.3–§2.4).

Each environment step is its own sample: the prompt holds the task, the last ``history_length``
(observation, action) pairs, the current observation and the admissible actions, as one user
message rendered through the tokenizer's chat template. The structure and the information follow
verl-agent's ALFWorld prompt; the wording is ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALFWORLD_FIRST = (
    "You are an expert agent operating in the ALFRED Embodied Environment.\n"
    "Your current observation is: {obs}\n"
    "Your admissible actions of the current situation are: [{actions}].\n\n"
    "{instruction}"
)
ALFWORLD_LATER = (
    "You are an expert agent operating in the ALFRED Embodied Environment. "
    "Your task is to: {task}\n"
    "Prior to this step, you have already taken {n} step(s). Below are the most recent {k} "
    "observations and the corresponding actions you took: {history}\n"
    "You are now at step {n1} and your current observation is: {obs}\n"
    "Your admissible actions of the current situation are: [{actions}].\n\n"
    "{instruction}"
)
THINK_INSTRUCTION = (
    "Now it's your turn to take an action. You should first reason step-by-step about the current "
    "situation. This reasoning process MUST be enclosed within <think> </think> tags. Once you've "
    "finished your reasoning, you should choose an admissible action for current step and present "
    "it within <action> </action> tags."
)
# deviation: embedded scale only. The same fields (task, steps taken, recent history, current
# observation, admissible actions, answer format) in few words, so prompts stay ~100 tokens for a
# word-level tokenizer and a 2-layer model.
COMPACT_FIRST = "task: {task}\nobservation: {obs}\nactions: [{actions}]\n{instruction}"
COMPACT_LATER = (
    "task: {task}\nsteps taken: {n}; last {k}: {history}\nstep {n1} observation: {obs}\n"
    "actions: [{actions}]\n{instruction}"
)

# deviation: embedded scale only. A 0.4M-parameter policy cannot produce a reasoning trace, so the
# embedded prompt asks for the action tag alone and `require_think` is off (see the study README).
ACTION_ONLY_INSTRUCTION = "Choose an admissible action and present it within <action> </action> tags."

TEMPLATES = {"full": (ALFWORLD_FIRST, ALFWORLD_LATER), "compact": (COMPACT_FIRST, COMPACT_LATER)}

# WebShop: verl-agent's structure (agent_system/environments/prompts/webshop.py, agentic-rl.md §2.3):
# a shopping-agent persona, the task, the optional history, the current observation and the
# admissible actions one per line as 'action',; the instruction adds the shopping goal. Our wording.
WEBSHOP_THINK = (
    "Now it's your turn to take one action for the current step. You should first reason "
    "step-by-step about the current situation, then think carefully which admissible action best "
    "advances the shopping goal. This reasoning process MUST be enclosed within <think> </think> "
    "tags. Once you've finished your reasoning, you should choose an admissible action for current "
    "step and present it within <action> </action> tags."
)
WEBSHOP_FIRST = (
    "You are an expert autonomous agent operating in the WebShop e-commerce platform.\n"
    "Your task is to: {task}.\n"
    "Your current observation is: {obs}.\n"
    "Your admissible actions of the current situation are: [\n{actions}\n].\n\n"
    "{instruction}"
)
WEBSHOP_LATER = (
    "You are an expert autonomous agent operating in the WebShop e-commerce platform.\n"
    "Your task is to: {task}.\n"
    "Prior to this step, you have already taken {n} step(s). Below are the most recent {k} "
    "observations and the corresponding actions you took: {history}\n"
    "You are now at step {n1} and your current observation is: {obs}.\n"
    "Your admissible actions of the current situation are: [\n{actions}\n].\n\n"
    "{instruction}"
)
WEBSHOP_TEMPLATES = {"full": (WEBSHOP_FIRST, WEBSHOP_LATER), "compact": (COMPACT_FIRST, COMPACT_LATER)}
WEBSHOP_SEP = " [SEP] "


def webshop_observation(obs: str) -> str:
    """verl-agent's WebShop observation: the parts after the instruction, each quoted, re-joined
    with [SEP] (the page header and the instruction itself are dropped)."""
    parts = obs.split(WEBSHOP_SEP)
    start = parts.index("Instruction:") + 2 if "Instruction:" in parts else 0
    return WEBSHOP_SEP.join(f"'{x}'" for x in parts[start:])


WEBSHOP_OBSERVATION_FILTERS = {"full": webshop_observation, "compact": webshop_observation}


def quoted_inline(actions: list[str]) -> str:
    """ALFWorld's action list: ``'a', 'b'``."""
    return ", ".join(f"'{a}'" for a in actions)


def quoted_lines(actions: list[str]) -> str:
    """WebShop's action list: one ``'a',`` per line."""
    return "\n".join(f"'{a}'," for a in actions)

TASK_PREFIX = "Your task is to: "


def compact_observation(obs: str) -> str:
    """Drop ALFWorld's welcome banner and task sentence from a first observation (compact style)."""
    obs = obs.replace("-= Welcome to TextWorld, ALFRED! =-", "")
    i = obs.find(TASK_PREFIX)
    return (obs[:i] if i >= 0 else obs).strip()


# the compact style carries the task in its "task:" field, so the banner and task sentence go
OBSERVATION_FILTERS = {"full": lambda text: text, "compact": compact_observation}


def task_from_first_observation(obs: str) -> str:
    """ALFWorld task text: everything after "Your task is to: " in the first observation."""
    i = obs.find(TASK_PREFIX)
    return obs[i + len(TASK_PREFIX):].strip() if i >= 0 else ""


@dataclass
class Memory:
    """Per-episode (observation shown, action executed) records (verl-agent ``SimpleMemory``)."""

    records: list[tuple[str, str]] = field(default_factory=list)

    def add(self, obs: str, action: str) -> None:
        self.records.append((obs, action))

    def fetch(self, history_length: int) -> tuple[str, int]:
        """Last ``history_length`` records rendered one per line, and how many there were."""
        if history_length <= 0:
            return "", 0
        recent = self.records[-history_length:]
        start = len(self.records) - len(recent)
        lines = [
            f"[Observation {start + i + 1}: '{o}', Action {start + i + 1}: '{a}']"
            for i, (o, a) in enumerate(recent)
        ]
        return "\n".join(lines), len(recent)


def build_prompt(
    obs: str,
    admissible: list[str],
    task: str,
    memory: Memory,
    history_length: int,
    *,
    think: bool = True,
    max_obs_chars: int | None = None,
    style: str = "full",
    templates: dict[str, tuple[str, str]] = TEMPLATES,
    filters: dict = OBSERVATION_FILTERS,
    format_actions=quoted_inline,
) -> str:
    """The user message for one step.

    ``style`` picks the wording (``full``: the reference's; ``compact``: the same fields in few
    words); ``max_obs_chars`` shortens observations. Both shrinks are for the embedded scale only.
    ``templates``, ``filters`` and ``format_actions`` are the benchmark's (default ALFWorld's).
    """
    first, later = templates[style]
    shorten = filters[style]

    def clip(text: str) -> str:
        text = shorten(text)
        return text[:max_obs_chars] if max_obs_chars else text

    actions = format_actions([a for a in admissible if a != "help"])
    instruction = THINK_INSTRUCTION if think else ACTION_ONLY_INSTRUCTION
    if not memory.records or history_length <= 0:
        return first.format(task=task, obs=clip(obs), actions=actions, instruction=instruction)
    shown = Memory([(clip(o), a) for o, a in memory.records])
    history, k = shown.fetch(history_length)
    n = len(memory.records)
    return later.format(
        task=task, n=n, k=k, history=history, n1=n + 1, obs=clip(obs), actions=actions,
        instruction=instruction,
    )


def format_response(action: str, think: bool) -> str:
    """The response an ideal agent gives for ``action`` (SFT targets, constrained decoding)."""
    return ("<think> </think> " if think else "") + f"<action> {action} </action>"


_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class ActionParser:
    """A benchmark's projection of a raw response onto an action (``Benchmark.parser``): the text
    (lower-cased when ``lowercase``) between ``<tag>`` and ``</tag>``, stripped; without both tags
    the last ``tail_chars`` characters are sent and the step is invalid (verl-agent's
    ``alfworld_projection`` / ``webshop_projection``)."""

    tag: str = "action"
    tail_chars: int = 30
    lowercase: bool = True

    def __call__(self, text: str, require_think: bool = True) -> tuple[str, bool]:
        return parse_action(text, tail_chars=self.tail_chars, require_think=require_think, tag=self.tag,
                            lowercase=self.lowercase)


def parse_action(text: str, *, tail_chars: int = 30, require_think: bool = True, tag: str = "action",
                 lowercase: bool = True) -> tuple[str, bool]:
    """Project a raw response onto an action (verl-agent ``alfworld_projection``).

    Returns ``(action, valid)``. The text is lowercased (``lowercase``); with both ``<tag>`` tags
    the stripped inner text is the action; otherwise the last ``tail_chars`` characters are sent
    and the step is invalid. Missing ``<think>`` tags (when required) or CJK characters also make
    it invalid. Admissibility is deliberately not checked (as in the reference).
    """
    t = text.lower() if lowercase else text
    low = t if lowercase else t.lower()  # tags are matched case-insensitively either way
    start, end = low.find(f"<{tag}>"), low.find(f"</{tag}>")
    if start >= 0 and end > start:
        action, valid = t[start + len(tag) + 2:end].strip(), True
    else:
        action, valid = t[-tail_chars:], False
    if require_think and ("<think>" not in low or "</think>" not in low):
        valid = False
    if _CJK.search(t):
        valid = False
    return action, valid
