"""The value model of PPO's GAE baseline (reference/agentic-rl.md §3.2).

As in verl, the critic is the base checkpoint loaded as ``AutoModelForTokenClassification`` with
one label: the same transformer plus a freshly initialised scalar head, trained by its own AdamW
(``critic_lr``; paper 1e-5) with verl's clipped value loss on the same step rows as the actor.
The value of a response token is the head's output at the position that predicts it (the state
in which the token is chosen).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from repro.rl import distributed as dist
from repro.rl.losses import value_loss
from repro.rl.policy import HeadAtResponses, head_at_responses, pad_to

log = logging.getLogger(__name__)


class Critic:
    """Value model: the base model with a one-output token-classification head (``score``).
    ``parallel="fsdp"`` shards it over the ranks, as the actor (``repro.rl.distributed``)."""

    def __init__(self, model_dir: Path, lr: float, weight_decay: float, parallel: str = "ddp",
                 state: dict | None = None) -> None:
        """``state``: what :meth:`state_dict` returned (resume), loaded before any sharding."""
        from transformers import AutoModelForTokenClassification
        from transformers.utils import logging as hf_logging

        was = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "score.weight newly initialised" is the point
        try:
            self.model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=1,
                                                                         dtype=torch.float32).to(dist.device())
        finally:
            hf_logging.set_verbosity(was)
        if state is not None:
            self.model.load_state_dict(state["model"])
        # the module every forward goes through: the model itself, or its FSDP-sharded value head
        self.net = (dist.shard_model(HeadAtResponses(self.model, "score"))
                    if parallel == "fsdp" and dist.world_size() > 1 else self.model)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        if state is not None:
            dist.load_optimizer_state(self.net, self.optimizer, state["optimizer"])

    def _values(self, prompt_ids, response_ids, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(values [B, R], mask [B, R]); zero outside the mask."""
        v, _, mask = head_at_responses(self.net, prompt_ids, response_ids, pad_id, "score")
        return v.squeeze(-1) * mask, mask

    @torch.no_grad()
    def values(self, prompt_ids, response_ids, pad_id: int, batch_size: int) -> list[np.ndarray]:
        """Per-row token values (list of float64[L_i]), batched by length, in input order."""
        self.net.eval()
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]) + len(response_ids[i]))
        out: list[np.ndarray] = [np.zeros(0)] * len(prompt_ids)
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            v, _ = self._values([prompt_ids[i] for i in idx], [response_ids[i] for i in idx], pad_id)
            for j, i in enumerate(idx):
                out[i] = v[j, : len(response_ids[i])].double().cpu().numpy()
        return out

    def update(self, prompt_ids, response_ids, returns: Sequence[np.ndarray], old_values: Sequence[np.ndarray],
               plan, pad_id: int, *, clip: float, grad_clip: float) -> dict[str, float]:
        """One optimizer step per entry of ``plan`` (``policy.update_plan``); token-mean over each
        mini-batch, accumulated over its micro-batches. Returns mean ``critic/*`` metrics."""
        dev = next(self.net.parameters()).device
        ret = [torch.as_tensor(r, dtype=torch.float32, device=dev) for r in returns]
        old = [torch.as_tensor(v, dtype=torch.float32, device=dev) for v in old_values]
        sums = {"critic/value_loss": 0.0, "critic/value_clipfrac": 0.0}
        self.net.train()
        sharded = dist.is_sharded(self.net)
        for micro, n_tokens in plan:
            self.optimizer.zero_grad(set_to_none=True)
            for m, weight in dist.deal(micro, sharded):  # data parallel, as the actor's update
                v, mask = self._values([prompt_ids[i] for i in m], [response_ids[i] for i in m], pad_id)
                width = v.shape[1]
                loss, clipfrac = value_loss(v, pad_to([old[i] for i in m], width),
                                            pad_to([ret[i] for i in m], width), mask, clip)
                share = float(mask.sum()) / n_tokens
                (loss * (share * weight)).backward()
                sums["critic/value_loss"] += loss.item() * share * (weight > 0)
                sums["critic/value_clipfrac"] += clipfrac.item() * share * (weight > 0)
            dist.sync_grads(self.net)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), grad_clip)
            self.optimizer.step()
        return {k: v / max(len(plan), 1) for k, v in dist.all_reduce_sum(sums).items()}

    def state_dict(self) -> dict:
        """Whole weights and optimizer state (gathered under FSDP: every rank calls this)."""
        return {"model": dist.full_state_dict(self.model), "optimizer": dist.optimizer_state(self.net, self.optimizer)}

