"""Checkpoints of adapted models that cannot be merged into one set of weights (PA-MoE's experts,
token-routed experts): the plain base model, which evaluation loads as any checkpoint, plus the
adapter weights in one file the fine-tuning item restores."""

from __future__ import annotations

from pathlib import Path

import torch

ADAPTERS = "adapters.pt"


def adapter_state(module: torch.nn.Module, marker: str) -> dict[str, torch.Tensor]:
    """The adapter weights of ``module`` (parameters whose name contains ``marker``), by name."""
    return {name: p.detach().cpu().clone() for name, p in module.named_parameters() if marker in name}


def save(out_dir: Path, plain, adapters: dict[str, torch.Tensor], kwargs: dict) -> None:
    plain.save_pretrained(out_dir, **kwargs)
    torch.save(adapters, Path(out_dir) / ADAPTERS)


def load_adapters(out_dir: Path, module: torch.nn.Module, marker: str) -> None:
    """Load ``out_dir``/adapters.pt into ``module``'s adapter weights (``marker``); every one must be there."""
    path = Path(out_dir) / ADAPTERS
    if not path.exists():
        raise FileNotFoundError(f"{path}: no adapter weights (was this checkpoint trained with this finetune item?)")
    state = torch.load(path, weights_only=True)
    want = set(adapter_state(module, marker))
    if set(state) != want:
        missing, extra = sorted(want - set(state)), sorted(set(state) - want)
        raise ValueError(f"{path}: adapter weights do not match the configured adapters "
                         f"(missing {missing[:3]}, unexpected {extra[:3]}); check train.finetune_params")
    module.load_state_dict(state, strict=False)
