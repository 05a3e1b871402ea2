"""BDetCLIP's baseline detectors (other-papers.md §3.2): STRIP, SCALE-UP and TeCo, black-box over a
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
- ``teco_score``: TeCo (Liu et al., 2023). Under each corruption kind, the first severity at which
  the prediction changes; a backdoored input's flip points spread more over the kinds. Score =
  their std. Corruptions [I]: below.

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


# --- TeCo (Liu et al., 2023): corruption-robustness consistency -----------------------------------
# [I] TeCo's code corrupts with ImageNet-C's 15 types at 5 severities (the `imagecorruptions`
# package); here eight of them, written on uint8 arrays, with severity ladders in the spirit of
# CIFAR-10-C's (not checked against it): noise, blur, contrast, brightness, pixelation, JPEG.

def _noise(x, rng, sigma):  # gaussian noise, sigma on the [0, 1] scale
    return x / 255.0 + rng.normal(0.0, sigma, x.shape)


def _shot(x, rng, lam):  # Poisson (shot) noise, lam photons at full intensity
    return rng.poisson(x / 255.0 * lam) / lam


def _impulse(x, rng, amount):  # salt and pepper on a fraction `amount` of the values
    y = x / 255.0
    hit = rng.random(x.shape)
    return np.where(hit < amount / 2, 0.0, np.where(hit > 1 - amount / 2, 1.0, y))


def _pil(x, fn):
    from PIL import Image  # noqa: PLC0415

    return np.stack([np.asarray(fn(Image.fromarray(im)), np.float64) / 255.0 for im in x])


def _blur(x, rng, radius):
    from PIL import ImageFilter  # noqa: PLC0415

    return _pil(x, lambda im: im.filter(ImageFilter.GaussianBlur(radius)))


def _contrast(x, rng, c):  # pull every image toward its mean
    y = x / 255.0
    m = y.mean(axis=(1, 2, 3), keepdims=True)
    return (y - m) * c + m


def _brightness(x, rng, c):
    return x / 255.0 + c


def _pixelate(x, rng, c):
    from PIL import Image  # noqa: PLC0415

    side = x.shape[1]
    small = max(int(side * c), 1)
    return _pil(x, lambda im: im.resize((small, small), Image.Resampling.BOX).resize((side, side), Image.Resampling.BOX))


def _jpeg(x, rng, quality):
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    def roundtrip(im):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        return Image.open(buf).convert("RGB")
    return _pil(x, roundtrip)


#: corruption -> (function, its five severities' parameter)
CORRUPTIONS = {
    "gaussian_noise": (_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),
    "shot_noise": (_shot, (500, 250, 100, 75, 50)),
    "impulse_noise": (_impulse, (0.01, 0.02, 0.03, 0.05, 0.07)),
    "gaussian_blur": (_blur, (0.4, 0.6, 0.7, 0.8, 1.0)),
    "contrast": (_contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),
    "brightness": (_brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),
    "pixelate": (_pixelate, (0.95, 0.9, 0.85, 0.75, 0.65)),
    "jpeg": (_jpeg, (80, 65, 58, 50, 40)),
}


def corrupt(images: np.ndarray, kind: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` (uint8) under corruption ``kind`` at ``severity`` 1-5, uint8."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"corruption {kind!r} not allowed; allowed: {', '.join(CORRUPTIONS)}")
    if severity not in range(1, 6):
        raise ValueError(f"severity {severity} must be 1..5")
    fn, ladder = CORRUPTIONS[kind]
    y = fn(images, np.random.default_rng(seed), ladder[severity - 1])
    return np.clip(np.rint(np.asarray(y) * 255.0), 0, 255).astype(np.uint8)


def teco_score(images: np.ndarray, predict_proba: Predict, *, kinds: tuple[str, ...] = tuple(CORRUPTIONS),
               seed: int = 0) -> np.ndarray:
    """Per image, the std over corruption kinds of the first severity (1-5; 6 if none) at which
    the prediction leaves the clean one: a trigger is robust to some corruptions and fragile
    to others, so a backdoored input's flip points spread more."""
    base = predict_proba(images).argmax(-1)
    first = np.full((len(kinds), len(images)), 6.0)
    for i, kind in enumerate(kinds):
        for severity in range(5, 0, -1):  # descending: the last write is the smallest flipping severity
            flipped = predict_proba(corrupt(images, kind, severity, seed)).argmax(-1) != base
            first[i, flipped] = severity
    return first.std(0)
