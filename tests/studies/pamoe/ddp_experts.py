"""One PPO update of K LoRA experts, each row through its own expert (``Tuned.per_agent``), run as
``python ddp_experts.py OUT`` (one process) or under ``torchrun --nproc_per_node 2`` (gloo):
rank 0 saves the experts' updated weights to OUT. Used by test_pamoe_ddp.py."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from transformers import Qwen2ForCausalLM

from repro.rl import distributed as dist
from repro.rl import plugin  # noqa: F401  (registers the policy loss ppo_update uses)
from repro.rl.config import TrainConfig
from repro.rl.finetune import Tuned
from repro.rl.policy import batched_logprobs, update_plan
from repro.rl.rollout import Rollout
from repro.rl.trainer import ppo_update
from repro.studies.pamoe.experts import activate, add_experts
from repro.studies.pamoe.params import ExpertParams

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "rl"))
from ddp_update import setup  # noqa: E402  (the fixed model and batch of the core's DDP test)


class Experts(Tuned):
    def __init__(self, model) -> None:
        self.wrapper = add_experts(model, ExpertParams(experts=3, rank=4, alpha=8, dropout=0.0))
        super().__init__(module=model, per_agent=True)

    def select(self, agent: int) -> None:
        activate(self.wrapper, agent)


def main(out: Path) -> None:
    cfg_model, base, prompts, responses = setup()
    model = Qwen2ForCausalLM(cfg_model)
    model.load_state_dict(base.state_dict())
    tuned = Experts(model)
    with torch.no_grad():  # experts that differ from the start
        for name, p in tuned.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(len(name)))
    agents = np.array([0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1])
    old = [(x - 0.1).tolist() for x in batched_logprobs(base, prompts, responses, 0, batch_size=4)]
    ro = Rollout(batch=SimpleNamespace(agent=agents), prompt_ids=prompts, response_ids=responses,
                 won=np.zeros(0, bool), lengths=np.zeros(0, int), task_types=[], games=[], old_logprobs=old)
    adv = np.linspace(-1.0, 1.0, len(prompts))
    cfg = TrainConfig(mini_batch_rows=6, micro_batch_rows=2, ppo_epochs=2, policy_loss_params={"kl_coef": 0.01},
                      lr=1e-2, old_logprobs="sampler")
    before = {k: v.clone() for k, v in tuned.module.state_dict().items() if "lora_" in k}
    opt = torch.optim.AdamW(tuned.trainable(), lr=cfg.lr)
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    plan = update_plan([len(r) for r in responses], lengths, cfg.mini_batch_rows, cfg.micro_batch_rows,
                       cfg.ppo_epochs, np.random.default_rng(0))
    parts = ppo_update(tuned.module, base, opt, ro, adv, cfg, pad_id=0, rng=np.random.default_rng(0), plan=plan,
                       tuned=tuned)
    if dist.is_main():
        after = {k: v.clone() for k, v in tuned.module.state_dict().items() if "lora_" in k}
        torch.save({"parts": parts, "world": dist.world_size(), "before": before, "after": after}, out)
    dist.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
