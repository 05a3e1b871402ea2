"""PA-MoE (Phase-Aware Mixture of Experts for Agentic RL, ICML 2026; agentic-rl.md §3.8): the
study's plugin (``repro.plugins``) registers the agentic-RL family, what each arm trains
(``registry.FINETUNING``: ``lora_experts``, PA-MoE's phase-routed experts; ``token_moe``, the
token-routing baseline; the single-LoRA baseline is the core's ``lora``), the ``task_shares``
diagnostic and the study's figures."""

from repro import registry
from repro.rl import plugin  # noqa: F401  (family, estimators, benchmarks, datasets, samplers, warm start)
from repro.studies.pamoe import diagnostics  # noqa: F401  (registration)
from repro.studies.pamoe.params import LoraExpertsParams, TokenMoEParams

registry.FIGURES.defer("pamoe/", "repro.studies.pamoe.figures")  # imported by the job that draws one

registry.FINETUNING.lazy("lora_experts", "repro.studies.pamoe.routed:lora_experts", params=LoraExpertsParams)
registry.FINETUNING.lazy("token_moe", "repro.studies.pamoe.token_moe:token_moe", params=TokenMoEParams)
