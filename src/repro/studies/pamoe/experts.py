"""PA-MoE's experts: K LoRA adapters on the attention projections of a frozen policy (agentic-rl.md
§3.8.2), one adapter per row. Sampling runs a batch whose rows use different experts in one
``generate`` (peft's mixed-adapter batches, ``adapter_names``); the update, which peft does not
allow with mixed adapters in training mode, runs each expert's rows with that expert active and
puts the results back in row order.
"""

from __future__ import annotations

import torch

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


def generate_mixed(peft_model, input_ids: torch.Tensor, attention_mask: torch.Tensor, experts: list[int],
                   **kwargs) -> torch.Tensor:
    """``generate`` with row i written by expert ``experts[i]``: [B, T + new] token ids."""
    was_training = peft_model.training
    peft_model.eval()
    try:
        return peft_model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                   adapter_names=[expert_name(k) for k in experts], **kwargs)
    finally:
        peft_model.train(was_training)


def logits_by_expert(peft_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     experts: torch.Tensor) -> torch.Tensor:
    """Logits [B, T, V] with row i through expert ``experts[i]`` (one forward per expert present),
    differentiable with respect to each expert's LoRA weights."""
    out = None
    for k in torch.unique(experts).tolist():
        rows = torch.nonzero(experts == k).squeeze(1)
        activate(peft_model, k)
        logits = peft_model(input_ids=input_ids[rows], attention_mask=attention_mask[rows]).logits
        if out is None:
            out = logits.new_zeros((len(experts), *logits.shape[1:]))
        out = out.index_copy(0, rows, logits)
    return out
