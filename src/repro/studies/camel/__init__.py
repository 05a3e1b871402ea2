"""CAMEL (Feng, An, He; AAAI 2019): the ``camel`` learner and the study's figures. Binary relevance
and the datasets come from ``repro.studies.multilabel``."""

from repro.classic import family  # noqa: F401  (the trainer family the study's runs use)
from repro.registry import FIGURES
from repro.studies import multilabel  # noqa: F401  (datasets, binary relevance)
from repro.studies.camel import method  # noqa: F401  (registration)

FIGURES.defer("camel/", "repro.studies.camel.figures")  # imported by the job that draws one
