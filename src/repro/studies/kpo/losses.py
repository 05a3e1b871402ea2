"""KPO's Kalman-filtered importance ratio and the GSPO baseline, as policy losses
(``registry.POLICY_LOSSES`` ``kpo`` and ``gspo``; reference: agentic-rl.md §3.7.2, code-exact).

KPO, per response (tokens t = 1..T, padding excluded):

- observation z_t = log π_θ(y_t) − log π_old(y_t), detached;
- a causal scalar Kalman filter of the random walk x_t = x_{t−1} + w (Var Q) observed as
  z_t = x_t + v (Var R), started at x̂_0 = 0, P_0 = 0: x̂_t = (1 − K_t) x̂_{t−1} + K_t z_t with the
  data-independent gains K_t (:func:`kalman_gains`, shared by every row);
- the straight-through ratio r̃_t = exp(log π_θ − sg[log π_θ] + sg[x̂_t]): value exp(x̂_t), gradient
  exp(x̂_t) ∇log π_θ(y_t);
- clipped: −min(r̃ A, clip(r̃, 1 − ε_low, 1 + ε_high) A) with ε_low 3e-4, ε_high 4e-4; unclipped:
  −r̃ A; aggregated ``seq-mean-token-mean``.

GSPO (Zheng et al. 2025, as verl's ``compute_policy_loss_gspo``): the same straight-through ratio with
sg[x̂_t] replaced by the sequence's mean log-ratio, clipped at the same band.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from repro.rl.losses import agg_loss, masked_mean
from repro.studies.kpo.params import GSPOParams, KPOParams

LOG_CLAMP = 10.0  # the log of a straight-through ratio is clamped above at 10 (verl-kpo, GSPO)


# --- the filter -----------------------------------------------------------------------------------


def kalman_gains(q: float, r: float, T: int, p0: float = 0.0) -> np.ndarray:
    """Gains K_1..K_T (float64 [T]) of the scalar random-walk filter, in closed form.

    With k_t = P_t / R the recursion is the Möbius map k_t = (k_{t−1} + q')/(k_{t−1} + q' + 1),
    q' = Q/R, k_0 = P_0/R; its matrix [[1, q'], [1, q'+1]] has determinant 1, so its t-th power is
    U_{t−1}(s)·M − U_{t−2}(s)·I (Chebyshev U, s = 1 + q'/2) and, with ρ_t = U_{t−2}/U_{t−1} =
    sinh((t−1)η)/sinh(tη), cosh η = s:  K_t = ((1 − ρ_t) k_0 + q') / (k_0 + q' + 1 − ρ_t).
    ρ_t is evaluated as e^{−η}·expm1(−2(t−1)η)/expm1(−2tη), which stays finite for any T (the
    sinh form overflows float32 once tη > 88). Clamped to [1e-6, 1 − 1e-6] as verl-kpo.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    qr, k0 = float(q) / float(r), float(p0) / float(r)
    t = np.arange(1, T + 1, dtype=np.float64)
    eta = np.arccosh(1.0 + 0.5 * qr)
    if eta < 1e-12:  # q' -> 0: U_n(1) = n + 1
        rho = (t - 1.0) / t
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.exp(-eta) * np.expm1(-2.0 * (t - 1.0) * eta) / np.expm1(-2.0 * t * eta)
        rho[0] = 0.0
    k = ((1.0 - rho) * k0 + qr) / (k0 + qr + 1.0 - rho)
    return np.clip(k, 1e-6, 1.0 - 1e-6)


#: the largest exponent a chunk of the scan may reach (exp(60) ~ 1e26: far from float64's limits)
MAX_EXPONENT = 60.0


@functools.lru_cache(maxsize=32)
def _gains(q: float, r: float, T: int) -> tuple[torch.Tensor, int]:
    """(K [T] float64, chunk length): gains and the longest stretch over which Σ −log(1 − K_j)
    stays within ``MAX_EXPONENT``."""
    k = kalman_gains(q, r, T)
    chunk = max(1, int(MAX_EXPONENT // float(-np.log1p(-k.max()))))
    return torch.from_numpy(k), chunk


def kalman_filter(z: torch.Tensor, mask: torch.Tensor, q: float, r: float) -> torch.Tensor:
    """Filtered log-ratios x̂ [B, T] of observations z [B, T] (padding, mask 0, zeroed first and
    in the output). Causal: x̂_t reads z_1..z_t only, so right padding changes nothing before it.

    A parallel scan over tokens, no loop over positions: with L_t = Σ_{j≤t} log(1 − K_j),
    x̂_t = e^{L_t} (x̂_0 + Σ_{s≤t} K_s z_s e^{−L_s}) (two cumulative sums over the batch). The
    exponents grow with t, so the sum restarts every ``chunk`` tokens from the previous chunk's
    last estimate (one chunk for the paper's Q/R over 4,096 tokens; ~100 tokens at Q/R = 0.3):
    every exponent stays below ``MAX_EXPONENT``, in float64, where verl-kpo clamps at 80 in
    float32. The gains are shared by every row."""
    if z.shape != mask.shape or z.dim() != 2:
        raise ValueError(f"kalman_filter: z {tuple(z.shape)} and mask {tuple(mask.shape)} must be equal [B, T]")
    k, chunk = _gains(float(q), float(r), int(z.shape[1]))
    k = k.to(z.device)
    m = mask.to(torch.float64)
    zz = z.to(torch.float64) * m
    out = torch.empty_like(zz)
    prev = torch.zeros(zz.shape[0], dtype=torch.float64, device=z.device)
    for lo in range(0, zz.shape[1], chunk):
        hi = min(lo + chunk, zz.shape[1])
        cum = torch.cumsum(torch.log1p(-k[lo:hi]), 0)
        out[:, lo:hi] = torch.exp(cum) * (prev[:, None] + torch.cumsum(zz[:, lo:hi] * (k[lo:hi] * torch.exp(-cum)), 1))
        prev = out[:, hi - 1]
    return (out * m).to(z.dtype)


def sign_switch_rate(x: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    """(share of adjacent valid token pairs whose values have opposite signs, number of pairs
    counted). Pairs with a zero are not counted; with none left (the on-policy first update, where
    z ≡ 0) the share is NaN, which the trainer's per-iteration mean skips."""
    pair = (mask[:, 1:] > 0) & (mask[:, :-1] > 0) & (x[:, 1:] != 0) & (x[:, :-1] != 0)
    n = int(pair.sum())
    flips = ((x[:, 1:] > 0) != (x[:, :-1] > 0)) & pair
    return (float(flips.sum()) / n if n else float("nan")), n


# --- losses ---------------------------------------------------------------------------------------


def straight_through_loss(logp: torch.Tensor, log_value: torch.Tensor, adv: torch.Tensor,
                          mask: torch.Tensor, params: GSPOParams, clip: bool = True
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, clip fraction, ratio values) of the ratio exp(logp − sg[logp] + sg[log_value]) [B, T]
    against advantages ``adv`` ([B] per row or [B, T]), clipped to [1 − ε_low, 1 + ε_high] or not."""
    a = adv[:, None].expand_as(logp) if adv.dim() == 1 else adv
    ratio = torch.exp(torch.clamp(logp - logp.detach() + log_value.detach(), max=LOG_CLAMP))
    l1 = -a * ratio
    if clip:
        l2 = -a * torch.clamp(ratio, 1.0 - params.clip_ratio_low, 1.0 + params.clip_ratio_high)
        losses, clipfrac = torch.maximum(l1, l2), masked_mean((l2 > l1).float(), mask)
    else:
        losses, clipfrac = l1, torch.zeros(())
    return agg_loss(losses, mask, params.loss_agg_mode), clipfrac, ratio.detach()


class GSPOLoss:
    """``gspo``: token-level GSPO, the sequence's mean log-ratio as every token's ratio value."""

    def uses_reference(self, params: GSPOParams) -> bool:
        return False

    def agg_mode(self, params: GSPOParams) -> str:
        return params.loss_agg_mode

    def __call__(self, logp, old_logp, ref_logp, entropy, adv, mask, params: GSPOParams):
        z = (logp - old_logp) * mask
        seq = z.sum(-1) / mask.sum(-1).clamp_min(1.0)
        loss, clipfrac, _ = straight_through_loss(logp, seq[:, None].expand_as(logp), adv, mask, params)
        return loss, {"policy_loss": loss.item(), "clipfrac": clipfrac.item()}


class KPOLoss:
    """``kpo``: the Kalman-filtered token ratio; logs the sign-switch rate of the local off-policy
    deviation before (z) and after (x̂) filtering and the mean |x̂| (the filter's shrinkage)."""

    def uses_reference(self, params: KPOParams) -> bool:
        return False

    def agg_mode(self, params: KPOParams) -> str:
        return params.loss_agg_mode

    def __call__(self, logp, old_logp, ref_logp, entropy, adv, mask, params: KPOParams):
        z = (logp - old_logp).detach() * mask
        xhat = kalman_filter(z, mask, params.kalman_q, params.kalman_r)
        loss, clipfrac, _ = straight_through_loss(logp, xhat, adv, mask, params, clip=params.clip)
        raw, _ = sign_switch_rate(z, mask)
        filtered, _ = sign_switch_rate(xhat, mask)
        return loss, {"policy_loss": loss.item(), "clipfrac": clipfrac.item(),
                      "sign_switch_raw": raw, "sign_switch_filtered": filtered,
                      "filtered_abs_mean": masked_mean(xhat.abs(), mask).item()}


GSPO = GSPOLoss()  # registered lazily as "gspo" by the KPO plugin (this module imports torch)
KPO = KPOLoss()    # registered lazily as "kpo"
