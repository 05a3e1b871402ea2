"""One PPO actor update and one critic update on a fixed batch, run as ``python ddp_update.py OUT
[ddp|fsdp] [no-allreduce]`` (one process) or under ``torchrun --nproc_per_node 2`` (gloo): rank 0
saves the updated parameters and the logged parts to OUT. ``no-allreduce`` removes the gradient
all-reduce (each rank steps on its own gradients), to show that the test notices. Used by
test_distributed.py."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from repro.rl import distributed as dist
from repro.rl import plugin  # noqa: F401  (registers the policy loss ppo_update uses)
from repro.rl.config import TrainConfig
from repro.rl.critic import Critic
from repro.rl.policy import HeadAtResponses, batched_logprobs, update_plan
from repro.rl.rollout import Rollout
from repro.rl.trainer import ppo_update


def setup() -> tuple[Qwen2Config, Qwen2ForCausalLM, list[list[int]], list[list[int]]]:
    """This process joined to the group; the tiny model config, the base model and the fixed
    batch (prompts, responses) every worker updates on (also tests/studies/pamoe/ddp_experts.py)."""
    dist.init_from_env()
    torch.set_num_threads(1)
    torch.manual_seed(3)
    cfg_model = Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    base = Qwen2ForCausalLM(cfg_model)
    gen = torch.Generator().manual_seed(1)
    sizes = [(9, 2), (3, 4), (14, 1), (5, 3), (7, 2), (12, 1), (4, 5), (6, 2), (10, 3), (8, 2), (5, 5)]
    prompts = [torch.randint(2, 50, (p,), generator=gen).tolist() for p, _ in sizes]
    responses = [torch.randint(2, 50, (r,), generator=gen).tolist() for _, r in sizes]
    return cfg_model, base, prompts, responses


def main(out: Path, parallel: str) -> None:
    cfg_model, base, prompts, responses = setup()
    old = [(x - 0.1).tolist() for x in batched_logprobs(base, prompts, responses, 0, batch_size=4)]
    ro = Rollout(batch=None, prompt_ids=prompts, response_ids=responses, won=np.zeros(0, bool),
                 lengths=np.zeros(0, int), task_types=[], games=[], old_logprobs=old)
    adv = [np.linspace(-1.0, 1.0, len(r)) * (i - 5) for i, r in enumerate(responses)]  # per token
    cfg = TrainConfig(mini_batch_rows=6, micro_batch_rows=2, ppo_epochs=2, policy_loss_params={"kl_coef": 0.01},
                      lr=1e-3)
    model = Qwen2ForCausalLM(cfg_model)
    model.load_state_dict(base.state_dict())
    fsdp = parallel == "fsdp" and dist.world_size() > 1
    policy = dist.shard_model(HeadAtResponses(model)) if fsdp else model
    ref = dist.shard_model(HeadAtResponses(copy.deepcopy(base))) if fsdp else base
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    actor_plan = update_plan([len(r) for r in responses], lengths, cfg.mini_batch_rows, cfg.micro_batch_rows,
                             cfg.ppo_epochs, np.random.default_rng(0))
    parts = ppo_update(policy, ref, opt, ro, adv, cfg, pad_id=0, rng=np.random.default_rng(0), plan=actor_plan)
    assert dist.is_sharded(policy) == fsdp

    folder = out.parent / "model"
    whole = dist.full_state_dict(model)  # the trainer's final save of a sharded policy
    if dist.is_main():
        base.save_pretrained(folder)
        model.save_pretrained(out.parent / "actor", state_dict=whole)
    dist.barrier()
    torch.manual_seed(5)  # the critic's fresh value head
    critic = Critic(folder, lr=1e-2, weight_decay=0.0, parallel=parallel)
    critic0 = {k: v.clone() for k, v in dist.full_state_dict(critic.model).items()}  # before its update
    returns = [np.full(len(r), float(i % 3)) for i, r in enumerate(responses)]
    values = critic.values(prompts, responses, 0, batch_size=4)
    plan = update_plan([len(r) for r in responses], lengths, 6, 2, 2, np.random.default_rng(1))
    parts.update(critic.update(prompts, responses, returns, values, plan, 0, clip=0.5, grad_clip=1.0))
    actor, value = dist.full_state_dict(model), dist.full_state_dict(critic.model)  # every rank: gathers
    state = critic.state_dict()  # the resumable state, gathered under FSDP
    # resume: every rank reads the whole state back (as the trainer does from state.pt)
    if dist.is_main():
        torch.save(state, out.parent / "critic_state.pt")
    dist.barrier()
    resumed = Critic(folder, lr=1e-2, weight_decay=0.0, parallel=parallel,
                     state=torch.load(out.parent / "critic_state.pt", weights_only=False))
    again = resumed.state_dict()
    if dist.is_main():
        for k, v in state["model"].items():
            assert torch.equal(again["model"][k], v), k
        for pid, st in state["optimizer"]["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(again["optimizer"]["state"][pid][k]), torch.as_tensor(v)), (pid, k)
    if dist.is_main():
        # what one token's clip decision weighs in a logged clip fraction: 1 / (its step's tokens
        # x steps), the largest over the steps
        element = {"train/clipfrac": max(1.0 / (n * len(actor_plan)) for _, n in actor_plan),
                   "critic/value_clipfrac": max(1.0 / (n * len(plan)) for _, n in plan)}
        torch.save({"parts": parts, "element": element, "world": dist.world_size(),
                    "actor": actor, "actor0": base.state_dict(), "critic": value, "critic0": critic0,
                    "critic_state_keys": sorted(state["optimizer"]["state"])}, out)
    dist.barrier()


if __name__ == "__main__":
    if "no-allreduce" in sys.argv[3:]:
        dist.all_reduce_grads = lambda params: None
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "ddp")
