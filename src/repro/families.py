"""The trainer-family protocol (DESIGN.md §5): what a kind of training provides to the workflow.

A study names its family (``family:`` in ``config/studies/<study>.yaml``); the family is looked up
in :data:`repro.registry.FAMILIES`. The shared configuration code (``repro.config``, the study
schema) only knows what every family shares (benchmarks, methods with ``impl`` + ``params``,
seeds, models, per-scale ``train`` / ``evaluate`` blocks, resources, sources); everything else is
the family's to check and use. A family module is imported while the workflow parses, so it must
be cheap to import: the training code it runs (torch, transformers, ...) is imported inside
``train`` and ``evaluate``.

The job-level run config a family receives (``repro.config.run_config``) holds ``scale``,
``study``, ``plugin``, ``family``, ``method``, ``impl`` (the method's registry item, or None),
``params`` (the method's params after the benchmark's overrides), ``train`` and ``evaluate`` (the
merged blocks), ``env`` (benchmark keyword arguments), ``benchmark``, ``model`` and ``seed``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from repro.config import ConfigError, check_dataclass


@runtime_checkable
class Family(Protocol):
    """One kind of training (``agentic_rl``, ``classic``, ...)."""

    def train_config(self, values: dict, source: str) -> Any:
        """The typed train block (defaults filled); a bad key or value raises ``ConfigError``
        naming ``source`` + the key and what is allowed."""

    def eval_config(self, values: dict, source: str) -> Any:
        """The typed evaluate block, as ``train_config``."""

    def check_method(self, spec: dict, source: str) -> None:
        """Check one ``methods.<m>`` entry: its ``impl`` names a registry item of this family
        (or None where the family allows "no training") and any family-specific keys."""

    def method_params(self, spec: dict, values: dict, source: str) -> Any:
        """The typed params of the method ``spec`` (``values``: its params merged with the
        benchmark's overrides): the ``Params`` dataclass its ``impl`` item owns."""

    def check_benchmark(self, benchmark: str, evaluate: Any, source: str) -> None:
        """Family-level checks of one benchmark's resolved evaluate block (e.g. its splits)."""

    def conda_env(self, run: dict) -> str:
        """The conda environment file (under ``envs/``) a train/evaluate job of ``run`` runs in."""

    def resolve(self, run: dict) -> dict:
        """``run`` with every default filled in (``resolved``): what ``eval.json`` records and
        ``summarize`` reads the runs' settings from."""

    def train(self, run: dict[str, Any], *, dataset_dir: Path, model_dir: Path, out_dir: Path,
              log_csv: Path, work_dir: Path, tracker) -> None:
        """Train ``run`` from the base model in ``model_dir``; write the final checkpoint folder
        ``out_dir`` atomically (with ``trainer_state.json`` holding ``iteration``) and
        ``log_csv`` (one row per iteration/epoch); send curves to ``tracker``. ``work_dir`` may
        hold resumable state that a restarted job continues from."""

    def evaluate(self, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
        """``{"splits": {split: {"metrics": {name: float}, ...}}}``: the paper's protocol on each
        configured split. ``summarize`` tabulates every split's ``metrics`` (mean ± std over
        seeds); other keys (sample counts, per-sample outputs) stay in ``eval.json``. A family
        whose checkpoints hold only what was fitted also takes ``model_dir`` (the base model)."""


class FamilyDefaults:
    """What a family may inherit instead of writing: any split name allowed, the package's own
    conda environment, and ``resolve`` through its ``method_params``."""

    def check_benchmark(self, benchmark: str, evaluate: Any, source: str) -> None:
        """Any split the dataset holds (checked when a job reads it)."""

    def conda_env(self, run: dict) -> str:
        return "repro"

    def resolve(self, run: dict) -> dict:
        return resolved(self, run, self.method_params(run, run["params"], "params"))


class RegistryFamily(FamilyDefaults):
    """A family whose train and evaluate blocks are the typed dataclasses ``train_type`` /
    ``eval_type`` and whose methods are items of one registry (``methods``, each owning its typed
    ``Params``), with no method keys of its own; subclasses set the three and ``name``."""

    name: str = ""
    train_type: type
    eval_type: type
    methods: Any  # a repro.registry.Registry

    def train_config(self, values: dict, source: str) -> Any:
        return check_dataclass(self.train_type, values, source)

    def eval_config(self, values: dict, source: str) -> Any:
        return check_dataclass(self.eval_type, values, source)

    def check_method(self, spec: dict, source: str) -> None:
        refuse_keys(spec, set(), source, self.name)
        check_impl(self.methods, spec, source)

    def method_params(self, spec: dict, values: dict, source: str) -> Any:
        return item_params(self.methods, spec["impl"], values, source)

    #: the checkpoint's state file and its key naming the method's registry item
    state_file, state_key = "trainer_state.json", "impl"

    def restored(self, checkpoint_dir: Path) -> tuple[dict, Any, Any]:
        """(the checkpoint's saved state, the method's registry item, its typed params)."""
        path = Path(checkpoint_dir) / self.state_file
        state = json.loads(path.read_text())
        name = state[self.state_key]
        return state, self.methods.get(name), item_params(self.methods, name, state["params"], f"{path}: params")

    def prepared(self, run: dict) -> tuple[Any, Any, Any, int]:
        """(typed train config, the method's registry item, its typed params, the seed) of a run."""
        return (self.train_config(run["train"], "train"), self.methods.get(run["impl"]),
                self.method_params(run, run["params"], "params"), int(run["seed"]))


class EpochRows(list):
    """A train_log.csv's rows, one per epoch (``epoch`` numbered from 1): call it with a row; it is
    logged every ``every`` epochs and at the last of ``epochs``."""

    def __init__(self, epochs: int, every: int = 1) -> None:
        super().__init__()
        self.epochs, self.every = epochs, every

    def __call__(self, row: dict) -> None:
        self.append({"epoch": len(self) + 1, **row})
        if len(self) % self.every == 0 or len(self) == self.epochs:
            logging.getLogger("repro.families").info(
                "epoch %d/%d  %s", len(self), self.epochs, "  ".join(f"{k} {v:.4f}" for k, v in row.items()))


def resolved(family: Family, run: dict, params: Any) -> dict:
    """``run`` with its typed train and evaluate blocks and its method's typed ``params`` (a
    dataclass, or None) as plain dicts, every default filled in."""
    def plain(x: Any) -> Any:
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else (x or {})

    return {**run, "train": plain(family.train_config(run["train"], "train")),
            "evaluate": plain(family.eval_config(run["evaluate"], "evaluate")), "params": plain(params)}


def item_params(reg, name: str, values: dict, source: str) -> Any:
    """``values`` as the typed ``Params`` of registry item ``name``: the class given as
    ``params=`` when it was registered (lazy items), else the item's own ``Params`` attribute."""
    cls = reg.meta(name).get("params") or getattr(reg.get(name), "Params", None)
    if cls is None:
        raise ConfigError(f"{source}: {reg.kind} {name!r} declares no Params")
    return check_dataclass(cls, values, source)


def check_impl(reg, spec: dict, source: str, *, allow_none: bool = False, key: str = "impl") -> None:
    """``spec[key]`` is a name in ``reg`` (or None where ``allow_none``)."""
    impl = spec.get(key)
    if impl is None and allow_none:
        return
    if impl not in reg:
        raise ConfigError(f"{source}.{key}: {impl!r} is not a registered {reg.kind}; allowed: "
                          f"{', '.join(reg.names())}" + (" or null" if allow_none else ""))


def refuse_keys(spec: dict, allowed: set[str], source: str, family: str) -> None:
    """A method entry's keys outside the shared ones and ``allowed`` (the family's own)."""
    shared = {"impl", "params", "train", "sources", "ablation", "scales", "shared_with"}
    extra = sorted(set(spec) - shared - allowed)
    if extra:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, extra))} (family {family}); "
                          f"allowed: {', '.join(sorted(shared | allowed))}")
