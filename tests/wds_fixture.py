"""WebDataset repositories in a local Hugging Face cache (the ``images/<name>`` fixtures): CLIP_benchmark
style labelled shards and CC3M style captioned shards, plus BDetCLIP's text resources as files.
Importable from any test (tests/ is on sys.path)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from hub_cache import write_hub_cache
from PIL import Image

LABELLED, CAPTIONED = "clip-benchmark/wds_toy", "pixparse/cc3m-toy"
SHA_L, SHA_C = "1" * 40, "2" * 40
CLASSES = ["apple", "banana", "cherry"]
TEMPLATES = b"a photo of a {c}.\na drawing of a {c}.\n"


def image(colour: tuple[int, int, int], fmt: str, w: int = 40, h: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format=fmt)
    return buf.getvalue()


def tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def labelled_shard(start: int, n: int) -> bytes:
    """Samples ``s<i>`` of class i % 3 in WEBP, PNG or JPEG; the class sets the red channel."""
    members = {}
    for i in range(start, start + n):
        fmt, ext = [("WEBP", "webp"), ("PNG", "png"), ("JPEG", "jpg")][i % 3]
        members[f"s{i:05d}.{ext}"] = image((100 * (i % 3), 100, 200), fmt)
        members[f"s{i:05d}.cls"] = str(i % 3).encode()
    return tar(members)


def write_wds_cache(cache: Path, pairs_per_shard: int = 5) -> Path:
    write_hub_cache(cache, LABELLED, SHA_L, {
        "classnames.txt": "\n".join(CLASSES).encode(), "zeroshot_classification_templates.txt": TEMPLATES,
        "test/nshards.txt": b"2", "test/0.tar": labelled_shard(0, 12), "test/1.tar": labelled_shard(12, 12),
        "train/nshards.txt": b"1", "train/0.tar": labelled_shard(100, 15)}, repo_type="dataset")
    shards = {f"cc3m-train-{s:04d}.tar": tar({
        **{f"{s}{i:04d}.jpg": image((200, 50, i % 256), "JPEG", 50, 70) for i in range(pairs_per_shard)},
        **{f"{s}{i:04d}.txt": f"caption {s}-{i}".encode() for i in range(pairs_per_shard)},
        **{f"{s}{i:04d}.json": b"{}" for i in range(pairs_per_shard)}}) for s in range(2)}
    write_hub_cache(cache, CAPTIONED, SHA_C, {**shards, "README.md": b"# toy"}, repo_type="dataset")
    return cache


def write_class_texts(folder: Path) -> dict[str, dict[str, str]]:
    """BDetCLIP's resources as the official files lay them out: descriptions per class (JSON) and one
    numbered, sometimes quoted, unrelated sentence per line."""
    folder.mkdir(parents=True, exist_ok=True)
    benign = {c: [f"a {c} is a fruit.", f"a {c} grows on a tree.", f"the {c} is sweet."] for c in CLASSES}
    (folder / "benign.json").write_text(json.dumps(benign))
    (folder / "malignant.txt").write_text('1. Stars twinkle at night.\n2 "The river flows."\nBirds sing.\n')
    return {"benign": {"url": (folder / "benign.json").as_uri()},
            "malignant": {"url": (folder / "malignant.txt").as_uri()}}
