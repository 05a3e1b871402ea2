"""The ``agentic_rl`` trainer family's contract side (``repro.families.Family``): its typed config
blocks and method checks, cheap to import while the workflow parses. The training loop itself
(``repro.rl.trainer``, torch and transformers) is imported by ``train`` and ``evaluate``.

A method names an advantage estimator as ``impl`` (``registry.ESTIMATORS``; null = no training,
the warm start evaluated as is) and its ``params``, typed by the estimator's own dataclass. The
train block names the policy loss (``policy_loss`` + ``policy_loss_params``), the rollout kind
(``rollout``), the sampler (``rollout_backend``) and the training diagnostics (``diagnostics``),
each a registry item with typed params. ``gamma``, ``invalid_penalty`` and ``history_length`` are
the trainer's (``train.<key>``): estimators and diagnostics that read them get them from there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from repro import registry
from repro.config import ConfigError, check_dataclass
from repro.families import check_impl, item_params, refuse_keys, resolved
from repro.rl.advantages.common import TRAINER_KEYS
from repro.rl.config import EvalConfig, TrainConfig


def with_trainer_keys(reg, name: str, values: dict, cfg: TrainConfig, source: str) -> Any:
    """The typed params of ``reg`` item ``name`` from ``values`` plus the trainer's keys it declares
    (``TRAINER_KEYS`` from ``cfg``); setting one of those in ``values`` is refused (it would be
    silently overridden)."""
    own = sorted(set(values) & set(TRAINER_KEYS))
    if own:
        raise ConfigError(f"{source}: {', '.join(own)} come(s) from the train block (train.{own[0]}), "
                          f"not from a {reg.kind}'s params")
    cls = reg.meta(name).get("params")
    names = {f.name for f in dataclasses.fields(cls)} if cls is not None else set()
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(sorted(names - set(TRAINER_KEYS))) or '(none)'}")
    return item_params(reg, name, {**values, **{k: getattr(cfg, k) for k in TRAINER_KEYS if k in names}}, source)


class AgenticRL:
    """Trainer family ``agentic_rl``: HGPO, GiGPO, GRPO (and later GraphGPO, Dr. MAS, KPO, PA-MoE)."""

    def train_config(self, values: dict, source: str) -> TrainConfig:
        cfg = check_dataclass(TrainConfig, values, source)
        for key, reg in (("rollout_backend", registry.ROLLOUT_BACKENDS), ("rollout", registry.ROLLOUTS),
                         ("policy_loss", registry.POLICY_LOSSES), ("state_key", registry.STATE_KEYS),
                         ("finetune", registry.FINETUNING)):
            check_impl(reg, {key: getattr(cfg, key)}, source, key=key)
        item_params(registry.POLICY_LOSSES, cfg.policy_loss, cfg.policy_loss_params, f"{source}.policy_loss_params")
        item_params(registry.FINETUNING, cfg.finetune, cfg.finetune_params, f"{source}.finetune_params")
        if cfg.finetune != "full" and (cfg.rollout_backend != "transformers" or cfg.parallel == "fsdp"):
            # adapters are not synced into vLLM nor sharded by our FSDP path: not built yet
            raise ConfigError(f"{source}.finetune: {cfg.finetune!r} needs rollout_backend: transformers and "
                              f"parallel: ddp (got {cfg.rollout_backend}, {cfg.parallel})")
        for name, params in cfg.diagnostics.items():
            check_impl(registry.DIAGNOSTICS, {name: name}, f"{source}.diagnostics", key=name)
            with_trainer_keys(registry.DIAGNOSTICS, name, params or {}, cfg, f"{source}.diagnostics.{name}")
        return cfg

    def eval_config(self, values: dict, source: str) -> EvalConfig:
        return check_dataclass(EvalConfig, values, source)

    def check_method(self, spec: dict, source: str) -> None:
        refuse_keys(spec, set(), source, "agentic_rl")
        check_impl(registry.ESTIMATORS, spec, source, allow_none=True)

    def method_params(self, spec: dict, values: dict, source: str) -> Any:
        """The estimator's typed params (without the trainer's keys); a method without an
        estimator takes none."""
        if spec["impl"] is None:
            if values:
                raise ConfigError(f"{source}: {', '.join(sorted(values))}: a method without an estimator "
                                  f"(impl: null) takes no params")
            return None
        return with_trainer_keys(registry.ESTIMATORS, spec["impl"], values, TrainConfig(), source)

    def estimator_params(self, run: dict, cfg: TrainConfig) -> Any:
        """The run's estimator params with the trainer's keys from ``cfg`` (what the estimator reads)."""
        return with_trainer_keys(registry.ESTIMATORS, run["impl"], run["params"], cfg, "params")

    def diagnostics(self, cfg: TrainConfig) -> list[tuple[Any, Any, tuple[str, ...]]]:
        """(hook, typed params, train_log.csv columns) of each diagnostic ``cfg`` names."""
        return [(registry.DIAGNOSTICS.get(name),
                 with_trainer_keys(registry.DIAGNOSTICS, name, params or {}, cfg, f"train.diagnostics.{name}"),
                 tuple(registry.DIAGNOSTICS.meta(name).get("columns", ())))
                for name, params in cfg.diagnostics.items()]

    def check_benchmark(self, benchmark: str, evaluate: EvalConfig, source: str) -> None:
        allowed = registry.BENCHMARKS.get(benchmark).eval_splits
        bad = [x for x in evaluate.splits if x not in allowed]
        if bad:
            raise ConfigError(f"{source}.splits: {bad} not allowed for {benchmark}; allowed: {', '.join(allowed)}")

    def conda_env(self, run: dict) -> str:
        """The sampler's environment (vLLM pins its own torch and transformers: envs/vllm.yaml)."""
        backend = self.train_config(run["train"], "train").rollout_backend
        return registry.ROLLOUT_BACKENDS.meta(backend).get("conda_env", "repro")

    def resolve(self, run: dict) -> dict:
        """Defaults filled in; the estimator's params with the trainer's keys it reads."""
        cfg = self.train_config(run["train"], "train")
        return resolved(self, run, self.estimator_params(run, cfg) if run["impl"] else None)

    def train(self, run: dict[str, Any], **paths: Any) -> None:
        from repro.rl.trainer import train

        train(self, run, **paths)

    def evaluate(self, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
        from repro.rl.trainer import evaluate

        return evaluate(self, run, dataset_dir=dataset_dir, checkpoint_dir=checkpoint_dir)
