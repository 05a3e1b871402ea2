"""Advantage estimators: registered in :data:`repro.registry.ESTIMATORS` as ``fn(StepBatch, params) -> float64[N]``.

Importing this package registers ``grpo``, ``rloo``, ``gigpo``, ``hgpo`` and ``gae`` (PPO; it
also takes the critic's token values and returns per-token advantages and returns). Parameters and their
defaults are :data:`repro.rl.advantages.common.PARAM_DEFAULTS`.
"""

from repro.rl.advantages import gae, gigpo, grpo, hgpo, rloo  # noqa: F401  (registration side effects)
from repro.rl.advantages.common import PARAM_DEFAULTS, discounted_returns

__all__ = ["PARAM_DEFAULTS", "discounted_returns"]
