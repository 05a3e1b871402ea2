"""The typed params of PA-MoE's pieces, importable without torch (the workflow reads them while
parsing): the router (§3.8.2-3.8.3), the experts, ``lora_experts``' and ``token_moe``'s
``train.finetune_params``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class RouterParams:
    experts: int = 4               # K = 4 (paper_compliant_experts.py, §3.8.2)
    history: int = 5               # L = 5 (action, observation) pairs (§3.8.2)
    heads: int = 8                 # cross-attention heads (§3.8.2)
    lstm_hidden: int = 256         # 3-layer LSTM, hidden 256, dropout 0.1 (§3.8.2)
    lstm_layers: int = 3
    mlp_hidden: int = 512          # Linear(d+256 -> 512) -> LayerNorm -> ReLU -> Dropout 0.1 -> Linear(512 -> K)
    dropout: float = 0.1
    tau_start: float = 2.0         # tau_0 (§3.8.3)
    tau_end: float = 0.5           # tau_f
    anneal_steps: int = 3000       # T_anneal, router updates
    choice: Literal["argmax", "sample"] = "argmax"  # note: argmax [S]; released code: sample while training [C]
    switch_coef: float = 0.05      # lambda_s (§3.8.3)
    balance_coef: float = 0.001    # lambda_bal [C]
    diversity_coef: float = 0.01   # lambda_div [C]
    diversity_margin: float = 0.1  # tau_div [C]
    lr: float = 1e-4               # the router's own AdamW (released code) [C]

    def __post_init__(self) -> None:
        if self.experts < 1 or self.history < 1:
            raise ValueError(f"experts and history must be >= 1, got {self.experts}, {self.history}")
        if not 0 < self.tau_end <= self.tau_start:
            raise ValueError(f"need 0 < tau_end <= tau_start, got {self.tau_end}, {self.tau_start}")


@dataclass(frozen=True)
class ExpertParams:
    experts: int = 4                 # K (paper_compliant_experts.py, §3.8.2)
    rank: int = 32                   # LoRA rank 32, alpha 64, dropout 0.05 (§3.8.2)
    alpha: int = 64
    dropout: float = 0.05
    targets: tuple[str, ...] = field(default=("q_proj", "k_proj", "v_proj", "o_proj"))


@dataclass(frozen=True)
class LoraExpertsParams:
    """``train.finetune_params`` of ``lora_experts``: the experts' LoRA (§3.8.2) and the router's
    architecture, schedule and losses (§3.8.2-3.8.3; defaults the released code's)."""

    experts: int = 4                 # K = 4 (paper_compliant_experts.py)
    rank: int = 32                   # LoRA rank 32, alpha 64, dropout 0.05 on q/k/v/o
    alpha: int = 64
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    history: int = 5                 # L (action, observation) pairs
    heads: int = 8
    lstm_hidden: int = 256
    lstm_layers: int = 3
    mlp_hidden: int = 512
    router_dropout: float = 0.1
    tau_start: float = 2.0
    tau_end: float = 0.5
    anneal_steps: int = 3000         # router updates over which tau anneals
    choice: Literal["argmax", "sample"] = "argmax"  # while training; evaluation always argmax
    switch_coef: float = 0.05
    balance_coef: float = 0.001
    diversity_coef: float = 0.01
    diversity_margin: float = 0.1
    router_lr: float = 1e-4
    router_grad_clip: float = 1.0    # [I] not in the reference; the policy's clip value
    encode_tokens: int = 256         # the last tokens of a text the router encodes (memory bound) [I]

    def __post_init__(self) -> None:
        if self.choice not in ("argmax", "sample"):
            raise ValueError(f"choice: {self.choice!r}; allowed: argmax, sample")
        self.router_params()  # its own checks (experts, history, temperatures)

    def expert_params(self) -> ExpertParams:
        return ExpertParams(experts=self.experts, rank=self.rank, alpha=self.alpha, dropout=self.dropout,
                            targets=tuple(self.targets))

    def router_params(self) -> RouterParams:
        return RouterParams(experts=self.experts, history=self.history, heads=self.heads,
                            lstm_hidden=self.lstm_hidden, lstm_layers=self.lstm_layers, mlp_hidden=self.mlp_hidden,
                            dropout=self.router_dropout, tau_start=self.tau_start, tau_end=self.tau_end,
                            anneal_steps=self.anneal_steps, choice=self.choice, switch_coef=self.switch_coef,
                            balance_coef=self.balance_coef, diversity_coef=self.diversity_coef,
                            diversity_margin=self.diversity_margin, lr=self.router_lr)


@dataclass(frozen=True)
class TokenMoEParams:
    experts: int = 4                 # as PA-MoE's K (§3.8.2)
    rank: int = 32                   # per expert, as PA-MoE's
    alpha: int = 64
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    batch_rows: int = 32             # rows per forward when counting switches

    def __post_init__(self) -> None:
        if self.experts < 1 or self.rank < 1 or not self.targets:
            raise ValueError(f"need experts >= 1, rank >= 1 and targets; got {self}")
