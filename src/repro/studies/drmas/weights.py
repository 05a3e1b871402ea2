"""Dr. MAS's non-shared agents: one whole model per agent (``registry.FINETUNING`` ``per_agent_models``;
agentic-rl.md §3.6.2 Algorithm 1, the released ``build_wg_ids`` without ``model_sharing``).

Every agent starts from the same base model and is trained only on its own rows, with its own
optimizer, gradient clipping and mini-batches (the trainer's worker groups, one per agent), as the
released trainer updates one worker group after the other. Sampling: the team's orchestration
names the role of each ``generate`` call (``agents``), which selects that agent's model. Shared
weights need nothing of this: the ``full`` fine-tuning trains one model on every role's rows.

Checkpoint: agent 0's model at the top of the folder (so the plain loader reads a whole model) and
agent k's under ``agents/agent<k>/``; evaluation restores each.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from repro.rl.finetune import Tuned
from repro.studies.drmas.params import PerAgentParams


class AgentModels(torch.nn.Module):
    """K causal LMs behind one module: forward passes, the backbone, the head and ``generate`` are
    the active agent's (``active``)."""

    def __init__(self, models: list) -> None:
        super().__init__()
        self.models = torch.nn.ModuleList(models)
        self.active = 0

    @property
    def config(self):
        return self.models[0].config

    @property
    def generation_config(self):
        return self.models[self.active].generation_config

    @property
    def base_model(self):
        return self.models[self.active].base_model

    def get_output_embeddings(self):
        return self.models[self.active].get_output_embeddings()

    def generate(self, *args, **kwargs):
        return self.models[self.active].generate(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self.models[self.active](*args, **kwargs)


class Roles:
    """``Tuned.agents`` of per-agent weights: the team's orchestration decides who acts (and names
    the role in every ``generate``); this object only says that roles have their own weights."""

    def begin(self, tasks: list[str]) -> None:
        pass

    def choose(self, idx, obs, memories):
        raise NotImplementedError("a Dr. MAS team's orchestration picks the acting agent itself")


class PerAgentModels(Tuned):
    """One model per agent, each its own worker group."""

    def __init__(self, models: list) -> None:
        k = len(models)
        cols = tuple(f"train/{m}/wg{g}" for g in range(k) for m in ("grad_norm", "grad_norm_max", "policy_loss"))
        super().__init__(AgentModels(models), per_agent=True, columns=cols,
                         worker_groups=tuple((g,) for g in range(k)))

    def group_parameters(self, group: int) -> list:
        return [p for p in self.module.models[group].parameters() if p.requires_grad]

    def select(self, agent: int) -> None:
        self.module.active = int(agent)

    def agent_kwargs(self, agents: list[int]) -> dict:
        if len(set(agents)) != 1:
            raise ValueError(f"one generate call samples one agent's model; got agents {sorted(set(agents))}")
        self.select(agents[0])
        return {}

    def agents(self, training: bool) -> Roles:
        return Roles()

    def export(self):
        return self.module.models[0]

    def save(self, out_dir: Path, **kwargs) -> None:
        self.module.models[0].save_pretrained(out_dir, **kwargs)
        for k, m in enumerate(self.module.models[1:], start=1):
            m.save_pretrained(Path(out_dir) / "agents" / f"agent{k}", **kwargs)


def per_agent_models(model, tok, params: PerAgentParams, checkpoint: Path | None = None) -> PerAgentModels:
    """``params.agents`` copies of ``model`` (training), or the checkpoint's agents (evaluation)."""
    if checkpoint is None:
        return PerAgentModels([model] + [copy.deepcopy(model) for _ in range(params.agents - 1)])
    others = [AutoModelForCausalLM.from_pretrained(Path(checkpoint) / "agents" / f"agent{k}", dtype=model.dtype)
              .to(model.device).eval() for k in range(1, params.agents)]
    return PerAgentModels([model] + others)
