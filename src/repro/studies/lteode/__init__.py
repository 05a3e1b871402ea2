"""LTE-ODE (Zhang, Li, Wang, Wei, He, Xu; arXiv 2605.03386): local-truncation-error-guided neural
ODEs for traffic forecasting. The study's plugin registers the ``forecast`` family, the traffic data
(generated and PEMS), the ``graph_ode`` forecaster (lazily: torch, torchdiffeq) and the figures."""

from repro import registry
from repro.data import traffic  # noqa: F401  (traffic/embedded, traffic/pems)
from repro.forecast import family  # noqa: F401  (registers the family)
from repro.studies.lteode.params import ODEParams

registry.FIGURES.defer("lteode/", "repro.studies.lteode.figures")  # imported by the job that draws one

registry.FORECASTERS.lazy("graph_ode", "repro.studies.lteode.methods:graph_ode", params=ODEParams)
