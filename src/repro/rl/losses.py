"""Policy losses (``registry.POLICY_LOSSES``, named by ``train.policy_loss``) and their pieces.

``ppo_clip`` follows verl's ``compute_policy_loss`` / ``kl_penalty("low_var_kl")`` / ``agg_loss``
(reference: agentic-rl.md §4.2): dual-clip with c = 3 for negative advantages,
loss = pg − entropy_coeff·H + kl_coef·KL, aggregated over tokens as ``loss_agg_mode`` says.
Other losses (e.g. KPO's filtered ratio, GSPO's sequence ratio) register beside it, each with its
own typed params (``train.policy_loss_params``).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from repro.rl.config import AGG_MODES, PPOClipParams


class PolicyLoss(Protocol):
    """A registered policy loss; its params dataclass is given as ``params=`` at registration."""

    def uses_reference(self, params: Any) -> bool:
        """Whether the loss reads the reference policy's log-probs (the trainer then computes them)."""

    def agg_mode(self, params: Any) -> str:
        """How the loss aggregates tokens (``AGG_MODES``): micro-batches are weighted accordingly."""

    def __call__(self, logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor,
                 entropy: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, params: Any
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, parts for logging) of one micro-batch. [B, T] tensors; ``adv`` [B] or [B, T]."""


def agg_loss(x: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Aggregate per-token values x [B, T] over the valid tokens (mask [B, T]) as ``mode``."""
    if mode == "token-mean":
        return masked_mean(x, mask)
    seq = (x * mask).sum(-1)  # [B]
    if mode == "seq-mean-token-mean":
        seq = seq / mask.sum(-1).clamp_min(1.0)
    elif mode != "seq-mean-token-sum":
        raise ValueError(f"loss_agg_mode {mode!r}; allowed: {', '.join(AGG_MODES)}")
    return seq.mean()


def agg_units(mask: torch.Tensor, mode: str) -> float:
    """What ``agg_loss`` averages over in ``mask`` [B, T]: its tokens (token-mean) or its rows;
    a micro-batch's loss is weighted by its share of the mini-batch's units (``batch_units``)."""
    return batch_units(float(mask.sum()), mask.shape[0], mode)


def batch_units(n_tokens: float, n_rows: int, mode: str) -> float:
    """The units ``agg_loss`` averages over in a batch of ``n_tokens`` valid tokens in ``n_rows`` rows."""
    return float(n_tokens) if mode == "token-mean" else float(n_rows)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean over all valid tokens of the mini-batch. x, mask: [B, T]."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                  clip: float = 0.2, clip_c: float = 3.0, agg: str = "token-mean"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO-clip (with dual clip) policy-gradient loss (aggregated as ``agg``) and clip fraction
    (token-mean, as verl's ``pg_clipfrac``).

    logp, old_logp, mask: [B, T] per response token; adv: [B] per step row (broadcast over its
    tokens) or [B, T] per token (GAE).
    """
    a = adv[:, None].expand_as(logp) if adv.dim() == 1 else adv
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    l1, l2 = -a * ratio, -a * ratio.clamp(1.0 - clip, 1.0 + clip)
    clipped = torch.maximum(l1, l2)
    dual = torch.minimum(clipped, -a * clip_c)
    loss = torch.where(a < 0, dual, clipped)
    clipfrac = masked_mean((l2 > l1).float(), mask)
    return agg_loss(loss, mask, agg), clipfrac


def value_loss(vpred: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss and its clip fraction (verl ``compute_value_loss``, token-mean). [B, T].

    0.5 * max((V - R)^2, (clip(V, V_old ± clip) - R)^2), V_old the values the advantages used.
    V is clamped into [V_old - clip, V_old + clip] itself (verl's ``clip_by_value``), so an
    unclipped value is V bit for bit and never counts as clipped: ``V_old + clamp(V - V_old)``
    differs from V by rounding, which made the clip fraction flip with the CPU's kernels.
    """
    clipped = torch.clamp(vpred, old_values - clip, old_values + clip)
    l1, l2 = (vpred - returns) ** 2, (clipped - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(l1, l2), mask), masked_mean((l2 > l1).float(), mask)


def low_var_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(π‖π_ref) per token, clamped to [-10, 10] as in verl. Shapes [B, T]."""
    d = (ref_logp - logp).clamp(-20.0, 20.0)
    return (torch.exp(d) - d - 1.0).clamp(-10.0, 10.0)


def token_logprobs_and_entropy(logits: torch.Tensor, targets: torch.Tensor,
                               allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token and the entropy of each distribution. logits [B,T,V] → [B,T].

    ``allowed`` (bool [B, T, V], optional): the distribution is renormalised over these tokens,
    as a sampler that masks the others draws from (a masked logit takes the dtype's lowest value:
    its probability is exactly 0 and the entropy stays finite).
    """
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    logz = torch.logsumexp(logits, dim=-1)
    logp = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1) - logz
    p = torch.softmax(logits, dim=-1)
    entropy = logz - (p * logits).sum(-1)
    return logp, entropy


class PPOClip:
    """``ppo_clip``: PPO-clip + low-variance KL to the reference + entropy bonus (verl's actor loss)."""

    def uses_reference(self, params: PPOClipParams) -> bool:
        return params.kl_coef > 0

    def agg_mode(self, params: PPOClipParams) -> str:
        return params.loss_agg_mode

    def __call__(self, logp, old_logp, ref_logp, entropy, adv, mask, params: PPOClipParams
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        mode = params.loss_agg_mode
        pg, clipfrac = ppo_clip_loss(logp, old_logp, adv, mask, params.clip_ratio, params.clip_ratio_c, mode)
        ent = agg_loss(entropy, mask, mode)
        kl = agg_loss(low_var_kl(logp, ref_logp), mask, mode) if params.kl_coef > 0 else torch.zeros(())
        loss = pg - params.entropy_coeff * ent + params.kl_coef * kl
        return loss, {"policy_loss": pg.item(), "entropy": ent.item(), "kl": kl.item(),
                      "clipfrac": clipfrac.item()}


PPO_CLIP = PPOClip()  # registered lazily as "ppo_clip" by repro.rl.plugin (this module imports torch)
