"""What the trainer updates (``registry.FINETUNING``, named by ``train.finetune``): the whole model
(``full``, the papers' RL) or low-rank adapters on the frozen model (``lora``, through peft; the
single-network baseline of PA-MoE, agentic-rl.md §3.8), or what a study registers (PA-MoE's
routed experts). A fine-tuning item ``(model, tok, params, checkpoint=None) -> Tuned`` builds a
:class:`Tuned` around the loaded causal LM: the module the forward passes and the optimizer use,
the module the sampler generates with, and what a checkpoint saves. With ``checkpoint`` (evaluation)
the item restores its trained state from that directory, whose plain model is already loaded.

Rows of one batch may be written by different *agents* (``StepBatch.agent``: PA-MoE's experts, a
multi-agent system's roles): a :class:`Tuned` with ``per_agent`` picks the agent of each step
(``agents``), selects its weights before a forward over that agent's rows (``select``) and tells
the sampler which weights write each row (``agent_kwargs``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Tuned:
    """``module``: what is trained (its parameters with ``requires_grad`` are the optimizer's);
    ``export()``: the plain causal LM to save. The hooks below are no-ops for one set of weights."""

    module: Any
    export_fn: Any = None
    #: rows of different agents go through different weights (``select``) in the update
    per_agent: bool = False
    #: train_log.csv columns ``after_update`` (and the worker groups' metrics) fill
    columns: tuple[str, ...] = ()
    #: the agents of each worker group, whose weights ``group_parameters`` gives, updated
    #: separately (one optimizer and one pass over its agents' rows each: Dr. MAS's non-shared
    #: agents); None: one group, every trainable weight, the whole batch
    worker_groups: tuple[tuple[int, ...], ...] | None = None

    def export(self):
        return self.module if self.export_fn is None else self.export_fn(self.module)

    def save(self, out_dir: Path, **kwargs) -> None:
        """The checkpoint ``out_dir``: the exported model (``kwargs``: ``save_pretrained``'s)."""
        self.export().save_pretrained(out_dir, **kwargs)

    def trainable(self) -> list:
        return [p for p in self.module.parameters() if p.requires_grad]

    def group_parameters(self, group: int) -> list:
        """The trainable weights of worker group ``group`` (``worker_groups``)."""
        raise NotImplementedError(f"{type(self).__name__} declares worker groups but not their parameters")

    @property
    def sampler(self):
        """The module the rollout's sampler generates with."""
        return self.module

    def agents(self, training: bool):
        """Who acts at each step of the next rollout (``repro.rl.rollout.AgentChooser``), or None:
        agent 0 everywhere. ``training``: a training rollout (else validation or evaluation)."""
        return None

    def select(self, agent: int) -> None:
        """The next forward passes run ``agent``'s weights."""

    def agent_kwargs(self, agents: list[int]) -> dict:
        """``generate`` keyword arguments making row i's response come from ``agents[i]``."""
        return {}

    def after_update(self, ro, iteration: int) -> dict[str, float]:
        """After the policy's update on rollout ``ro``: the item's own learning step, if any, and
        its metrics (keys in ``columns``)."""
        return {}

    def usage(self, ro) -> dict:
        """What evaluation adds to a split's results about how the agents were used on ``ro``:
        numbers under ``metrics`` reach ``summary.csv`` (one row each); other keys stay in eval.json."""
        return {}

    def state_dict(self) -> dict:
        """What a resumable checkpoint keeps beside the module's weights (e.g. a router)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass(frozen=True)
class FullParams:
    """``full`` takes no params."""


def full(model, tok, params: FullParams, checkpoint: Path | None = None) -> Tuned:
    """Every weight trained (verl's actor)."""
    return Tuned(model)


@dataclass(frozen=True)
class LoraParams:
    rank: int = 32                   # PA-MoE: LoRA rank 32, alpha 64, dropout 0.05 on q/k/v/o (§3.8.2)
    alpha: int = 64
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha < 1 or not 0.0 <= self.dropout < 1.0 or not self.targets:
            raise ValueError(f"need rank >= 1, alpha >= 1, 0 <= dropout < 1 and targets; got {self}")


def lora(model, tok, params: LoraParams, checkpoint: Path | None = None) -> Tuned:
    """One LoRA adapter on ``targets`` of the frozen model; the checkpoint is the merged model
    (restored as it loads)."""
    if checkpoint is not None:
        return Tuned(model)
    from peft import LoraConfig, get_peft_model

    wrapper = get_peft_model(model, LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=params.dropout,
                                               target_modules=list(params.targets), bias="none",
                                               task_type="CAUSAL_LM"))
    # peft injects the adapters into ``model`` itself (base weights frozen): the trainer keeps
    # using the causal LM (its backbone, head and generate); the wrapper merges them for saving
    return Tuned(model, lambda m: copy.deepcopy(wrapper).merge_and_unload())
