"""Base "models" of studies that train from scratch: the architecture, as a versioned folder.

``resources/models/<model>/config.json`` holds the architecture spec (``params``: e.g. ``{"kind":
"mlp", "hidden": [500, 500]}``), which the learner builds at train time from the run's seed;
``MANIFEST.json`` records it, so a changed architecture changes the model digest that provenance
and ``summarize`` compare, as a re-downloaded checkpoint would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro import io as rio


def build_architecture(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None = None) -> None:
    if not isinstance(params.get("kind"), str):
        raise ValueError(f"architecture params need a string `kind` (e.g. mlp, linear, resnet18), got {params!r}")
    with rio.atomic_dir(out_dir) as tmp:
        rio.write_json(tmp / "config.json", params)
        rio.write_json(tmp / "MANIFEST.json", {"builder": "architecture", "params": params,
                                               "files": rio.sha256_tree(tmp)})
