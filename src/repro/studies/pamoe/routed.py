"""PA-MoE's trained object (``train.finetune: lora_experts``, agentic-rl.md §3.8): K LoRA experts on
the frozen policy and the phase router that picks, once per environment step, the expert writing
that step's whole response.

The rollout asks the router (:class:`_PhaseChooser`) for each active episode's expert; the sampler
writes every row with its expert in one ``generate`` (peft's mixed-adapter batches); the PPO
update runs each expert's rows through that expert (``Tuned.select``); then the router takes its
own AdamW step on the same batch (``after_update``): REINFORCE on the episode return plus the
switching, balance and diversity losses, at the annealed temperature.

Router inputs are encodings of the *frozen base* (adapters off), computed while playing and kept
per step row (they do not change as the experts learn): the observation's and the goal's final
hidden states [T, d] and the mean-pooled encodings [d] of the last L (action, observation) pairs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from repro.rl import distributed as dist
from repro.rl.finetune import Tuned
from repro.studies.pamoe import checkpoint as ckpt
from repro.studies.pamoe.experts import activate, add_experts, expert_name
from repro.studies.pamoe.params import LoraExpertsParams
from repro.studies.pamoe.router import (PhaseRouter, balance_loss, choose, diversity_loss, probabilities,
                                        reinforce_loss, switching_loss, temperature)
from repro.studies.pamoe.usage import expert_usage

ROUTER_FILE = "pamoe_router.pt"


def _pad(rows: list[torch.Tensor], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [T_i, d] tensors right-padded to [B, T, d] and the mask [B, T] of real positions."""
    width = width or max(1, max(len(r) for r in rows))
    d = rows[0].shape[-1]
    out = rows[0].new_zeros((len(rows), width, d))
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        mask[i, : len(r)] = True
    return out, mask


class PhaseExperts(Tuned):
    """K experts (peft adapters ``expert0`` …) on the causal LM plus the phase router."""

    def __init__(self, model, tok, params: LoraExpertsParams) -> None:
        self.wrapper = add_experts(model, params.expert_params())
        super().__init__(module=model, per_agent=True,
                         columns=("router/loss", "router/reinforce", "router/switch", "router/balance",
                                  "router/diversity", "router/tau", "moe/switches_per_episode",
                                  "moe/max_expert_share"))
        self.tok, self.params, self.rp = tok, params, params.router_params()
        self.router = PhaseRouter(model.config.hidden_size, self.rp).to(next(model.parameters()).device)
        self.router_opt = torch.optim.AdamW(self.router.parameters(), lr=self.rp.lr)
        self.updates = 0                            # router steps taken (tau's clock)
        self.generator = torch.Generator().manual_seed(int(torch.initial_seed()) % 2**31)
        self.recorded: _PhaseChooser | None = None  # the last training rollout's router inputs

    # --- the sampler and the update ---
    @property
    def sampler(self):
        return self.wrapper                         # peft's generate takes adapter_names

    def agent_kwargs(self, agents: list[int]) -> dict:
        return {"adapter_names": [expert_name(k) for k in agents]}

    def select(self, agent: int) -> None:
        activate(self.wrapper, agent)

    def agents(self, training: bool) -> "_PhaseChooser":
        chooser = _PhaseChooser(self, training)
        if training:
            self.recorded = chooser
        return chooser

    def tau(self) -> float:
        return temperature(self.updates, self.rp)

    # --- encodings of the frozen base ---
    @torch.no_grad()
    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        """Final-layer hidden states of the base model (adapters off) over each text's last
        ``encode_tokens`` tokens: one [T_i, d] tensor per text (T_i >= 1)."""
        ids = [x[-self.params.encode_tokens:] or [self.tok.eos_token_id]
               for x in self.tok(texts, add_special_tokens=False)["input_ids"]]
        width = max(map(len, ids))
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        attn = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
            attn[i, : len(x)] = 1
        dev = next(self.module.parameters()).device
        was = self.module.training
        self.module.eval()
        try:
            with self.wrapper.disable_adapter():
                hidden = self.module.base_model(input_ids=input_ids.to(dev),
                                                attention_mask=attn.to(dev)).last_hidden_state.float().cpu()
        finally:
            self.module.train(was)
            activate(self.wrapper, 0)  # peft leaves only the active adapter trainable on re-enabling
        return [hidden[i, : len(x)] for i, x in enumerate(ids)]

    def logits(self, records: list[tuple]) -> torch.Tensor:
        """Router logits [B, K] for records (obs [To, d], goal [Tg, d], history [l, d])."""
        obs, obs_mask = _pad([r[0] for r in records])
        goal, goal_mask = _pad([r[1] for r in records])
        lens = torch.tensor([len(r[2]) for r in records])
        d = obs.shape[-1]
        hist, _ = _pad([r[2] if len(r[2]) else obs.new_zeros((1, d)) for r in records], self.rp.history)
        dev = next(self.router.parameters()).device
        return self.router(obs.to(dev), obs_mask.to(dev), goal.to(dev), goal_mask.to(dev), hist.to(dev), lens.to(dev))

    # --- the router's step ---
    def after_update(self, ro, iteration: int) -> dict[str, float]:
        """The router's AdamW step on this rank's rows of ``ro`` (data parallel: each rank recorded
        the steps it played, a contiguous part of the gathered batch; router gradients are averaged)."""
        records = [] if self.recorded is None else [r for ep in self.recorded.records for r in ep]
        counts = dist.all_gather(len(records))
        lo = sum(counts[:dist.rank()])
        if sum(counts) != len(ro.batch):
            raise RuntimeError(f"PA-MoE router: {sum(counts)} recorded steps for {len(ro.batch)} rows "
                               "(the rollout's rows must be the chooser's, in order)")
        mine = slice(lo, lo + len(records))
        b = ro.batch
        traj, reward = b.traj[mine], b.episode_reward[mine]
        episode = torch.as_tensor(traj)
        chosen = torch.as_tensor(b.agent[mine])
        first = np.flatnonzero(np.r_[True, traj[1:] != traj[:-1]])
        returns = torch.as_tensor(reward[first], dtype=torch.float32)             # R_traj per episode
        tau = self.tau()
        self.router.train()
        probs = probabilities(self.logits(records), tau)                          # [N, K]
        parts = {"reinforce": reinforce_loss(probs, chosen, episode, returns),
                 "switch": switching_loss(probs, chosen, episode, self.rp.switch_coef),
                 "balance": balance_loss(probs, self.rp.balance_coef),
                 "diversity": diversity_loss(probs, self.rp.diversity_coef, self.rp.diversity_margin)}
        loss = sum(parts.values())
        self.router_opt.zero_grad(set_to_none=True)
        loss.backward()
        weights = list(self.router.parameters())
        dist.all_reduce_grads(weights)
        for w in weights:
            if w.grad is not None:
                w.grad /= dist.world_size()
        torch.nn.utils.clip_grad_norm_(weights, self.params.router_grad_clip)
        self.router_opt.step()
        self.updates += 1
        self.recorded = None
        use = expert_usage(b.agent, b.traj, self.params.experts)
        return {"router/loss": loss.item(), **{f"router/{k}": v.item() for k, v in parts.items()},
                "router/tau": tau, "moe/switches_per_episode": use["switches_per_episode"],
                "moe/max_expert_share": max(use["share"])}

    def usage(self, ro) -> dict:
        rows_task = np.repeat(np.asarray(ro.task_types, dtype=object), ro.lengths)
        use = expert_usage(ro.batch.agent, ro.batch.traj, self.params.experts, rows_task)
        return {"metrics": {"switches_per_episode": use["switches_per_episode"],
                            "max_expert_share": max(use["share"])}, "experts": use}

    # --- checkpoints ---
    def save(self, out_dir: Path, **kwargs) -> None:
        """The plain base model (what ``_load`` reads), the experts' weights and the router."""
        plain = copy.deepcopy(self.wrapper).unload()
        ckpt.save(out_dir, plain, ckpt.adapter_state(self.module, "lora_"), kwargs)
        torch.save(self.router.state_dict(), Path(out_dir) / ROUTER_FILE)

    def restore(self, out_dir: Path) -> None:
        ckpt.load_adapters(out_dir, self.module, "lora_")
        self.router.load_state_dict(torch.load(Path(out_dir) / ROUTER_FILE, weights_only=True))
        self.updates = self.rp.anneal_steps                                       # evaluation: tau_f

    def state_dict(self) -> dict:
        return {"router": self.router.state_dict(), "router_opt": self.router_opt.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.router.load_state_dict(state["router"])
            self.router_opt.load_state_dict(state["router_opt"])
            self.updates = state["updates"]


class _PhaseChooser:
    """One rollout's expert choices (``repro.rl.rollout.AgentChooser``); a training rollout keeps
    each step's router inputs, per episode in order (= the rollout's trajectory-major rows)."""

    def __init__(self, owner: PhaseExperts, training: bool) -> None:
        self.owner, self.training = owner, training
        self.sample = training and owner.params.choice == "sample"

    def begin(self, tasks: list[str]) -> None:
        self.goals = self.owner.encode(tasks)
        self.pairs: list[list[torch.Tensor]] = [[] for _ in tasks]
        self.records: list[list[tuple]] = [[] for _ in tasks]

    @torch.no_grad()
    def choose(self, idx: np.ndarray, obs: list[str], memories) -> list[int]:
        owner = self.owner
        current = owner.encode([obs[i] for i in idx])
        # the (action, observation) pair each episode just completed: its last action and what it led to
        after = [j for j, i in enumerate(idx) if memories[i].records]
        if after:
            pair_states = owner.encode([f"{memories[idx[j]].records[-1][1]} {obs[idx[j]]}" for j in after])
            for j, s in zip(after, pair_states):
                self.pairs[idx[j]].append(s.mean(0))
        records = []
        for j, i in enumerate(idx):
            recent = self.pairs[i][-owner.rp.history:]
            hist = torch.stack(recent) if recent else current[j].new_zeros((0, current[j].shape[-1]))
            records.append((current[j], self.goals[i], hist))
        was = owner.router.training
        owner.router.eval()
        try:
            probs = probabilities(owner.logits(records), owner.tau())
        finally:
            owner.router.train(was)
        picked = choose(probs, "sample" if self.sample else "argmax", owner.generator).tolist()
        if self.training:
            for i, r in zip(idx, records):
                self.records[i].append(r)
        return picked


def lora_experts(model, tok, params: LoraExpertsParams, checkpoint: Path | None = None) -> PhaseExperts:
    """PA-MoE's experts and router around ``model`` (restored from ``checkpoint`` to evaluate)."""
    tuned = PhaseExperts(model, tok, params)
    if checkpoint is not None:
        tuned.restore(checkpoint)
    return tuned
