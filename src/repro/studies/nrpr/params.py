"""The ``generalized_ure`` learner's typed params, importable without torch (the workflow checks
them while parsing; ``repro.studies.nrpr.learner`` trains with them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: the per-class losses of ``repro.studies.nrpr.risk.LOSSES`` (a test keeps the two equal)
LOSS_NAMES = ("ce", "gce", "ovr_logistic")


@dataclass(frozen=True)
class UREParams:
    loss: str = "gce"  # per-class loss (risk.LOSSES): ce | gce | ovr_logistic
    q: float = 0.1  # GCE exponent (main.py -q 0.1); read by gce only
    penalty_lambda: float = 0.0  # λ of the risk penalty; 0 = the plain generalised URE
    penalty_t: float = 1.0  # exponent t of the penalty λ·(−r)^t
    prior: Literal["km1", "km2", "true", "given"] = "km1"  # where θ comes from (dataset meta or `theta`)
    theta: float = 0.8  # θ when prior = given (the authors' MNIST path hard-codes 0.8)
    average_last: int = 10  # predictions average the class probabilities of the last k epochs' models

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss: {self.loss!r} unknown; allowed: {', '.join(LOSS_NAMES)}")
        if not 0 < self.q <= 1:
            raise ValueError(f"q: {self.q} (need 0 < q <= 1)")
        if self.penalty_lambda < 0 or self.penalty_t <= 0:
            raise ValueError(f"penalty_lambda {self.penalty_lambda} must be >= 0 and penalty_t {self.penalty_t} > 0")
        if not 0 < self.theta <= 1:
            raise ValueError(f"theta: {self.theta} (need 0 < theta <= 1)")
        if self.average_last < 1:
            raise ValueError(f"average_last: {self.average_last} (need >= 1)")
