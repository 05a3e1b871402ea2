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


def test_corruptions_keep_shape_and_contrast_and_brightness_act_as_written():
    from repro.studies.bdetclip.baselines import CORRUPTIONS, corrupt

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    for kind in CORRUPTIONS:
        for severity in (1, 5):
            y = corrupt(x, kind, severity)
            assert y.shape == x.shape and y.dtype == np.uint8, kind
    stds = [corrupt(x, "contrast", s).astype(float).std() for s in range(1, 6)]
    assert stds == sorted(stds, reverse=True)  # each severity pulls harder toward the mean
    flat = np.full((1, 4, 4, 3), 50, np.uint8)
    assert (corrupt(flat, "brightness", 5) == round(50 + 0.3 * 255)).all()
    with pytest.raises(ValueError, match="allowed: gaussian_noise"):
        corrupt(x, "fog", 1)


def test_teco_flip_points_by_hand():
    from repro.studies.bdetclip.baselines import teco_score

    def bright(images):  # class 1 when the mean brightness passes 60
        p1 = (images.astype(float).mean(axis=(1, 2, 3)) > 60).astype(float)
        return np.stack([1 - p1, p1], 1)

    flat = np.full((1, 32, 32, 3), 50, np.uint8)
    # only brightness moves a flat image's mean past 60 (+12.75 at severity 1): flip points
    # 6, 6, 6, 6, 6, 1, 6, 6 over the eight kinds; impulse noise at 0.07 moves it to ~55 only
    expected = np.std([6, 6, 6, 6, 6, 1, 6, 6])
    np.testing.assert_allclose(teco_score(flat, bright), [expected])
