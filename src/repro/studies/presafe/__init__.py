"""PreSafe (Chen, Zhang, He, Yue, Feng, Zhang; arXiv 2603.17368): safety decisions before the
chain of thought. The study's plugin registers the ``lm_safety`` family, the generated safety
prompts, the embedded reasoning model's builder (``tiny_reasoner``), Stage 1's judge builder
(``safety_judge``), the tuners (lazily: torch) and the figures."""

from repro import registry
from repro.data import safety_embedded, safety_hub  # noqa: F401  (safety/embedded, safety/hub)
from repro.safety import family  # noqa: F401  (registers the family)
from repro.studies.presafe import judge, reasoner  # noqa: F401  (registration)
from repro.studies.presafe.methods import BaseParams, SFTParams

registry.FIGURES.defer("presafe/", "repro.studies.presafe.figures")  # imported by the job that draws one

registry.SAFETY_TUNERS.lazy("base", "repro.studies.presafe.methods:base", params=BaseParams)
registry.SAFETY_TUNERS.lazy("safety_sft", "repro.studies.presafe.methods:safety_sft", params=SFTParams)
