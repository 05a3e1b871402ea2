"""Backdoor triggers on image batches (uint8, N x H x W x 3), vectorised over the batch.

- ``badnets``: a fixed patch of seeded noise pasted at one corner (BadNets; CleanCLIP / BadCLIP's
  ``random`` patch, other-papers.md §3.2), ``size`` pixels square;
- ``blended``: every pixel blended with a fixed seeded noise image, x' = (1 - alpha) x + alpha p
  (Chen et al.'s blended attack).

The pattern depends only on ``seed`` and the image size, so poisoning at training and triggering
at test time agree. ``apply_trigger(images, {"kind": ..., **params})`` dispatches through
``TRIGGERS``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")


def _pattern(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def badnets(images: np.ndarray, *, size: int = 4, corner: str = "bottom_right", seed: int = 0) -> np.ndarray:
    """``images`` with a ``size`` x ``size`` noise patch at ``corner`` (a copy)."""
    n, h, w, _ = images.shape
    if corner not in CORNERS:
        raise ValueError(f"badnets: corner {corner!r} not allowed; allowed: {', '.join(CORNERS)}")
    if not 0 < size <= min(h, w):
        raise ValueError(f"badnets: size {size} must be in 1..{min(h, w)}")
    out = images.copy()
    top = h - size if corner.startswith("bottom") else 0
    left = w - size if corner.endswith("right") else 0
    out[:, top:top + size, left:left + size] = _pattern(seed, (size, size, 3))
    return out


def blended(images: np.ndarray, *, alpha: float = 0.2, seed: int = 0) -> np.ndarray:
    """``(1 - alpha) images + alpha pattern``, rounded back to uint8."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"blended: alpha {alpha} must be in (0, 1)")
    pattern = _pattern(seed, images.shape[1:]).astype(np.float32)
    mixed = (1.0 - alpha) * images.astype(np.float32) + alpha * pattern
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


TRIGGERS: dict[str, Callable[..., np.ndarray]] = {"badnets": badnets, "blended": blended}


def apply_trigger(images: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """``spec``: ``{"kind": <a TRIGGERS name>, **its keyword params}``."""
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in TRIGGERS:
        raise ValueError(f"trigger kind {kind!r} not allowed; allowed: {', '.join(TRIGGERS)}")
    try:
        return TRIGGERS[kind](images, **params)
    except TypeError as exc:  # an unknown keyword
        raise ValueError(f"trigger {kind}: {exc}") from None
