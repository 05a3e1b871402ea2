"""PA-MoE's experts: K LoRA adapters on the attention projections of a frozen policy (agentic-rl.md
§3.8.2), one adapter per row. Sampling runs a batch whose rows use different experts in one
``generate`` (peft's mixed-adapter batches, ``adapter_names``: ``PhaseExperts.agent_kwargs``); the
update, which peft does not allow with mixed adapters in training mode, runs each expert's rows
with that expert active (``activate``, through ``repro.rl.trainer.by_agent``).
"""

from __future__ import annotations

from repro.studies.pamoe.params import ExpertParams  # noqa: F401  (re-exported)


def expert_name(k: int) -> str:
    return f"expert{k}"


def add_experts(model, p: ExpertParams):
    """``model`` (a causal LM) wrapped by peft with K LoRA adapters ``expert0`` … on ``p.targets``;
    the base weights are frozen, each adapter trainable."""
    from peft import LoraConfig, get_peft_model

    def config() -> LoraConfig:
        return LoraConfig(r=p.rank, lora_alpha=p.alpha, lora_dropout=p.dropout, target_modules=list(p.targets),
                          bias="none", task_type="CAUSAL_LM")

    peft_model = get_peft_model(model, config(), adapter_name=expert_name(0))
    for k in range(1, p.experts):
        peft_model.add_adapter(expert_name(k), config())
    _trainable(peft_model)
    return peft_model


def _trainable(peft_model) -> None:
    """Every expert trainable, the base frozen (peft's ``add_adapter`` and ``set_adapter`` leave
    only the active adapter trainable)."""
    for name, param in peft_model.named_parameters():
        param.requires_grad = "lora_" in name


def activate(peft_model, k: int) -> None:
    """Expert ``k`` answers the next forward; all experts stay trainable (gradients already
    flowing to another expert's weights in this step still reach them)."""
    peft_model.set_adapter(expert_name(k))
    _trainable(peft_model)
