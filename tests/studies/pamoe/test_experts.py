"""PA-MoE's LoRA experts through peft: a mixed-adapter batch generates exactly what each adapter
generates alone, and the per-expert forward trains only the chosen experts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from repro.rl.finetune import Tuned
from repro.rl.trainer import by_agent
from repro.studies.pamoe.experts import ExpertParams, activate, add_experts, expert_name

pytest.importorskip("peft")


@pytest.fixture()
def model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=0, eos_token_id=1, bos_token_id=1)
    m = add_experts(Qwen2ForCausalLM(cfg), ExpertParams(experts=3, rank=4, alpha=8, dropout=0.0))
    with torch.no_grad():  # LoRA B starts at 0 (every expert = the base): make them differ
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    return m


def test_mixed_adapter_batch_generates_what_each_adapter_generates_alone(model):
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12], [5, 6, 7, 8], [13, 14, 15, 16]])
    mask = torch.ones_like(ids)
    experts = [0, 1, 2, 1]
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    model.eval()  # as the sampler: one generate, each row's adapter named (PhaseExperts.agent_kwargs)
    mixed = model.generate(input_ids=ids, attention_mask=mask, adapter_names=[expert_name(k) for k in experts], **kw)
    for i, k in enumerate(experts):
        model.set_adapter(expert_name(k))
        model.eval()
        alone = model.generate(input_ids=ids[i:i + 1], attention_mask=mask[i:i + 1], **kw)
        assert torch.equal(mixed[i], alone[0]), (i, k)
    assert not torch.equal(mixed[0], mixed[2])  # same prompt, different experts, different text


def test_per_expert_forward_reaches_only_the_chosen_experts(model):
    model.train()
    ids = torch.tensor([[5, 6, 7], [9, 10, 11], [12, 13, 14]])
    experts = np.array([2, 0, 2])
    tuned = Tuned(module=model, per_agent=True)
    tuned.select = lambda k: activate(model, k)  # PhaseExperts.select
    logits = torch.zeros(3, 3, 50)
    for rows in by_agent(range(3), SimpleNamespace(batch=SimpleNamespace(agent=experts)), tuned):  # the update's split
        logits = logits.index_copy(0, torch.tensor(rows), model(input_ids=ids[rows]).logits)
    assert logits.shape == (3, 3, 50)
    logits.sum().backward()
    grads = {k: sum(p.grad.abs().sum().item() for n, p in model.named_parameters()
                    if f".{expert_name(k)}." in n and p.grad is not None) for k in range(3)}
    assert grads[0] > 0 and grads[2] > 0 and grads[1] == 0
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)  # the base is frozen
    model.eval()
    model.set_adapter(expert_name(0))
    torch.testing.assert_close(model(input_ids=ids[1:2]).logits[0], logits[1].detach())
