"""PTA's PGD stays inside its eps-ball and the pixel box and raises its objective; the proxy
objective by hand; the k-dist detector flags planted outliers."""

from __future__ import annotations

import pytest
import torch

from repro.studies.pta.attack import detector_threshold, k_dist, pgd, proxy_objective


def test_proxy_objective_by_hand():
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    sources = torch.tensor([[0.0, 1.0]])
    got = proxy_objective(emb, targets, sources, alpha=0.5)
    s = 2 ** -0.5
    torch.testing.assert_close(got, torch.tensor([(1 + s) / 2 + 0.0, (0 + s) / 2 + 0.5]))
    torch.testing.assert_close(proxy_objective(emb, targets, None, alpha=0.5), torch.tensor([(1 + s) / 2, s / 2]))


def test_pgd_stays_in_the_ball_and_climbs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 16))
    encode = net
    x = torch.rand(5, 8, 8, 3)
    target = torch.randn(1, 16)
    obj = lambda e: proxy_objective(e, target, None, 0.0)  # noqa: E731
    adv = pgd(encode, x, obj, eps=8 / 255, steps=10, step_size=2 / 255)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-7 and adv.min() >= 0 and adv.max() <= 1
    assert (obj(encode(adv)) > obj(encode(x))).all()


def test_k_dist_detector_flags_planted_outliers():
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([1.0, 0.0, 0.0, 0.0])
    clean = centre + 0.05 * torch.randn(200, 4, generator=g)
    beta = detector_threshold(clean, k=10)
    inliers = centre + 0.05 * torch.randn(20, 4, generator=g)
    outliers = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
    assert (k_dist(outliers, clean, 10) > beta).all()
    assert (k_dist(inliers, clean, 10) <= beta).float().mean() >= 0.8
    # exclude_self drops the zero distance of a reference to itself
    assert k_dist(clean[:3], clean, 1, exclude_self=True).min() > 0
    with pytest.raises(RuntimeError):
        k_dist(clean[:1], clean[:2], 5)
