"""PTA's attack and the detector it must evade (other-papers.md §6.4, reconstruction [I]).

Targeted PGD on the image (L_inf ball of radius ``eps`` in [0, 1] pixel units) maximising

    (1/|P_T|) sum_{p in P_T} cos(E(x + delta), p) + alpha (1/|P_S|) sum_{q in P_S} cos(E(x + delta), q),

P_T the target-modal proxies (embeddings of texts related to the target), P_S the source-modal
proxies (embeddings of real images, keeping the example on the image manifold). The baselines
are the same call: Adversarial Illusions = one exact target, alpha = 0; its multi-target variant
= P_T, alpha = 0. The detector flags an embedding whose distance to its k-th nearest clean
reference embedding exceeds beta (a quantile of the clean references' own k-dists); ASRD counts
the successes it does not flag.

``encode``: float images N x H x W x 3 in [0, 1] -> embeddings N x d (differentiable).
"""

from __future__ import annotations

from typing import Callable

import torch


def proxy_objective(emb: torch.Tensor, targets: torch.Tensor, sources: torch.Tensor | None,
                    alpha: float) -> torch.Tensor:
    """Per example: mean cosine to the target proxies (T x d) + alpha x mean cosine to the source
    proxies (S x d); N x d -> N."""
    e = torch.nn.functional.normalize(emb, dim=-1)
    out = (e @ torch.nn.functional.normalize(targets, dim=-1).T).mean(-1)
    if sources is not None and alpha:
        out = out + alpha * (e @ torch.nn.functional.normalize(sources, dim=-1).T).mean(-1)
    return out


def pgd(encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, objective, *, eps: float,
        steps: int, step_size: float, random_start: bool = True, seed: int = 0) -> torch.Tensor:
    """Sign-gradient ascent of ``objective(encode(x))`` (N -> summed) inside the eps-ball around
    ``images`` (N x H x W x 3 in [0, 1]) and the [0, 1] box; returns the adversarial images."""
    x0 = images.detach()
    g = torch.Generator().manual_seed(seed)
    # the random start is drawn on the CPU: the same draw on every device
    delta = ((torch.rand(x0.shape, generator=g) * 2 - 1) * eps).to(x0.device) if random_start else torch.zeros_like(x0)
    delta = (x0 + delta).clamp(0, 1) - x0
    for _ in range(steps):
        delta.requires_grad_(True)
        score = objective(encode(x0 + delta)).sum()
        (grad,) = torch.autograd.grad(score, delta)
        with torch.no_grad():
            delta = (delta + step_size * grad.sign()).clamp(-eps, eps)
            delta = (x0 + delta).clamp(0, 1) - x0
    return (x0 + delta).detach()


def k_dist(queries: torch.Tensor, reference: torch.Tensor, k: int, exclude_self: bool = False) -> torch.Tensor:
    """L2 distance of each normalised query to its k-th nearest normalised reference (N)."""
    q = torch.nn.functional.normalize(queries, dim=-1)
    r = torch.nn.functional.normalize(reference, dim=-1)
    d = torch.cdist(q, r)
    return d.topk(k + int(exclude_self), largest=False).values[:, -1]


def detector_threshold(reference: torch.Tensor, k: int, quantile: float = 0.95) -> float:
    """beta: the ``quantile`` of the clean references' k-dists to the others ([I]: 95th)."""
    return float(torch.quantile(k_dist(reference, reference, k, exclude_self=True), quantile))
