"""Backdoor triggers on image batches (uint8, N x H x W x 3), vectorised over the batch.

- ``badnets``: a fixed patch of seeded noise pasted at one corner (BadNets; CleanCLIP / BadCLIP's
  ``random`` patch, other-papers.md §3.2), ``size`` pixels square;
- ``blended``: every pixel blended with a fixed seeded noise image, x' = (1 - alpha) x + alpha p
  (Chen et al.'s blended attack);
- ``wanet``: every image resampled through a fixed seeded smooth warp (Nguyen & Tran's WaNet,
  ICLR 2021, without its noise mode; CleanCLIP / BadCLIP's ``warped`` trigger; RVPT §4.4: k 224, s 1).

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


def wanet(images: np.ndarray, *, k: int = 4, s: float = 0.5, seed: int = 0) -> np.ndarray:
    """``images`` bilinearly resampled at grid = clamp(identity + s · noise / H, −1, 1) (coordinates
    in [−1, 1], pixel centres at the corners): noise a seeded 2 x k x k field uniform in [−1, 1],
    scaled to mean |noise| 1 and upsampled bicubically to H x W, as WaNet's code builds it. A copy;
    the warp depends only on ``k``, ``s``, ``seed`` and the image size."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    n, h, w, _ = images.shape
    if not 1 <= k <= min(h, w):
        raise ValueError(f"wanet: k {k} must be in 1..{min(h, w)} (the control grid is k x k)")
    if not s > 0:
        raise ValueError(f"wanet: s {s} must be positive (the warp's strength)")
    ins = torch.rand(1, 2, k, k, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    ins = ins / ins.abs().mean()
    noise = F.interpolate(ins, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = (torch.stack((x, y), -1)[None] + s * noise / h).clamp(-1, 1)  # [1, H, W, 2] as (x, y)
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    out = F.grid_sample(pixels, grid.expand(n, -1, -1, -1), mode="bilinear", align_corners=True)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


TRIGGERS: dict[str, Callable[..., np.ndarray]] = {"badnets": badnets, "blended": blended, "wanet": wanet}


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
