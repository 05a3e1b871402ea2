"""BDetCLIP's baseline detectors (other-papers.md §3.2): STRIP and SCALE-UP, black-box over a
classifier's probabilities, vectorised over images and perturbations.

Each returns an anomaly score per image, higher = more suspicious, so that AUROC and the
reference-quantile thresholds treat every detector alike:

- ``strip_score``: STRIP (Gao et al., 2019). Superimpose the image on ``n`` clean images and take
  the mean prediction entropy; a trigger keeps dominating the blends, so a backdoored input's
  entropy is low. Score = -entropy. Blend weights [I]: the original code adds the two images
  with weights 1 and 1 and saturates; ``weights`` makes that configurable.
- ``scaleup_score``: SCALE-UP (Guo et al., 2023). Multiply the pixel values by each factor and
  clip; a backdoored input keeps its prediction under amplification. Score = the scaled
  prediction consistency, the share of factors whose prediction equals the unscaled one.
  Factors [I]: configurable, default 3, 5, 7, 9, 11.

``predict_proba``: uint8 N x H x W x 3 -> N x K class probabilities.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of probabilities."""
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def strip_score(images: np.ndarray, clean_pool: np.ndarray, predict_proba: Predict, *, n: int = 10,
                weights: tuple[float, float] = (1.0, 1.0), seed: int = 0) -> np.ndarray:
    """-mean entropy over ``n`` blends of each image with clean images drawn from ``clean_pool``."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(clean_pool), size=(len(images), n))
    blends = weights[0] * images[:, None].astype(np.float32) + weights[1] * clean_pool[picks].astype(np.float32)
    blends = np.clip(np.rint(blends), 0, 255).astype(np.uint8).reshape(-1, *images.shape[1:])
    h = entropy(predict_proba(blends)).reshape(len(images), n)
    return -h.mean(1)


def scaleup_score(images: np.ndarray, predict_proba: Predict, *,
                  factors: tuple[float, ...] = (3.0, 5.0, 7.0, 9.0, 11.0)) -> np.ndarray:
    """Share of ``factors`` whose amplified image keeps the unscaled image's predicted class."""
    base = predict_proba(images).argmax(-1)
    scaled = np.clip(np.asarray(factors, np.float32)[:, None, None, None, None] * images[None].astype(np.float32),
                     0, 255).astype(np.uint8).reshape(-1, *images.shape[1:])
    preds = predict_proba(scaled).argmax(-1).reshape(len(factors), len(images))
    return (preds == base[None]).mean(0)
