"""``shapes/embedded``: generated image-caption data for a tiny CLIP (other-papers.md §3.3, §4.3).

Each image is one coloured shape on a noisy dark background, ``image_size`` pixels square, drawn at
4x and downsampled (antialiased edges). The class is the shape; the attributes are colour, size
and horizontal position, and the caption names them with one of several templates, so that a
CLIP trained on the pairs learns shapes, colours, sizes and places from text. Splits:

- ``train``: image-caption pairs for contrastive pre-training (and, poisoned, for the backdoor);
- ``fewshot``: ``shots`` clean labelled images per class (RVPT's defence data);
- ``reference``: clean images no other split holds (BDetCLIP's threshold, PTA's detector);
- ``test``: labelled images for evaluation, balanced over classes.

Files per split: ``<split>.npz`` (``images`` uint8 N x H x W x 3, ``labels`` int64 N) and
``<split>.jsonl`` (one record per image: label, shape, colour, size, position, caption).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio
from repro.registry import DATASETS

#: CLIP's zero-shot class prompt (Radford et al. 2021): the caption of a labelled image and the text of a class
CLASS_PROMPT = "a photo of a {}."
SHAPES = ["circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "ring"]
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (230, 210, 40),
           "purple": (150, 60, 200), "orange": (240, 140, 30), "cyan": (40, 200, 210), "white": (235, 235, 235)}
SIZES = {"small": 0.22, "large": 0.36}            # shape radius as a fraction of the image side
POSITIONS = {"left": 0.32, "center": 0.5, "right": 0.68}  # centre's x as a fraction of the side
CAPTIONS = ["a photo of a {size} {colour} {shape} on the {position}.",
            "a {colour} {shape}.",
            "a {size} {shape} in {colour}.",
            "a {shape} on the {position}, {colour} and {size}.",
            "a picture of a {colour} {shape}."]

DEFAULTS: dict[str, Any] = {"seed": 0, "image_size": 32, "train": 6000, "shots": 16, "reference": 200,
                            "test": 800}

_SCALE = 4  # supersampling factor of the drawing


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """The outline of a polygonal shape (None: drawn otherwise)."""
    def ring_points(n, radius, start):
        return [(cx + radius * np.cos(start + 2 * np.pi * i / n), cy + radius * np.sin(start + 2 * np.pi * i / n))
                for i in range(n)]
    if shape == "triangle":
        return ring_points(3, r, -np.pi / 2)
    if shape == "diamond":
        return ring_points(4, r, -np.pi / 2)
    if shape == "hexagon":
        return ring_points(6, r, 0.0)
    if shape == "star":
        outer, inner = ring_points(5, r, -np.pi / 2), ring_points(5, 0.45 * r, -np.pi / 2 + np.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a = 0.35 * r
        return [(cx - a, cy - r), (cx + a, cy - r), (cx + a, cy - a), (cx + r, cy - a), (cx + r, cy + a),
                (cx + a, cy + a), (cx + a, cy + r), (cx - a, cy + r), (cx - a, cy + a), (cx - r, cy + a),
                (cx - r, cy - a), (cx - a, cy - a)]
    return None


def draw(shape: str, colour: str, size: str, position: str, rng: np.random.Generator, image_size: int) -> np.ndarray:
    """One H x W x 3 uint8 image: noise background, the shape jittered in place, colour and size."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    big = image_size * _SCALE
    background = rng.integers(0, 60, size=(image_size, image_size, 3), dtype=np.uint8)
    canvas = Image.fromarray(np.kron(background, np.ones((_SCALE, _SCALE, 1), np.uint8)))
    pen = ImageDraw.Draw(canvas)
    r = SIZES[size] * big * rng.uniform(0.9, 1.1)
    cx = POSITIONS[position] * big + rng.uniform(-0.03, 0.03) * big
    cy = 0.5 * big + rng.uniform(-0.12, 0.12) * big
    cx, cy = float(np.clip(cx, r, big - r)), float(np.clip(cy, r, big - r))
    fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[colour])
    poly = _polygon(shape, cx, cy, r)
    if poly is not None:
        pen.polygon(poly, fill=fill)
    elif shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        a = 0.8 * r
        pen.rectangle([cx - a, cy - a, cx + a, cy + a], fill=fill)
    elif shape == "ring":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(int(0.3 * r), 1))
    else:
        raise ValueError(f"unknown shape {shape!r}; allowed: {', '.join(SHAPES)}")
    return np.asarray(canvas.resize((image_size, image_size), Image.Resampling.LANCZOS), dtype=np.uint8)


def articles(text: str) -> str:
    """'a' before a vowel becomes 'an' ("a orange star" -> "an orange star")."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def generate(params: dict[str, Any]) -> dict[str, tuple[np.ndarray, list[dict[str, Any]]]]:
    """split -> (images N x H x W x 3 uint8, records); deterministic in ``params``."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"shapes/embedded: unknown params {unknown}; allowed: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    for key in ("train", "shots", "reference", "test"):
        if not isinstance(p[key], int) or p[key] < 1:
            raise ValueError(f"shapes/embedded: {key} must be a positive integer, got {p[key]!r}")
    rng, pick = np.random.default_rng(p["seed"]), random.Random(p["seed"])
    counts = {"train": p["train"], "fewshot": p["shots"] * len(SHAPES), "reference": p["reference"],
              "test": p["test"]}
    out = {}
    for split, n in counts.items():
        # fewshot and test: classes balanced (round-robin); train and reference: drawn uniformly
        labels = ([i % len(SHAPES) for i in range(n)] if split in ("fewshot", "test")
                  else [pick.randrange(len(SHAPES)) for _ in range(n)])
        images, records = np.empty((n, p["image_size"], p["image_size"], 3), np.uint8), []
        for i, label in enumerate(labels):
            attrs = {"shape": SHAPES[label], "colour": pick.choice(list(COLOURS)),
                     "size": pick.choice(list(SIZES)), "position": pick.choice(list(POSITIONS))}
            images[i] = draw(**attrs, rng=rng, image_size=p["image_size"])
            caption = articles(pick.choice(CAPTIONS).format(**attrs))
            records.append({"label": label, **attrs, "caption": caption})
        out[split] = (images, records)
    return out


@DATASETS.register("shapes/embedded")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    data = generate(params)
    with rio.atomic_dir(out_dir) as tmp:
        for split, (images, records) in data.items():
            np.savez_compressed(tmp / f"{split}.npz", images=images,
                                labels=np.array([r["label"] for r in records], np.int64))
            rio.write_text(tmp / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        rio.write_json(tmp / "MANIFEST.json", {
            "dataset": "shapes/embedded", "params": {**DEFAULTS, **params}, "classes": SHAPES,
            "attributes": {"colour": list(COLOURS), "size": list(SIZES), "position": list(POSITIONS)},
            "splits": {k: len(v[1]) for k, v in data.items()}, "files": rio.sha256_tree(tmp)})


def load_split(folder: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(images, labels, records) of ``<folder>/<split>``: ``<split>.npz`` (this scale) or
    ``<split>.images.npy`` read memory-mapped + ``<split>.labels.npy`` (``images/wds``, the paper
    scale's); a missing split names the splits there."""
    folder = Path(folder)
    path, big = folder / f"{split}.npz", folder / f"{split}.images.npy"
    if path.exists():
        with np.load(path) as z:
            images, labels = z["images"], z["labels"]
    elif big.exists():
        images, labels = np.load(big, mmap_mode="r"), np.load(folder / f"{split}.labels.npy")
    else:
        have = sorted({f.stem for f in folder.glob("*.npz")} | {f.name[:-len(".images.npy")]
                                                                 for f in folder.glob("*.images.npy")})
        raise FileNotFoundError(f"{path}: no split {split!r} in {folder}; splits there: {', '.join(have) or 'none'}")
    records = [json.loads(line) for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    return images, labels, records
