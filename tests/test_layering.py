"""The package's layering (DESIGN.md §2): ``data/`` generates and fetches, ``envs/`` runs the
environments, ``models/`` builds base models, ``rl/``, ``classic/`` and ``multimodal/`` train; the first three
import no trainer, no study is imported by core code, and no import circle joins the parts.
Imports are read from the source (module level and inside functions alike)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "repro"
SUBPACKAGES = {"data", "envs", "models", "rl", "classic", "multimodal", "forecast", "safety", "figures", "metrics",
               "studies"}


def _node(module: str) -> str | None:
    """``repro.rl.trainer`` -> "rl"; ``repro.config`` -> "config"; a study -> "studies"."""
    parts = module.split(".")
    if parts[0] != "repro" or len(parts) < 2:
        return None
    return parts[1]


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        src = _node(".".join(rel.parts if rel.name != "__init__" else rel.parts[:-1]))
        if src is None:  # repro/__init__.py
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module + "." + a.name for a in node.names] if isinstance(node, ast.ImportFrom)
                     and node.module and node.level == 0 else [])
            for name in names:
                dst = _node(name)
                if dst is not None and dst != src:
                    graph.setdefault(src, set()).add(dst)
    return graph


def test_data_models_and_envs_import_no_trainer_and_core_imports_no_study():
    graph = _imports()
    for part in ("data", "models", "envs"):
        assert not graph.get(part, set()) & {"rl", "classic", "multimodal", "forecast", "safety", "studies"}, (part, graph.get(part))
    for core in ("registry", "config", "plugins", "families", "cli", "io", "provenance", "tracking"):
        assert "studies" not in graph.get(core, set()) and "rl" not in graph.get(core, set()), core


def test_no_import_circle_between_the_parts():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            assert state.get(m) != 1, f"import circle: {' -> '.join(path + [n, m])}"
            if m not in state:
                visit(m, path + [n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
