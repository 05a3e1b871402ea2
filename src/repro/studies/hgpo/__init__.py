"""HGPO (He, Feng, Wei et al., ICLR 2026): the agentic-RL family it trains with, and its figures."""

# the trainer family, estimators, benchmarks and samplers the study's runs use (registrations)
from repro.rl import advantages, benchmarks, trainer, vllm_backend  # noqa: F401
from repro.studies.hgpo import figures  # noqa: F401
