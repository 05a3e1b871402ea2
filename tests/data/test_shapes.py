"""The generated shapes data (image-caption pairs for the tiny CLIP) and the backdoor triggers."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data import shapes
from repro.data.triggers import apply_trigger, badnets, blended, wanet
from repro.registry import DATASETS

SMALL = {"seed": 3, "train": 40, "shots": 2, "reference": 10, "test": 16}


def test_build_writes_every_split_deterministically(tmp_path):
    DATASETS.get("shapes/embedded")(tmp_path / "a", SMALL)
    DATASETS.get("shapes/embedded")(tmp_path / "b", SMALL)
    for split, n in {"train": 40, "fewshot": 16, "reference": 10, "test": 16}.items():
        images, labels, records = shapes.load_split(tmp_path / "a", split)
        again, _, _ = shapes.load_split(tmp_path / "b", split)
        assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8 and len(records) == n
        np.testing.assert_array_equal(images, again)
        assert labels.tolist() == [r["label"] for r in records]
        for r in records:  # the caption names the shape and only attributes the image has
            assert r["shape"] == shapes.SHAPES[r["label"]] and r["shape"] in r["caption"]
            for key, names in (("colour", shapes.COLOURS), ("size", shapes.SIZES), ("position", shapes.POSITIONS)):
                assert not any(name in r["caption"].split() for name in names if name != r[key])
    _, labels, _ = shapes.load_split(tmp_path / "a", "fewshot")
    assert np.bincount(labels).tolist() == [2] * len(shapes.SHAPES)  # shots per class
    with pytest.raises(FileNotFoundError, match="splits there: fewshot, reference, test, train"):
        shapes.load_split(tmp_path / "a", "valid")


def test_shapes_differ_where_drawn():
    rng = np.random.default_rng(0)
    a = shapes.draw("circle", "red", "large", "center", rng, 32).astype(int)
    assert a[16, 16, 0] > 150 and a[16, 16, 1] < 100  # a red centre
    assert a[2, 2].max() < 80                         # the dark background
    ring = shapes.draw("ring", "red", "large", "center", np.random.default_rng(0), 32).astype(int)
    assert ring[16, 16, 0] < 100                      # a ring is hollow
    left = shapes.draw("square", "blue", "small", "left", np.random.default_rng(0), 32).astype(int)
    assert left[:, :14, 2].sum() > left[:, 18:, 2].sum()
    with pytest.raises(ValueError, match="unknown params"):
        shapes.generate({"trian": 5})


def test_badnets_pastes_one_fixed_patch():
    x = np.zeros((3, 8, 8, 3), np.uint8)
    y = badnets(x, size=2, corner="bottom_right", seed=1)
    assert (y[:, :6] == 0).all() and (y[:, :, :6] == 0).all() and (x == 0).all()  # a copy, one corner
    assert (y[0, 6:, 6:] == y[2, 6:, 6:]).all() and y[0, 6:, 6:].any()           # the same patch everywhere
    np.testing.assert_array_equal(badnets(x, size=2, seed=1), y)
    assert (badnets(x, size=2, corner="top_left", seed=1)[:, :2, :2] == y[:, 6:, 6:]).all()
    with pytest.raises(ValueError, match="allowed: bottom_right"):
        badnets(x, corner="middle")


def test_blended_mixes_with_a_fixed_pattern():
    x = np.full((2, 4, 4, 3), 100, np.uint8)
    y = blended(x, alpha=0.25, seed=5)
    pattern = np.random.default_rng(5).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(y[0], np.rint(0.75 * 100 + 0.25 * pattern.astype(np.float32)).astype(np.uint8))
    assert (y[0] == y[1]).all()
    np.testing.assert_array_equal(apply_trigger(x, {"kind": "blended", "alpha": 0.25, "seed": 5}), y)
    with pytest.raises(ValueError, match="allowed: badnets, blended, wanet"):
        apply_trigger(x, {"kind": "warped"})
    with pytest.raises(ValueError, match="trigger badnets"):
        apply_trigger(x, {"kind": "badnets", "alpha": 0.2})


def test_wanet_moves_pixels_by_a_fixed_smooth_warp():
    """A warp, not added noise: a flat image stays flat; a vanishing strength is the identity; the
    displacement is the same for every image of a batch and bounded by s (in pixels, about s / 2
    times the field's largest value); WaNet's k = H (RVPT's k 224) works too."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    flat = np.full((2, 32, 32, 3), 77, np.uint8)
    np.testing.assert_array_equal(wanet(flat, k=4, s=1.0, seed=3), flat)
    np.testing.assert_array_equal(wanet(x, k=4, s=1e-6, seed=3), x)
    y = wanet(x, k=4, s=1.0, seed=3)
    assert y.shape == x.shape and y.dtype == np.uint8 and (y != x).mean() > 0.5
    np.testing.assert_array_equal(wanet(x, k=4, s=1.0, seed=3), y)
    assert (wanet(x, k=4, s=1.0, seed=4) != y).any()
    ramp = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, None, :, None] * 8, (2, 32, 32, 3)).copy()
    shift = wanet(ramp, k=4, s=1.0, seed=3).astype(float) / 8 - np.arange(32)[None, None, :, None]  # x, pixels
    assert (shift[0] == shift[1]).all() and 0 < np.abs(shift[:, :, 1:-1]).max() < 4
    assert wanet(x, k=32, s=1.0, seed=0).shape == x.shape
    np.testing.assert_array_equal(apply_trigger(x, {"kind": "wanet", "k": 4, "s": 1.0, "seed": 3}), y)
    with pytest.raises(ValueError, match="k 33 must be in 1..32"):
        wanet(x, k=33)
