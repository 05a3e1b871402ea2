"""Time KPO's Kalman filter and loss at the paper's shape against a per-token loop.

The paper's run: responses up to 4,096 tokens (agentic-rl.md §4.5), Q = 1e-6, R = 1. For each
batch size the script times (1) the vectorised filter (``repro.studies.kpo.losses.kalman_filter``:
a parallel scan, cumulative sums over the batch with the gains shared by every row; the gains are
cached after their first use, timed both cold and cached), (2) the whole ``kpo`` loss forward + backward, and (3) a
reference that filters token by token with the Kalman recursion in a Python loop over positions
(vectorised over rows only, as a straightforward implementation would); it checks that the two
filters agree first. Responses are ragged (lengths uniform in [T/4, T]). Prints a markdown table;
``--out PATH`` also writes it.

    python scripts/bench_kpo.py [--batches 8 32] [--tokens 4096] [--out benchmarks/bench_kpo.md]
"""

from __future__ import annotations

import argparse
import platform

import torch
from bench_advantages import best_time  # scripts/ is on sys.path when run as a script

from repro.io import report
from repro.studies.kpo.losses import KPO, _gains, kalman_filter
from repro.studies.kpo.params import KPOParams


def loop_filter(z: torch.Tensor, mask: torch.Tensor, q: float, r: float) -> torch.Tensor:
    """The Kalman recursion one position at a time (x̂_0 = 0, P_0 = 0), rows in parallel."""
    x = torch.zeros(z.shape[0], dtype=torch.float64)
    p = 0.0
    out = torch.zeros_like(z, dtype=torch.float64)
    zz = (z * mask).to(torch.float64)
    for t in range(z.shape[1]):
        prior = p + q
        k = min(max(prior / (prior + r), 1e-6), 1 - 1e-6)
        x = (1 - k) * x + k * zz[:, t]
        p = (1 - k) * prior
        out[:, t] = x
    return (out * mask).to(z.dtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    q, r, T = 1e-6, 1.0, args.tokens
    params = KPOParams(kalman_q=q, kalman_r=r)
    rows = []
    for B in args.batches:
        lengths = torch.randint(T // 4, T + 1, (B,))
        mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
        logp = (torch.randn(B, T) * 0.5 - 1.0).requires_grad_()
        old = logp.detach() + torch.randn(B, T) * 0.05
        adv = torch.randn(B)
        z = (logp.detach() - old) * mask
        ref = loop_filter(z, mask, q, r)
        fast = kalman_filter(z, mask, q, r)
        err = float((ref - fast).abs().max())
        assert err < 1e-6, f"filters disagree by {err}"
        _gains.cache_clear()
        t_cold = best_time(lambda: (_gains.cache_clear(), kalman_filter(z, mask, q, r)), 1)
        t_fast = best_time(lambda: kalman_filter(z, mask, q, r), 3)
        t_loop = best_time(lambda: loop_filter(z, mask, q, r), 1)

        def loss_step():
            logp.grad = None
            loss, _ = KPO(logp, old, None, None, adv, mask, params)
            loss.backward()

        t_loss = best_time(loss_step, 3)
        rows.append((B, T, t_loop, t_cold, t_fast, t_loss, err))
    lines = [f"# KPO filter and loss, {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} torch threads, torch {torch.__version__}", "",
             "| rows x tokens | loop filter s | vectorised, cold s | vectorised, cached s | speed-up (cached) | "
             "kpo loss fwd+bwd s | max abs diff |",
             "|---|---|---|---|---|---|---|"]
    for B, T, tl, tc, tf, tloss, err in rows:
        lines.append(f"| {B} x {T} | {tl:.3f} | {tc:.3f} | {tf:.4f} | {tl / tf:.0f}x | {tloss:.4f} | {err:.1e} |")
    report(lines, args.out)


if __name__ == "__main__":
    main()
