"""Advantage estimators: registered in :data:`repro.registry.ESTIMATORS` as ``fn(StepBatch, params) -> float64[N]``.

Importing this package registers ``grpo``, ``rloo``, ``gigpo``, ``hgpo`` and ``gae`` (PPO; it
also takes the critic's token values and returns per-token advantages and returns). Each owns its
typed, defaulted params (``params=`` at registration: ``GRPOParams``, ``GiGPOParams``, ...; all
extend ``common.StepParams``); ``params`` may be a mapping of them or an instance.
"""

from repro.rl.advantages import gae, gigpo, grpo, hgpo, rloo  # noqa: F401  (registration side effects)
from repro.rl.advantages.common import TRAINER_KEYS, StepParams, discounted_returns

__all__ = ["TRAINER_KEYS", "StepParams", "discounted_returns"]
