"""STRIP and SCALE-UP on a toy classifier with a planted backdoor (a white bottom-right pixel
forces class 0) and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from repro.studies.bdetclip.baselines import entropy, scaleup_score, strip_score


def toy_proba(images: np.ndarray) -> np.ndarray:
    """Class 1's probability rises with mean brightness; the trigger pixel forces 0.99 on class 0."""
    x = images.astype(np.float64)
    p1 = 1.0 / (1.0 + np.exp(-(x.mean(axis=(1, 2, 3)) - 60.0) / 10.0))
    p1 = np.where((images[:, -1, -1] == 255).all(-1), 0.01, p1)
    return np.stack([1 - p1, p1], 1)


def test_strip_gives_a_triggered_input_the_trigger_s_entropy():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 120, size=(50, 8, 8, 3), dtype=np.uint8)
    clean = np.full((1, 8, 8, 3), 20, np.uint8)
    triggered = clean.copy()
    triggered[:, -1, -1] = 255
    s_clean, s_bd = strip_score(np.concatenate([clean, triggered]), pool, toy_proba, n=16)
    # saturating blends keep the white pixel: every blend is class 0 at 0.99
    assert s_bd == pytest.approx(-entropy(np.array([0.99, 0.01])), rel=1e-9)
    assert s_bd > s_clean  # the clean image's blends spread over both classes
    with_half = strip_score(triggered, pool, toy_proba, n=16, weights=(0.5, 0.5))
    assert with_half[0] < s_bd  # half-weight blends dim the pixel: the trigger no longer holds


def test_scaleup_consistency_by_hand():
    clean = np.full((1, 8, 8, 3), 20, np.uint8)
    triggered = clean.copy()
    triggered[:, -1, -1] = 255
    got = scaleup_score(np.concatenate([clean, triggered]), toy_proba)
    # clean: brightness 20 -> class 0; x3 = 60 ties at 0.5 (argmax: class 0), x5..x11 -> class 1
    np.testing.assert_allclose(got, [1 / 5, 1.0])
