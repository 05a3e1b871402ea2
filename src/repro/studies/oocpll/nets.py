"""Networks and input pipelines built from an ``architecture`` model spec (resources/models/<m>/config.json).

Spec keys (``models.<m>.params`` of ``config/studies/oocpll.yaml``):

- ``kind``: ``mlp`` (``hidden``: list of widths, ReLU), ``linear``, or ``resnet18`` (the CIFAR
  ResNet-18 of the authors' ``cifar_models/resnet.py``: 3x3 stem, no max-pool, BasicBlocks
  [2, 2, 2, 2]; ``width`` = the first stage's channels, 64 in the paper).
- ``input`` (images only): ``{layout: nhwc, scale: 255, mean: [...], std: [...]}``: uint8 HWC
  pixels -> [0, 1] -> (augment) -> per-channel normalisation -> NCHW.
- ``augment``: ``{kind: crop_flip, pad: 4}`` (RandomCrop(32, padding=4) + horizontal flip, zero
  padding as torchvision's), ``{kind: jitter, std: s}`` (Gaussian noise on vector inputs), or
  ``{kind: none}``. Two independent draws give the two "views" the method averages.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("mlp", "linear", "resnet18")
AUGMENTS = ("none", "jitter", "crop_flip")


def check_arch(arch: dict[str, Any]) -> None:
    """Clear errors for a bad spec (the model's config.json)."""
    kind = arch.get("kind")
    if kind not in KINDS:
        raise ValueError(f"architecture kind {kind!r} is not supported by oocpll; allowed: {', '.join(KINDS)}")
    aug = (arch.get("augment") or {"kind": "none"}).get("kind")
    if aug not in AUGMENTS:
        raise ValueError(f"architecture augment.kind {aug!r}; allowed: {', '.join(AUGMENTS)}")
    if kind == "resnet18" and "input" not in arch:
        raise ValueError("architecture kind resnet18 needs an `input` spec ({layout: nhwc, scale, mean, std})")
    if aug == "crop_flip" and "input" not in arch:
        raise ValueError("augment crop_flip needs image inputs (an `input` spec)")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """CIFAR ResNet-18: x float[B, C, H, W] -> logits float[B, n_classes]."""

    def __init__(self, n_classes: int, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, n_classes)
        for m in self.modules():  # as the authors' ResNet: Kaiming fan-out convs, unit BN
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def build_net(arch: dict[str, Any], input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The network of ``arch`` for inputs of one example's shape ``input_shape`` (e.g. (64,) or
    (32, 32, 3)); initialised from torch's current RNG state (seed it first)."""
    check_arch(arch)
    kind = arch["kind"]
    if kind == "resnet18":
        return CifarResNet18(n_classes, in_channels=int(input_shape[-1]), width=int(arch.get("width", 64)))
    d = 1
    for s in input_shape:
        d *= int(s)
    widths = [d, *[int(h) for h in (arch.get("hidden", []) if kind == "mlp" else [])]]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], n_classes))
    return nn.Sequential(*layers)


class InputPipeline:
    """Raw stored inputs -> network inputs, with or without augmentation (see module docstring)."""

    def __init__(self, arch: dict[str, Any], device: torch.device) -> None:
        check_arch(arch)
        self.aug = dict(arch.get("augment") or {"kind": "none"})
        self.image = arch.get("input")
        if self.image is not None:
            if self.image.get("layout", "nhwc") != "nhwc":
                raise ValueError(f"input.layout {self.image.get('layout')!r}; allowed: nhwc")
            self.scale = float(self.image.get("scale", 255.0))
            self.mean = torch.tensor(self.image["mean"], dtype=torch.float32, device=device)
            self.std = torch.tensor(self.image["std"], dtype=torch.float32, device=device)

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """x [B, ...] as stored (uint8 NHWC images or float vectors) -> float network input; with
        ``gen`` (a CPU generator) one random augmentation draw."""
        x = x.float()
        if self.image is not None:
            x = x / self.scale
        if gen is not None:
            x = self._augment(x, gen)
        if self.image is not None:
            x = ((x - self.mean) / self.std).permute(0, 3, 1, 2).contiguous()
        return x

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        kind = self.aug["kind"]
        if kind == "jitter":
            noise = torch.randn(x.shape, generator=gen).to(x.device)
            return x + float(self.aug.get("std", 0.1)) * noise
        if kind == "crop_flip":
            return random_crop_flip(x, int(self.aug.get("pad", 4)), gen)
        return x


def random_crop_flip(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """RandomCrop(H, padding=pad) with zero fill, then a horizontal flip with probability 1/2, for a
    batch of NHWC images x float[B, H, W, C] (one offset and flip per image, gathered at once)."""
    B, H, W, _ = x.shape
    xp = F.pad(x, (0, 0, pad, pad, pad, pad))  # pad W and H, not C
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=gen).to(x.device)
    flip = (torch.rand(B, generator=gen) < 0.5).to(x.device)
    rows = oy[:, None] + torch.arange(H, device=x.device)[None]  # [B, H]
    cols = ox[:, None] + torch.arange(W, device=x.device)[None]  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None]
    return xp[b, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
