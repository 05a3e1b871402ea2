"""Batched text environments (ALFWorld, WebShop) and what they share."""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")


def cycle_order(pool: Sequence[T], n: int, seed: int) -> list[T]:
    """``n`` items from repeated shuffles of ``pool`` (each pass a fresh permutation drawn by one
    ``RandomState(seed)``): every item once per pass, as demonstrations cycle through games."""
    rng = np.random.RandomState(seed)
    order: list[T] = []
    while len(order) < n:
        cycle = list(pool)
        rng.shuffle(cycle)
        order += cycle
    return order
