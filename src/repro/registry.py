"""One small registry per extension point (DESIGN.md §5).

A registry maps a name to an object, refuses a second registration under the same name and, on a
miss, lists the names it knows. It is the only dispatch path: no ``if method == ...`` anywhere.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator


class Registry:
    """Name -> object map for one kind of extension (``dataset``, ``estimator``, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator registering ``obj`` under ``name``; a duplicate name raises ``ValueError``."""

        def deco(obj: Any) -> Any:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


DATASETS = Registry("dataset")  # "<dataset>/<variant>" -> callable(out_dir: Path, params: dict) -> None
MODELS = Registry("model")  # "<model>" -> callable(out_dir: Path, params: dict, dataset_dir: Path | None) -> None
TRAINERS = Registry("trainer family")  # family -> object with .train(...) and .evaluate(...)
ESTIMATORS = Registry("advantage estimator")  # name -> callable(StepBatch, params: dict) -> np.ndarray[N]
FIGURES = Registry("figure")  # "<study>/<figure-id>" -> callable(...)
BENCHMARKS = Registry("benchmark")  # benchmark -> repro.rl.benchmarks.Benchmark (env, splits, prompts)
# sampler -> callable(model, tokenizer, cfg: TrainConfig, model_dir: Path, device) -> GenerationBackend
ROLLOUT_BACKENDS = Registry("rollout backend")
LEARNERS = Registry("learner")  # name -> repro.classic.family.Learner (the classic studies' methods)
METRICS = Registry("metric")  # name -> repro.classic.metrics.Metric (fn(y, scores, labels) -> float)


def load_plugins(study: str | None = None) -> None:
    """Import what registers things, so the registries are complete: everything (config
    validation, datasets, models), or only ``study``'s package, which imports its trainer family,
    methods and figures itself (a job of one study then skips the others' imports: torch and
    transformers cost the classic studies' short jobs seconds each)."""
    import importlib

    if study is not None:
        try:
            importlib.import_module(f"repro.studies.{study}")
        except ModuleNotFoundError as exc:
            if exc.name != f"repro.studies.{study}":
                raise
            raise KeyError(f"no study package repro.studies.{study}") from None
        return
    for mod in (
        "repro.data.alfworld",
        "repro.data.webshop",
        "repro.models.embedded",
        "repro.models.hub",
        "repro.models.architecture",
        "repro.rl.advantages",
        "repro.rl.benchmarks",
        "repro.rl.trainer",
        "repro.rl.vllm_backend",
        "repro.classic.family",
        "repro.classic.metrics",
    ):
        importlib.import_module(mod)
    # every study package registers its own learners, datasets and figures from its __init__
    import pkgutil

    import repro.studies

    for info in pkgutil.iter_modules(repro.studies.__path__):
        if info.ispkg:
            importlib.import_module(f"repro.studies.{info.name}")
