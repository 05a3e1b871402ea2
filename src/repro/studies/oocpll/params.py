"""Typed params of the ``oocpll``, ``proden`` and ``cc`` learners, importable without torch (the
workflow checks them while parsing; ``repro.studies.oocpll.learners`` trains with them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OocPllParams:
    """Hyper-parameters of ``oocpll`` (train.py flags in brackets)."""

    warmup: int = 30                    # PRODEN warm-up epochs [--warmup 30; 50 when q = 0.5]
    ensemble_epochs: int = 5            # stored warm-up epochs averaged [5; 20 when q = 0.5]
    eta: float = 0.9                    # weight of the stored reference [--eta 0.9]
    temperature: float = 0.5            # sharpening T [--T 0.5]
    alpha: float = 1.0                  # closed-set OOC loss weight [--alpha]
    beta: float = 0.1                   # open-set OOC loss weight [--beta 0.1]
    random_candidate_rate: float = 0.5  # label inclusion probability of the random candidate sets [0.5]
    lr_min_factor: float = 0.001        # cosine schedule ends at lr x this [lr_decay_rate ** 3]
    eval_batch_size: int = 1024         # chunk size of the evaluation-mode passes (memory only)

    def __post_init__(self) -> None:
        if self.warmup < 1 or self.ensemble_epochs < 1:
            raise ValueError(f"warmup ({self.warmup}) and ensemble_epochs ({self.ensemble_epochs}) must be >= 1")
        if not 0 <= self.eta <= 1 or self.temperature <= 0 or not 0 < self.random_candidate_rate <= 1:
            raise ValueError(f"need eta in [0, 1], temperature > 0, random_candidate_rate in (0, 1]; got "
                             f"{self.eta}, {self.temperature}, {self.random_candidate_rate}")
        if self.alpha < 0 or self.beta < 0 or not 0 < self.lr_min_factor <= 1 or self.eval_batch_size < 1:
            raise ValueError("need alpha, beta >= 0, lr_min_factor in (0, 1], eval_batch_size >= 1")


@dataclass(frozen=True)
class BaselineParams:
    """Hyper-parameters of ``proden`` and ``cc`` (the same schedule as ``oocpll``)."""

    lr_min_factor: float = 0.001
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.lr_min_factor <= 1 or self.eval_batch_size < 1:
            raise ValueError("need lr_min_factor in (0, 1] and eval_batch_size >= 1")
