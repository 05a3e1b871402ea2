"""NRPR / GLAC (Shu, He, Wang, Wei, Xiang, Feng, AAAI 2023): generalised unbiased risk estimator for
learning with augmented classes and its risk-penalty regularisation (other-papers.md §1).

The study's plugin (``repro.plugins``): importing it registers the classic family, the datasets,
figures and metric, and the ``generalized_ure`` learner lazily (it imports torch)."""

from repro.classic import family  # noqa: F401  (the trainer family the study's runs use)
from repro.registry import FIGURES, LEARNERS
from repro.studies.nrpr import data, metrics  # noqa: F401  (registration)
from repro.studies.nrpr.params import UREParams

FIGURES.defer("nrpr/", "repro.studies.nrpr.figures")  # imported by the job that draws one

LEARNERS.lazy("generalized_ure", "repro.studies.nrpr.learner:LEARNER", params=UREParams)
