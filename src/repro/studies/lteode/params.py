"""The graph ODE forecaster's typed params (cheap to import: the workflow validates configs with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ODEParams:
    integrator: Literal["fixed", "adaptive"] = "fixed"
    substeps: int = 1                   # fixed steps per horizon step (the integration-step ablation)
    rtol: float = 1e-3                  # adaptive only
    atol: float = 1e-4
    mask: Literal["none", "soft", "hard"] = "none"   # LTE-ODE: hard (fires only at shock nodes)
    kappa: float = 2.0                  # [I] a sensor is a shock node when its error is kappa x the mean
    tau: float = 0.25                   # [I] soft mask temperature
    compensation: bool = False          # the discrete jump branch g (LTE-ODE)
    lte_penalty: float = 0.0            # lambda of the penalised ODE (the prior work)

    def __post_init__(self) -> None:
        if self.substeps < 1 or self.kappa <= 0 or self.tau <= 0 or self.lte_penalty < 0:
            raise ValueError("need substeps >= 1, kappa > 0, tau > 0, lte_penalty >= 0")
        if self.integrator == "adaptive" and (self.mask != "none" or self.compensation or self.lte_penalty):
            raise ValueError("the adaptive integrator gives no per-step error: mask none, no compensation, "
                             "lte_penalty 0")
        if self.compensation and self.mask == "none":
            raise ValueError("compensation needs a mask (soft or hard): it fires at the shock nodes only")
