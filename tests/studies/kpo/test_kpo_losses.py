"""KPO's filter and losses against direct computations (agentic-rl.md §3.7.2): the closed-form gains
equal the Kalman recursion, the vectorised filter equals a loop over tokens on ragged batches, the
straight-through ratio has value exp(x̂) and gradient exp(x̂)·∇log π, GSPO's ratio is the sequence
mean, and the clipped objectives equal their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro.config import ConfigError, check_dataclass
from repro.studies.kpo.losses import GSPO, KPO, kalman_filter, kalman_gains, sign_switch_rate, straight_through_loss
from repro.studies.kpo.params import GSPOParams, KPOParams


def gains_loop(q: float, r: float, T: int, p0: float = 0.0) -> np.ndarray:
    """P_{t|t-1} = P + Q; K = P_{t|t-1} / (P_{t|t-1} + R); P = (1 - K) P_{t|t-1}."""
    p, out = p0, []
    for _ in range(T):
        prior = p + q
        k = prior / (prior + r)
        p = (1 - k) * prior
        out.append(k)
    return np.clip(np.array(out), 1e-6, 1 - 1e-6)


def filter_loop(z: np.ndarray, mask: np.ndarray, q: float, r: float) -> np.ndarray:
    out = np.zeros_like(z)
    for b in range(z.shape[0]):
        x, p = 0.0, 0.0
        for t in range(z.shape[1]):
            prior = p + q
            k = min(max(prior / (prior + r), 1e-6), 1 - 1e-6)
            x = (1 - k) * x + k * (z[b, t] * mask[b, t])
            p = (1 - k) * prior
            out[b, t] = x * mask[b, t]
    return out


@pytest.mark.parametrize("q,r,T", [(1e-6, 1.0, 4096), (7.3e-3, 1.0, 48), (0.5, 2.0, 300), (3.0, 0.5, 20),
                                   (1e-13, 1.0, 10)])
def test_closed_form_gains_equal_the_recursion(q, r, T):
    np.testing.assert_allclose(kalman_gains(q, r, T), gains_loop(q, r, T), rtol=1e-9, atol=1e-15)


def test_gains_with_a_prior_variance_and_the_steady_state():
    np.testing.assert_allclose(kalman_gains(0.01, 1.0, 50, p0=0.7), gains_loop(0.01, 1.0, 50, p0=0.7), rtol=1e-9)
    q = 1e-2  # K -> (-q + sqrt(q^2 + 4q)) / 2, the fixed point of the Möbius map
    assert kalman_gains(q, 1.0, 5000)[-1] == pytest.approx((-q + math.sqrt(q * q + 4 * q)) / 2, rel=1e-9)
    # the paper's defaults (§3.7.2): K_1 ~ 1e-6, K_100 ~ 1e-4, K_1000 ~ 7.6e-4
    k = kalman_gains(1e-6, 1.0, 1000)
    assert k[0] == pytest.approx(1e-6, rel=1e-3) and k[99] == pytest.approx(1e-4, rel=0.01)
    assert k[999] == pytest.approx(7.6e-4, rel=0.01)


def test_large_gains_over_long_responses_stay_finite():
    k = kalman_gains(0.3, 1.0, 20000)  # sinh(t * eta) would overflow float32 and float64 here
    assert np.isfinite(k).all() and k.min() > 0


@pytest.mark.parametrize("q,r,T", [(7.3e-3, 1.0, 30), (0.2, 1.0, 30), (1e-6, 1.0, 30),
                                   (3.0, 1.0, 300)])  # the last restarts its scan every ~38 tokens
def test_vectorised_filter_equals_the_loop_on_ragged_rows(q, r, T):
    rng = np.random.default_rng(0)
    lengths = [1, 7, T, T, 12]
    z = rng.normal(0, 0.3, size=(5, T))
    mask = (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype(float)
    got = kalman_filter(torch.tensor(z), torch.tensor(mask), q, r).numpy()
    np.testing.assert_allclose(got, filter_loop(z, mask, q, r), rtol=1e-10, atol=1e-14)
    got32 = kalman_filter(torch.tensor(z, dtype=torch.float32), torch.tensor(mask, dtype=torch.float32), q, r)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), filter_loop(z, mask, q, r), rtol=1e-5, atol=1e-7)


def test_filter_is_causal_and_ignores_padding():
    z = torch.randn(2, 12, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.float64)
    mask[1, 8:] = 0
    base = kalman_filter(z, mask, 0.05, 1.0)
    z2 = z.clone()
    z2[0, 6] += 5.0      # a later token moves only what follows it
    z2[1, 9] += 5.0      # padding moves nothing
    moved = kalman_filter(z2, mask, 0.05, 1.0)
    assert torch.equal(moved[0, :6], base[0, :6]) and not torch.equal(moved[0, 6:], base[0, 6:])
    assert torch.equal(moved[1], base[1]) and (moved[1, 8:] == 0).all()


def test_straight_through_ratio_value_and_gradient():
    torch.manual_seed(0)
    logp = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    xhat = torch.randn(3, 6, dtype=torch.float64) * 0.1
    mask = torch.ones(3, 6, dtype=torch.float64)
    params = KPOParams(loss_agg_mode="token-mean")
    adv = -torch.ones(3, dtype=torch.float64)  # unclipped loss = mean(r): d/dlogp = r / n
    loss, _, ratio = straight_through_loss(logp, xhat, adv, mask, params, clip=False)
    torch.testing.assert_close(ratio, torch.exp(xhat))
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.exp(xhat) / mask.sum())


def test_kpo_clipped_loss_equals_its_formula():
    torch.manual_seed(1)
    logp = torch.randn(4, 5, dtype=torch.float64) * 0.01
    old = logp + torch.randn(4, 5, dtype=torch.float64) * 0.05
    mask = torch.ones(4, 5, dtype=torch.float64)
    mask[2, 3:] = 0
    adv = torch.tensor([1.0, -1.0, 0.5, -2.0], dtype=torch.float64)
    p = KPOParams(kalman_q=0.3, kalman_r=1.0)
    loss, parts = KPO(logp, old, None, None, adv, mask, p)
    xhat = torch.tensor(filter_loop(((logp - old) * mask).numpy(), mask.numpy(), 0.3, 1.0))
    r = torch.exp(xhat)
    a = adv[:, None]
    per = torch.maximum(-a * r, -a * r.clamp(1 - 3e-4, 1 + 4e-4))
    want = ((per * mask).sum(-1) / mask.sum(-1)).mean()  # seq-mean-token-mean
    assert loss.item() == pytest.approx(want.item(), rel=1e-9)
    assert 0 <= parts["clipfrac"] <= 1 and parts["filtered_abs_mean"] > 0


def test_paper_noise_leaves_a_short_response_ratio_at_one():
    z = torch.full((2, 48), 0.5, dtype=torch.float64)  # a large, consistent deviation
    xhat = kalman_filter(z, torch.ones_like(z), 1e-6, 1.0)
    assert xhat.abs().max() < 1e-3   # §3.7.2: total observation weight ~0.005 at t = 100
    xhat = kalman_filter(z, torch.ones_like(z), 7.3e-3, 1.0)
    assert 0.4 < float(xhat[0, -1]) < 0.5  # the embedded Q tracks it by the end of the response


def test_gspo_ratio_is_the_sequence_mean():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.2, 0.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.1, -1.8, -0.5], [-0.3, -0.5, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    p = GSPOParams(clip_ratio_low=0.2, clip_ratio_high=0.2)
    loss, _ = GSPO(logp, old, None, None, adv, mask, p)
    s0 = math.exp((0.1 - 0.2 + 0.0) / 3)   # row 0: mean of (logp - old) over 3 tokens
    s1 = math.exp((0.0 + 0.3) / 2)         # row 1: over its 2 valid tokens
    row0 = -1.0 * min(s0, min(max(s0, 0.8), 1.2))
    row1 = max(1.0 * s1, 1.0 * min(max(s1, 0.8), 1.2))  # -A r with A = -1: max(r, clip(r))
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


def test_sign_switch_rate_by_hand():
    x = torch.tensor([[0.1, -0.2, -0.1, 0.3, 0.0], [0.2, 0.2, -0.1, 0.5, 0.4]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.float32)
    rate, n = sign_switch_rate(x, mask)
    # row 0 pairs: (+,-) flip, (-,-) no, (-,+) flip, (+,0) skipped; row 1: (+,+) no, (+,-) flip
    assert n == 5 and rate == pytest.approx(3 / 5)
    rate0, n0 = sign_switch_rate(torch.zeros(2, 4), torch.ones(2, 4))
    assert n0 == 0 and math.isnan(rate0)


def test_params_refuse_bad_values_naming_the_key():
    with pytest.raises(ConfigError, match="kalman_q"):
        check_dataclass(KPOParams, {"kalman_q": 0.0}, "kpo.yaml: methods.kpo")
    with pytest.raises(ConfigError, match="loss_agg_mode"):
        check_dataclass(GSPOParams, {"loss_agg_mode": "sum"}, "kpo.yaml: methods.gspo")
