"""NRPR / GLAC (Shu, He, Wang, Wei, Xiang, Feng, AAAI 2023): generalised unbiased risk estimator for
learning with augmented classes and its risk-penalty regularisation (other-papers.md §1)."""

# importing these registers the datasets, figures, learner and metric
from repro.studies.nrpr import data, figures, learner, metrics  # noqa: F401
