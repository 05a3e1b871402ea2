"""The agentic-RL family's plugin (``repro.plugins``): importing it registers the family, the
advantage estimators, the policy losses, the rollout kinds, the benchmarks with their datasets,
the samplers and the warm-start model builder. Everything that imports torch is registered lazily."""

from repro import registry
from repro.data import alfworld, webshop  # noqa: F401  (register their datasets)
from repro.rl import advantages, benchmarks  # noqa: F401  (register the estimators and benchmarks)
from repro.rl.config import PPOClipParams
from repro.rl.finetune import FullParams, LoraParams
from repro.rl.family import AgenticRL

registry.FAMILIES.register("agentic_rl")(AgenticRL())
registry.ROLLOUT_BACKENDS.lazy("transformers", "repro.rl.generation:transformers_backend")
registry.ROLLOUT_BACKENDS.lazy("vllm", "repro.rl.vllm_backend:vllm_backend", conda_env="vllm")
registry.POLICY_LOSSES.lazy("ppo_clip", "repro.rl.losses:PPO_CLIP", params=PPOClipParams)
registry.ROLLOUTS.lazy("multi_turn", "repro.rl.rollout:run_episodes")
registry.ROLLOUTS.lazy("single_turn", "repro.rl.rollout:run_single_turn")
registry.STATE_KEYS.lazy("observation", "repro.rl.rollout:ObservationKeys")
registry.FINETUNING.lazy("full", "repro.rl.finetune:full", params=FullParams)
registry.FINETUNING.lazy("lora", "repro.rl.finetune:lora", params=LoraParams)
registry.MODELS.lazy("tiny_qwen2_sft", "repro.rl.warmstart:build")
