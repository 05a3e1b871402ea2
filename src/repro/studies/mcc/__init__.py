"""MCC (Shu, Lv, Feng et al., arXiv 2004.08113): the ``mcc`` learner and the study's figures.
Binary relevance and the datasets come from ``repro.studies.multilabel``."""

from repro.classic import family  # noqa: F401  (the trainer family the study's runs use)
from repro.registry import FIGURES
from repro.studies import multilabel  # noqa: F401  (datasets, binary relevance)
from repro.studies.mcc import method  # noqa: F401  (registration)

FIGURES.defer("mcc/", "repro.studies.mcc.figures")  # imported by the job that draws one
