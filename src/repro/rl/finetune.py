"""What the trainer updates (``registry.FINETUNING``, named by ``train.finetune``): the whole model
(``full``, the papers' RL) or low-rank adapters on the frozen model (``lora``, through peft; the
single-network baseline of PA-MoE, agentic-rl.md §3.8). A fine-tuning item builds a
:class:`Tuned` around the loaded causal LM: the module the sampler, the forward passes and the
optimizer use, and the plain model a checkpoint saves (LoRA merged), so evaluation loads it like
any other checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tuned:
    """``module``: what is trained (its parameters with ``requires_grad`` are the optimizer's);
    ``export()``: the plain causal LM to save."""

    module: Any
    export_fn: Any = None

    def export(self):
        return self.module if self.export_fn is None else self.export_fn(self.module)

    def trainable(self) -> list:
        return [p for p in self.module.parameters() if p.requires_grad]


@dataclass(frozen=True)
class FullParams:
    """``full`` takes no params."""


def full(model, params: FullParams) -> Tuned:
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


def lora(model, params: LoraParams) -> Tuned:
    """One LoRA adapter on ``targets`` of the frozen model; the checkpoint is the merged model."""
    from peft import LoraConfig, get_peft_model

    wrapper = get_peft_model(model, LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=params.dropout,
                                               target_modules=list(params.targets), bias="none",
                                               task_type="CAUSAL_LM"))
    # peft injects the adapters into ``model`` itself (base weights frozen): the trainer keeps
    # using the causal LM (its backbone, head and generate); the wrapper merges them for saving
    return Tuned(model, lambda m: copy.deepcopy(wrapper).merge_and_unload())
