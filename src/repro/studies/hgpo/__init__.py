"""HGPO (He, Feng, Wei et al., ICLR 2026): the study's plugin (``repro.plugins``) registers the
agentic-RL family it trains with, the study's training diagnostic and its figures."""

from repro.registry import FIGURES
from repro.rl import plugin  # noqa: F401  (family, estimators, benchmarks, datasets, samplers, warm start)
from repro.studies.hgpo import diagnostics  # noqa: F401  (registration)

FIGURES.defer("hgpo/", "repro.studies.hgpo.figures")  # imported by the job that draws one
