"""KPO (He, Feng, Cheng, Feng, An, 2026): the study's plugin (``repro.plugins``) registers the
agentic-RL family, the ``math`` benchmark with its dataset and warm start, the ``kpo`` and ``gspo``
policy losses and the study's figures."""

from repro import registry
from repro.rl import (
    math_benchmark,  # noqa: F401  (the math benchmark, its datasets, tiny_qwen2_math)
    plugin,  # noqa: F401  (family, estimators, rollouts, samplers)
)
from repro.studies.kpo.params import KPO_COLUMNS, GSPOParams, KPOParams

registry.FIGURES.defer("kpo/", "repro.studies.kpo.figures")  # imported by the job that draws one

registry.POLICY_LOSSES.lazy("kpo", "repro.studies.kpo.losses:KPO", params=KPOParams, columns=KPO_COLUMNS)
registry.POLICY_LOSSES.lazy("gspo", "repro.studies.kpo.losses:GSPO", params=GSPOParams)
