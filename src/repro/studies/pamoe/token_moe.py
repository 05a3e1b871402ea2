"""The token-level routing baseline of PA-MoE (``train.finetune: token_moe``; agentic-rl.md §3.8.1,
§4.6 "MoE"): K LoRA experts on each adapted projection of the frozen policy, and a gate per
projection that sends every token to its top-1 expert, the expert's output weighted by the gate's
probability (Switch-Transformer routing, so the gate learns through the policy loss).

[I] The paper's token-routing baseline is described only as token-level routing (~1200 token
switches per episode, ~45 in step equivalents); its gate, auxiliary losses and placement are not in
the reference. This is our reading: the same experts' budget as PA-MoE (K experts of the same
rank on the same projections), no load-balancing term.

Switches are counted at the first adapted projection (layer 0): per token of each response, the
expert its gate chose; per step, the expert most of its response's tokens chose.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from repro.rl.finetune import Tuned
from repro.rl.policy import pack
from repro.studies.pamoe import checkpoint as ckpt
from repro.studies.pamoe.params import TokenMoEParams
from repro.studies.pamoe.usage import expert_usage, switches


class TokenRoutedLoRA(nn.Module):
    """``base`` (frozen nn.Linear) plus K LoRA experts, one per token by a top-1 gate:
    y = W x + p_top(x) * (alpha / r) * B_top A_top x.  x [..., in] -> y [..., out]."""

    def __init__(self, base: nn.Linear, p: TokenMoEParams) -> None:
        super().__init__()
        self.base = base
        k, r = p.experts, p.rank
        self.moe_gate = nn.Linear(base.in_features, k, bias=False)
        self.moe_A = nn.Parameter(torch.empty(k, r, base.in_features))
        self.moe_B = nn.Parameter(torch.zeros(k, base.out_features, r))  # B = 0: starts as the base
        for a in self.moe_A.data:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))                  # as peft's LoRA A
        self.scale = p.alpha / r
        self.drop = nn.Dropout(p.dropout)
        self.record = False
        self.choice: torch.Tensor | None = None                          # [...] top-1 per token, when recording

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        probs = torch.softmax(self.moe_gate(x).float(), -1)              # [..., K]
        top = probs.argmax(-1)                                           # [...]
        if self.record:
            self.choice = top.detach()
        flat = self.drop(x).reshape(-1, x.shape[-1])                    # [M, in]
        k = top.reshape(-1)                                              # [M]
        picked = flat.new_zeros((flat.shape[0], y.shape[-1]))
        for e in torch.unique(k).tolist():                               # each expert on its own tokens
            rows = torch.nonzero(k == e).squeeze(1)
            picked = picked.index_add(0, rows, (flat[rows] @ self.moe_A[e].T) @ self.moe_B[e].T)
        return y + (self.scale * probs.gather(-1, top[..., None])).to(y.dtype) * picked.reshape(*y.shape)


def add_token_experts(model: nn.Module, p: TokenMoEParams) -> list[TokenRoutedLoRA]:
    """Freeze ``model`` and replace each nn.Linear named by ``p.targets`` with a
    :class:`TokenRoutedLoRA`; returns them in module order."""
    for w in model.parameters():
        w.requires_grad_(False)
    wrapped = []
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in p.targets:
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            new = TokenRoutedLoRA(mod, p)
            setattr(parent, name.rsplit(".", 1)[-1], new)
            wrapped.append(new)
    if not wrapped:
        raise ValueError(f"token_moe: no nn.Linear named {p.targets} in {type(model).__name__}")
    return wrapped


def plain(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every :class:`TokenRoutedLoRA` replaced by its base projection."""
    out = copy.deepcopy(model)
    for name, mod in list(out.named_modules()):
        if isinstance(mod, TokenRoutedLoRA):
            parent = out.get_submodule(name.rsplit(".", 1)[0]) if "." in name else out
            setattr(parent, name.rsplit(".", 1)[-1], mod.base)
    return out


class TokenMoE(Tuned):
    """The token-routed experts (trained with the policy by the PPO update) and their switch counts."""

    def __init__(self, model, tok, params: TokenMoEParams) -> None:
        self.layers = add_token_experts(model, params)
        super().__init__(module=model, columns=("moe/switches_per_episode", "moe/token_switches_per_episode",
                                                "moe/max_expert_share"))
        self.tok, self.params = tok, params

    @torch.no_grad()
    def token_choices(self, ro) -> list[np.ndarray]:
        """Per step row, the expert the first adapted projection chose for each response token."""
        probe = self.layers[0]
        was = self.module.training
        self.module.eval()
        probe.record = True
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        out: list[np.ndarray] = []
        try:
            for lo in range(0, len(ro.prompt_ids), self.params.batch_rows):
                p, r = ro.prompt_ids[lo:lo + self.params.batch_rows], ro.response_ids[lo:lo + self.params.batch_rows]
                input_ids, attn, _, _, pos = pack(p, r, pad)
                dev = next(self.module.parameters()).device
                self.module.base_model(input_ids=input_ids.to(dev), attention_mask=attn.to(dev))
                picked = probe.choice.cpu().gather(1, pos)                  # the choice at the position predicting each token
                out.extend(picked[i, : len(r[i])].numpy() for i in range(len(r)))
        finally:
            probe.record, probe.choice = False, None
            self.module.train(was)
        return out

    def _metrics(self, ro) -> dict:
        tokens = self.token_choices(ro)
        traj = ro.batch.traj
        per_step = np.array([np.bincount(t, minlength=self.params.experts).argmax() if len(t) else -1
                             for t in tokens], dtype=np.int64)              # majority expert of each step
        token_ep = np.repeat(traj, [len(t) for t in tokens])
        token_switches = switches(np.concatenate(tokens) if tokens else np.zeros(0, np.int64), token_ep)
        rows_task = np.repeat(np.asarray(ro.task_types, dtype=object), ro.lengths)
        use = expert_usage(per_step, traj, self.params.experts, rows_task)
        return {**use, "token_switches_per_episode": float(token_switches.mean()) if len(token_switches) else 0.0}

    def after_update(self, ro, iteration: int) -> dict[str, float]:
        m = self._metrics(ro)
        return {"moe/switches_per_episode": m["switches_per_episode"],
                "moe/token_switches_per_episode": m["token_switches_per_episode"],
                "moe/max_expert_share": max(m["share"])}

    def usage(self, ro) -> dict:
        m = self._metrics(ro)
        return {"metrics": {"switches_per_episode": m["switches_per_episode"],
                            "token_switches_per_episode": m["token_switches_per_episode"],
                            "max_expert_share": max(m["share"])}, "experts": m}

    def save(self, out_dir: Path, **kwargs) -> None:
        ckpt.save(out_dir, plain(self.module), ckpt.adapter_state(self.module, "moe_"), kwargs)


def token_moe(model, tok, params: TokenMoEParams, checkpoint: Path | None = None) -> TokenMoE:
    """Token-routed LoRA experts around ``model`` (restored from ``checkpoint`` to evaluate)."""
    tuned = TokenMoE(model, tok, params)
    if checkpoint is not None:
        ckpt.load_adapters(checkpoint, tuned.module, "moe_")
    return tuned
