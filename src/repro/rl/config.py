"""Typed configuration of the agentic-RL trainer (one source of defaults; DESIGN.md §5).

Paper-scale values and their sources are in ``config/studies/<study>.yaml``; the defaults here are
the reference implementation's (verl-agent ``ppo_trainer.yaml`` and the HGPO recipe, agentic-rl.md
§4.2) so that an omitted key means "as the paper's code".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


#: verl's ``loss_agg_mode`` values: the mean over all tokens, or over sequences of each
#: sequence's token sum / token mean
AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 160                 # training iterations (one rollout batch each)
    tasks_per_batch: int = 16             # groups per iteration
    group_size: int = 8                   # rollouts per group, all on the same game
    max_steps: int = 50                   # episode cap (env steps)
    history_length: int = 2               # K: (observation, action) pairs in the prompt
    gamma: float = 0.95                   # step discount for returns
    invalid_penalty: float = 0.1          # subtracted after discounting on invalid steps
    lr: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ppo_epochs: int = 1
    mini_batch_rows: int = 256            # PPO mini-batch, counted in step rows
    micro_batch_rows: int = 16            # rows per forward/backward; gradients accumulate
    policy_loss: str = "ppo_clip"         # repro.registry.POLICY_LOSSES
    policy_loss_params: dict = field(default_factory=dict)  # the loss's typed params (e.g. PPOClipParams)
    rollout: str = "multi_turn"           # repro.registry.ROLLOUTS: how episodes are played
    # repro.registry.STATE_KEYS: the anchor of each step row ("observation": the raw observation,
    # as GiGPO and HGPO; GraphGPO's ALFWorld runs track the world state, agentic-rl.md §3.5.4)
    state_key: str = "observation"
    # repro.registry.FINETUNING: what is trained ("full": every weight, as the papers; "lora":
    # adapters on the frozen model) and its typed params
    finetune: str = "full"
    finetune_params: dict = field(default_factory=dict)
    # training diagnostics (repro.registry.DIAGNOSTICS) run on every iteration's batch: name ->
    # params (the diagnostic's typed params; gamma, invalid_penalty, history_length come from here)
    diagnostics: dict = field(default_factory=dict)
    max_prompt_tokens: int = 4096         # left-truncated
    max_response_tokens: int = 512
    train_temperature: float = 1.0
    top_p: float = 1.0                    # nucleus sampling of rollouts and validation (1 = off)
    val_temperature: float = 0.4
    val_every: int = 5                    # train-time validation every N iterations (0 = never)
    val_episodes: int = 128               # episodes per train-time validation (valid_seen)
    checkpoint_every: int = 10            # resumable checkpoint every N iterations
    prompt_style: Literal["full", "compact"] = "full"
    require_think: bool = True            # <think></think> required for a valid step
    max_obs_chars: int | None = None      # cut observations in prompts (embedded only)
    constrain_to_admissible: bool = False # sample only admissible actions (embedded-only deviation)
    env_workers: int = 1                  # worker processes stepping the games
    critic_lr: float = 1e-5               # value model (estimators that need values, e.g. gae)
    critic_value_clip: float = 0.5        # verl critic.cliprange_value
    rollout_backend: str = "transformers" # sampler, repro.registry.ROLLOUT_BACKENDS (transformers, vllm)
    rollout_engine: dict[str, Any] = field(default_factory=dict)  # vLLM engine args over its defaults
    # old log-probs of the PPO ratio: a forward pass of the actor after the rollout (verl), or the
    # sampler's own (same numbers in fp32; 0.01 mean / 0.05 max apart in bf16, docs/performance.md)
    old_logprobs: Literal["recompute", "sampler"] = "recompute"
    # forward passes: fp32, or bf16 autocast over fp32 weights/grads/optimizer (verl's FSDP mixed
    # precision). deviation from "defaults = the paper's code": fp32 by default, the CPU scale's choice
    precision: Literal["float32", "bf16-mixed"] = "float32"
    # several processes (torchrun): every rank holds the whole model and gradients are all-reduced
    # ("ddp"), or parameters, gradients and optimizer states are sharded over the ranks ("fsdp",
    # FSDP2 fully_shard per decoder layer; verl's actor strategy). One process: no difference.
    parallel: Literal["ddp", "fsdp"] = "ddp"
    # a prompt shared by several rows runs once: the sampler prefills each distinct prompt of a
    # batch once (repro.rl.generation.prompt_cache) and the update packs rows whose prompts start
    # alike (a group's rollouts, a team's turns on one task) into one sequence each
    # (repro.rl.policy.pack_shared): the same log-probs up to float rounding, fewer tokens. Off:
    # one padded row per response, as verl. The packs' dense [L, L] mask suits short sequences.
    shared_prefix: bool = False

    def __post_init__(self) -> None:
        positive = ("iterations", "tasks_per_batch", "group_size", "max_steps", "ppo_epochs",
                    "mini_batch_rows", "micro_batch_rows", "max_prompt_tokens",
                    "max_response_tokens", "val_episodes",
                    "checkpoint_every", "env_workers")
        for name in positive:
            if getattr(self, name) < 1 and not (name == "iterations" and self.iterations == 0):
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("history_length", "val_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        for name in ("lr", "critic_lr", "critic_value_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class EvalConfig:
    splits: list[str] = field(default_factory=lambda: ["valid_seen", "valid_unseen"])
    episodes_per_game: int = 1
    temperature: float = 0.4
    top_p: float = 1.0                    # nucleus sampling at evaluation (KPO: 0.7, Dr. MAS: 0.95)
    max_steps: int = 50

    def __post_init__(self) -> None:
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        # the split names themselves are the benchmark's (checked against repro.rl.benchmarks)
        if not self.splits:
            raise ValueError("splits: [] must name at least one split")
        if self.episodes_per_game < 1 or self.max_steps < 1:
            raise ValueError("episodes_per_game and max_steps must be >= 1")


@dataclass(frozen=True)
class PPOClipParams:
    """Params of the ``ppo_clip`` policy loss (verl ``ppo_trainer.yaml`` actor defaults, §4.2)."""

    clip_ratio: float = 0.2
    clip_ratio_c: float = 3.0             # dual-clip constant
    kl_coef: float = 0.01                 # low-variance KL to the reference (0 disables)
    entropy_coeff: float = 0.001
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"

    def __post_init__(self) -> None:
        if self.clip_ratio <= 0 or self.clip_ratio_c <= 1 or self.kl_coef < 0:
            raise ValueError(f"need clip_ratio > 0, clip_ratio_c > 1, kl_coef >= 0; got {self.clip_ratio}, "
                             f"{self.clip_ratio_c}, {self.kl_coef}")
