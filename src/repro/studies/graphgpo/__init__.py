"""GraphGPO (Cheng, He, Feng et al., ICML 2026): the study's plugin (``repro.plugins``) registers the
agentic-RL family, the ``graphgpo`` estimator, ALFWorld's world-state keys (``alfworld_tracked``),
the ``graph_progress`` diagnostic and the study's figures."""

from repro import registry
from repro.rl import plugin  # noqa: F401  (family, estimators, benchmarks, datasets, samplers, warm start)
from repro.studies.graphgpo import diagnostics, estimator  # noqa: F401  (registration)

registry.FIGURES.defer("graphgpo/", "repro.studies.graphgpo.figures")  # imported by the job that draws one

registry.STATE_KEYS.lazy("alfworld_tracked", "repro.envs.alfworld_state:AlfworldStateTracker")
