"""The ``multimodal`` trainer family: defences, detectors and attacks on vision-language models
(BDetCLIP, RVPT, PTA on a CLIP; CleanSight on a LLaVA-architecture model).

A study with ``family: multimodal`` names a registered method per entry (``methods.<m>.impl``, a
``registry.MM_METHODS`` item); its benchmark's dataset is a labelled image dataset with captions
(``shapes/embedded``: splits ``train``, ``fewshot``, ``reference``, ``test``) and its base model a
folder whose MANIFEST names the backdoor it carries, if any (``params.poison``: trigger and
target); a method's ``context`` says how to load it (``Clip``, the default, or
``repro.multimodal.llava.LlavaContext``). ``train`` fits the method (visual prompts, a linear
probe, a detector's reference statistics) and writes its tensors; a method whose ``fit`` is marked
:func:`nothing_to_fit` (a test-time attack, no defence) writes an empty fit without loading the model;
``evaluate`` runs the method's protocol on each configured split. Nothing here names a study.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import numpy as np

from repro import io as rio
from repro import registry
from repro.families import EpochRows, RegistryFamily

log = logging.getLogger(__name__)

STATE_FILE, TENSORS_FILE = "trainer_state.json", "fitted.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by the methods that train (each reads what it uses)."""

    epochs: int = 0
    batch_size: int = 32
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: Literal["sgd", "adamw"] = "sgd"
    schedule: Literal["cosine", "constant"] = "cosine"
    # the dataset split a method learns from (RVPT, linear probe: few-shot; CleanCLIP: clean pairs)
    data_split: str = "fewshot"
    max_examples: int = 0  # 0: the whole split, else its first max_examples

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0 or self.max_examples < 0:
            raise ValueError("need epochs >= 0, batch_size >= 1, lr > 0, weight_decay >= 0, max_examples >= 0")


@dataclass(frozen=True)
class EvalConfig:
    splits: list[str] = field(default_factory=lambda: ["test"])
    # detectors: the share of the evaluation images (drawn from the non-target classes) that carry
    # the trigger (BDetCLIP's protocol, §3.2: 0.3)
    backdoor_ratio: float = 0.3
    # clean images no evaluation split holds: detector thresholds, PTA's k-dist reference
    reference_split: str = "reference"
    max_examples: int = 0  # 0: every image of a split, else its first max_examples

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError("evaluate needs at least one split")
        if not 0.0 < self.backdoor_ratio < 1.0:
            raise ValueError(f"backdoor_ratio {self.backdoor_ratio} must be in (0, 1)")
        if self.max_examples < 0:
            raise ValueError("max_examples must be >= 0")


@dataclass
class Fitted:
    """What a method's ``fit`` returns: tensors to save (``torch.Tensor``) and JSON-able info."""

    tensors: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Context:
    """A base model and the labelled data a run works on. ``backdoor``: the model's poison spec
    (``{"trigger": {...}, "target": ...}``, from its MANIFEST's ``params.poison``) or None for a clean
    model. Subclasses load the model (``load``); it is frozen here and moved to ``device`` (CUDA when
    a GPU is visible, else the CPU)."""

    def __init__(self, model_dir: Path, dataset_dir: Path) -> None:
        self.model_dir, self.dataset_dir = Path(model_dir), Path(dataset_dir)
        self.manifest = rio.read_json(self.model_dir / "MANIFEST.json")
        self.backdoor: dict[str, Any] | None = self.manifest.get("params", {}).get("poison")
        self.data_manifest = rio.read_json(self.dataset_dir / "MANIFEST.json")
        self.classes: list[str] = self.data_manifest["classes"]
        from repro.device import default_device  # noqa: PLC0415  (torch)

        self.device = default_device()
        self.model, self.tokenizer, self.config = self.load()
        self.model.to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)

    def load(self) -> tuple[Any, Any, dict[str, Any]]:
        """(model, tokenizer, model config) from ``model_dir``."""
        raise NotImplementedError

    def split(self, name: str, max_examples: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """(uint8 images N x H x W x 3, labels N, records) of a dataset split."""
        from repro.data.shapes import load_split  # noqa: PLC0415

        images, labels, records = load_split(self.dataset_dir, name)
        if max_examples:
            images, labels, records = images[:max_examples], labels[:max_examples], records[:max_examples]
        return images, labels, records

    def require_backdoor(self) -> dict[str, Any]:
        if self.backdoor is None:
            raise ValueError(f"{self.model_dir}: a clean model (no params.poison in its MANIFEST) has no "
                             f"backdoor target; this method needs a backdoored model")
        return self.backdoor

    def trigger(self, images: np.ndarray) -> np.ndarray:
        """``images`` with the model's trigger applied."""
        from repro.data.triggers import apply_trigger  # noqa: PLC0415

        return apply_trigger(images, self.require_backdoor()["trigger"])


class Clip(Context):
    """A CLIP (``repro.multimodal.clip``), frozen, with its zero-shot class set-up."""

    def load(self):
        from repro.multimodal.clip import load_model  # noqa: PLC0415  (torch)

        return load_model(self.model_dir)

    @property
    def target(self) -> int:
        """The backdoor's target class index (a clean model has none: ValueError)."""
        return self.classes.index(self.require_backdoor()["target"])

    @cached_property
    def class_embeddings(self):
        """Zero-shot class-prompt embeddings, K x d (normalised, frozen)."""
        from repro.multimodal.clip import zero_shot_classes  # noqa: PLC0415

        return zero_shot_classes(self.model, self.tokenizer, self.classes)


class Method(Protocol):
    """A registered method of a multimodal study (``registry.MM_METHODS``)."""

    Params: type  # frozen dataclass of the method's hyper-parameters (``methods.<m>.params``)
    context: type  # what it works on: ``Clip`` (default) or another ``Context`` (e.g. a LLaVA)

    def fit(self, clip: Clip, params: Any, cfg: TrainConfig, seed: int,
            log_row: Callable[[dict[str, float]], None]) -> Fitted:
        """Fit on the configured split; ``log_row`` takes one row per epoch."""

    def evaluate(self, clip: Clip, fitted: Fitted, params: Any, cfg: EvalConfig, seed: int
                 ) -> dict[str, dict[str, Any]]:
        """split -> ``{"metrics": {name: float}, ...}`` for every split in ``cfg.splits``."""


def nothing_to_fit(fit):
    """Mark a method's ``fit`` as fitting nothing (it returns an empty :class:`Fitted`): its train job
    then writes that empty fit without loading the model (no torch, open_clip or weights: ~5 s of
    imports per embedded job; a 7B LLaVA's load at the paper scale). A subclass that overrides
    ``fit`` is fitted as usual (the mark belongs to the function, not the class)."""
    fit.nothing_to_fit = True
    return fit


def fits_nothing(method: Method) -> bool:
    """Whether ``method``'s ``fit`` is marked :func:`nothing_to_fit`."""
    return getattr(method.fit, "nothing_to_fit", False)


def context(method: Method, model_dir: Path, dataset_dir: Path) -> Context:
    """The context ``method`` works on (its ``context`` class, ``Clip`` by default), loaded."""
    return getattr(method, "context", Clip)(model_dir, dataset_dir)


class Multimodal(RegistryFamily):
    """Trainer family ``multimodal`` (``registry.FAMILIES``; the protocol is ``repro.families.Family``)."""

    name, train_type, eval_type, methods = "multimodal", TrainConfig, EvalConfig, registry.MM_METHODS

    def train(self, run: dict[str, Any], *, dataset_dir: Path, model_dir: Path, out_dir: Path,
              log_csv: Path, work_dir: Path, tracker) -> None:
        import pandas as pd  # noqa: PLC0415

        cfg, method, params, seed = self.prepared(run)
        rows = EpochRows(cfg.epochs, every=10)
        if fits_nothing(method):
            log.info("%s (%s) fits nothing: its empty fit is written without loading %s", run["method"],
                     run["impl"], model_dir.name)
            t0, fitted = time.perf_counter(), Fitted()
        else:
            import torch  # noqa: PLC0415

            torch.manual_seed(seed)
            clip = context(method, model_dir, dataset_dir)
            log.info("fitting %s (%s) on %s with %s, seed %d", run["method"], run["impl"], dataset_dir.name,
                     model_dir.name, seed)
            t0 = time.perf_counter()
            fitted = method.fit(clip, params, cfg, seed, rows)
        seconds = round(time.perf_counter() - t0, 2)
        tracker.log_history(rows, "epoch")
        with rio.atomic_dir(out_dir) as tmp:
            _save_tensors(fitted.tensors, tmp / TENSORS_FILE)
            rio.write_json(tmp / STATE_FILE, {
                "iteration": cfg.epochs, "impl": run["impl"], "params": asdict(params), "info": fitted.info,
                "fit_seconds": seconds, "base_model": rio.manifest_record(model_dir)})
        rio.write_text(log_csv, pd.DataFrame(rows or [{"epoch": 0}]).to_csv(index=False))
        log.info("fitted in %.1fs -> %s", seconds, out_dir)

    def evaluate(self, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path,
                 model_dir: Path) -> dict[str, Any]:
        import torch  # noqa: PLC0415
        from safetensors.torch import load_file  # noqa: PLC0415

        cfg = self.eval_config(run["evaluate"], "evaluate")
        state, method, params = self.restored(checkpoint_dir)
        fitted = Fitted(load_file(str(Path(checkpoint_dir) / TENSORS_FILE)), state["info"])
        torch.manual_seed(int(run["seed"]))
        clip = context(method, model_dir, dataset_dir)
        t0 = time.perf_counter()
        splits = method.evaluate(clip, fitted, params, cfg, int(run["seed"]))
        for split, res in splits.items():
            log.info("%s %s: %s", run["method"], split,
                     ", ".join(f"{k} {v:.2f}" for k, v in res["metrics"].items()))
        log.info("evaluated in %.1fs", time.perf_counter() - t0)
        return {"splits": splits}


registry.FAMILIES.register("multimodal")(Multimodal())


def _save_tensors(tensors: dict[str, Any], path: Path) -> None:
    """``tensors`` (torch) as safetensors; an empty fit through safetensors' numpy writer (the same
    bytes, without importing torch)."""
    if not tensors:
        from safetensors.numpy import save_file  # noqa: PLC0415

        save_file({}, str(path))
        return
    from safetensors.torch import save_file  # noqa: PLC0415

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def optimizer(params: list, cfg: TrainConfig, steps: int):
    """(optimiser, per-step LR scheduler) of ``cfg`` over ``steps`` steps: SGD with momentum or
    AdamW; cosine annealing to 0 or a constant rate."""
    import torch  # noqa: PLC0415

    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def batches(n: int, cfg: TrainConfig, seed: int):
    """Per epoch, the shuffled index batches of ``n`` examples (int64 arrays)."""
    rng = np.random.default_rng([seed, 31])
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        yield [order[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
