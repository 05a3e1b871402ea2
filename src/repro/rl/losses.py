"""Policy loss: PPO-clip with token-mean aggregation, low-variance KL to the reference, entropy.

Semantics follow verl's ``compute_policy_loss`` / ``kl_penalty("low_var_kl")`` /
``agg_loss("token-mean")`` (reference: agentic-rl.md §4.2): dual-clip with c = 3 for negative
advantages, loss = pg − entropy_coeff·H + kl_coef·KL. Variants register here later (e.g. KPO).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean over all valid tokens of the mini-batch. x, mask: [B, T]."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                  clip: float = 0.2, clip_c: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO-clip (with dual clip) policy-gradient loss and clip fraction.

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
    return masked_mean(loss, mask), clipfrac


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


def policy_loss(logp, old_logp, ref_logp, entropy, adv, mask, *, clip: float, clip_c: float,
                kl_coef: float, entropy_coeff: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Total actor loss and its parts (for logging)."""
    pg, clipfrac = ppo_clip_loss(logp, old_logp, adv, mask, clip, clip_c)
    ent = masked_mean(entropy, mask)
    kl = masked_mean(low_var_kl(logp, ref_logp), mask) if kl_coef > 0 else torch.zeros(())
    loss = pg - entropy_coeff * ent + kl_coef * kl
    return loss, {"policy_loss": pg.item(), "entropy": ent.item(), "kl": kl.item(),
                  "clipfrac": clipfrac.item()}
