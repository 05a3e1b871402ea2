"""Dr. MAS (Feng, He et al., 2026): the study's plugin (``repro.plugins``) registers the agentic-RL
family, the math benchmark, the ``drmas`` estimator (global / agent-wise / mixed normalisation),
the math team's rollout ``drmas_math``, its warm start, the non-shared agents' fine-tuning
``per_agent_models`` and the study's figures.
Everything that imports torch is registered lazily."""

from repro import registry
from repro.rl import (
    math_benchmark,  # noqa: F401  (the math benchmark, its datasets, tiny_qwen2_math)
    plugin,  # noqa: F401  (family, estimators, rollouts, samplers)
    search_benchmark,  # noqa: F401  (the search benchmark and its datasets)
)
from repro.studies.drmas import diagnostics, estimator  # noqa: F401  (registration)
from repro.studies.drmas.params import PerAgentParams

registry.FIGURES.defer("drmas/", "repro.studies.drmas.figures")  # imported by the job that draws one

registry.MODELS.lazy("tiny_qwen2_math_team", "repro.studies.drmas.warmstart:build")
registry.ROLLOUTS.lazy("drmas_math", "repro.studies.drmas.orchestra:run_math_team")
registry.FINETUNING.lazy("per_agent_models", "repro.studies.drmas.weights:per_agent_models", params=PerAgentParams)
registry.MODELS.lazy("tiny_qwen2_search_team", "repro.studies.drmas.warmstart:build_search")
registry.ROLLOUTS.lazy("drmas_search", "repro.studies.drmas.search_team:run_search_team")
