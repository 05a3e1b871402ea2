"""Loading what registers things (DESIGN.md §5): the core plugins and each study's plugin.

A study's plugin is the module its YAML names under ``plugin`` (default ``repro.studies.<study>``);
importing it registers the study's trainer family, methods, datasets, model builders and figures,
eagerly where that is cheap and lazily (``Registry.lazy``) where it would import torch or another
heavy package. The workflow imports the plugins of the selected studies while parsing, and each
job imports the one plugin its rule names, so a job of one study never pays for another's imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Iterable

from repro.registry import PluginImportError

#: registered for every study: the generic model builders (architecture specs, hub snapshots)
CORE = ("repro.models",)


def default_plugin(study: str) -> str:
    return f"repro.studies.{study}"


def load(modules: Iterable[str] = ()) -> None:
    """Import the core plugins and ``modules``; a missing module or package is named."""
    for mod in (*CORE, *modules):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (mod == exc.name or mod.startswith(exc.name + ".")):
                raise KeyError(f"plugin module {mod!r} not found (is its package installed, or on "
                               f"PYTHONPATH?)") from None
            raise PluginImportError(f"plugin {mod} needs the package {exc.name!r}, which is not "
                                    f"installed") from exc


def load_all() -> None:
    """Every plugin shipped in ``repro.studies`` (tests and tools; the workflow loads only the
    selected studies'), found by name like any other plugin."""
    where = importlib.util.find_spec("repro.studies").submodule_search_locations
    load(default_plugin(info.name) for info in pkgutil.iter_modules(where) if info.ispkg)
