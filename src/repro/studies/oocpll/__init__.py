"""OOC-PLL (He, Feng and Yang, KDD 2023): partial-label learning with closed-set and open-set
out-of-candidate examples. Registers the learners (oocpll, proden, cc), the datasets and figures."""

from repro.studies.oocpll import data, figures, learners  # noqa: F401  (they register themselves)
