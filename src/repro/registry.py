"""One small registry per extension point (DESIGN.md §5).

A registry maps a name to an object, refuses a second registration under the same name and, on a
miss, lists the names it knows. It is the only dispatch path: no ``if method == ...`` anywhere.

An entry is registered eagerly (``register``: the object itself) or lazily (``lazy``: a
``"module:attribute"`` imported on first ``get``), so that parsing the workflow, which only needs
names and typed params, imports no torch and no study's heavy dependency. ``defer`` names a module
that registers every entry under a name prefix, imported when a name with that prefix is first
looked up (a study's figures: pandas and plotting for the one job that draws them, not for every
training). A lazy entry whose module needs a package that is not installed fails on ``get`` with a
:class:`PluginImportError` naming the package, the entry and the module (the jobs that use it fail;
nothing else does).

This module imports no plugin: what registers things is loaded by :mod:`repro.plugins`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterator


class PluginImportError(ImportError):
    """A registered entry's module could not be imported (a missing package, named)."""


def import_target(target: str, what: str) -> Any:
    """``"pkg.module:attr.sub"`` -> the object; a missing package raises :class:`PluginImportError`."""
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise PluginImportError(f"{what} needs the package {exc.name!r}, which is not installed "
                                f"(importing {module})") from exc
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry:
    """Name -> object map for one kind of extension (``dataset``, ``estimator``, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._deferred: dict[str, str] = {}  # name prefix -> module that registers those names

    def _claim(self, name: str) -> None:
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is already registered")

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        """Decorator registering ``obj`` under ``name``; a duplicate name raises ``ValueError``."""
        self._claim(name)

        def deco(obj: Any) -> Any:
            self._claim(name)
            self._items[name] = obj
            self._meta[name] = meta
            return obj

        return deco

    def lazy(self, name: str, target: str, **meta: Any) -> None:
        """Register ``"module:attr"`` under ``name``, imported on first :meth:`get`. ``meta`` is
        what callers may read without importing it (:meth:`meta`), e.g. a params dataclass."""
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: lazy target {target!r} is not 'module:attribute'")
        self._claim(name)
        self._lazy[name] = target
        self._meta[name] = meta

    def defer(self, prefix: str, module: str) -> None:
        """Names starting with ``prefix`` are registered by importing ``module``, which happens on
        the first lookup (``get``, ``in``, ``meta``) of such a name or on ``names()``."""
        if prefix in self._deferred and self._deferred[prefix] != module:
            raise ValueError(f"{self.kind} names {prefix!r}* are already deferred to {self._deferred[prefix]}")
        self._deferred[prefix] = module

    def _resolve(self, name: str | None = None) -> None:
        """Import the deferred modules that register ``name`` (every one when ``name`` is None)."""
        for prefix in [p for p in self._deferred if name is None or name.startswith(p)]:
            module = self._deferred.pop(prefix)
            import_target(f"{module}:", f"{self.kind}s {prefix}*")

    def get(self, name: str) -> Any:
        self._resolve(name)
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            obj = import_target(self._lazy[name], f"{self.kind} {name!r}")
            self._items[name] = obj
            del self._lazy[name]
            return obj
        raise KeyError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or '(none)'}")

    def meta(self, name: str) -> dict[str, Any]:
        """What the entry was registered with (``register``/``lazy`` keyword arguments)."""
        if name not in self:
            self.get(name)  # the KeyError listing the registered names
        return self._meta[name]

    def names(self) -> list[str]:
        self._resolve()
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._resolve(name)
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


DATASETS = Registry("dataset")  # "<dataset>/<variant>" -> callable(out_dir: Path, params: dict) -> None
MODELS = Registry("model builder")  # builder -> callable(out_dir: Path, params: dict, dataset_dir: Path | None) -> None
FAMILIES = Registry("trainer family")  # family -> repro.families.Family
FIGURES = Registry("figure")  # "<study>/<figure-id>" -> callable(...) (repro.figures: the call)
# name -> callable(rollout, params) -> {column: float}; meta params=Params, columns=(names, ...)
DIAGNOSTICS = Registry("training diagnostic")
# --- the families' own extension points ---------------------------------------------------------
ESTIMATORS = Registry("advantage estimator")  # agentic_rl: name -> fn(StepBatch, params) (meta params=Params)
BENCHMARKS = Registry("benchmark")  # agentic_rl: benchmark -> repro.rl.benchmarks.Benchmark
# agentic_rl sampler -> callable(model, tokenizer, cfg: TrainConfig, model_dir: Path, device) -> GenerationBackend
ROLLOUT_BACKENDS = Registry("rollout backend")
# agentic_rl: how episodes are played -> fn(env, backend, games, group_ids, **kw) -> repro.rl.rollout.Rollout
ROLLOUTS = Registry("rollout")
# agentic_rl: how a rollout names the state of a step (the anchor of step groups and state graphs)
# -> factory(n_slots) with key(i, observation, admissible) -> str and update(i, action, observation)
STATE_KEYS = Registry("state key")
# agentic_rl: what the trainer updates -> factory(model, tok, params, checkpoint=None) -> repro.rl.finetune.Tuned (meta params=Params)
FINETUNING = Registry("fine-tuning method")
POLICY_LOSSES = Registry("policy loss")  # agentic_rl: name -> repro.rl.losses.PolicyLoss
LEARNERS = Registry("learner")  # classic: name -> repro.classic.family.Learner (lazy: meta params=Params)
METRICS = Registry("metric")  # classic: name -> repro.classic.metrics.Metric (fn(y, scores, labels) -> float)
MM_METHODS = Registry("multimodal method")  # multimodal: name -> repro.multimodal.family.Method (lazy: meta params=Params)
FORECASTERS = Registry("forecaster")  # forecast: name -> repro.forecast.family.Forecaster (lazy: meta params=Params)
SAFETY_TUNERS = Registry("safety tuner")  # lm_safety: name -> repro.safety.family.Tuner (lazy: meta params=Params)
