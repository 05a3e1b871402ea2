"""OOC-PLL (He, Feng and Yang, KDD 2023): partial-label learning with closed-set and open-set
out-of-candidate examples.

The study's plugin (``repro.plugins``): importing it registers the classic family, the datasets
and figures, and the learners ``oocpll``, ``proden`` and ``cc`` lazily (they import torch)."""

from repro.classic import family  # noqa: F401  (the trainer family the study's runs use)
from repro.registry import FIGURES, LEARNERS
from repro.studies.oocpll import data  # noqa: F401  (registration)
from repro.studies.oocpll.params import BaselineParams, OocPllParams

FIGURES.defer("oocpll/", "repro.studies.oocpll.figures")  # imported by the job that draws one

LEARNERS.lazy("oocpll", "repro.studies.oocpll.learners:OOCPLL", params=OocPllParams)
LEARNERS.lazy("proden", "repro.studies.oocpll.learners:PRODEN", params=BaselineParams)
LEARNERS.lazy("cc", "repro.studies.oocpll.learners:CC_LEARNER", params=BaselineParams)
