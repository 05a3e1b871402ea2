"""RVPT (Zhang, He et al., NeurIPS 2025): defending a backdoored CLIP by repulsive visual prompt
tuning. The study's plugin registers the multimodal family, the shapes data, the tiny CLIP builder,
the defences (``methods``: RVPT, plain VPT through alpha = 0, linear probe, CleanCLIP, no defence)
and the figures."""

from repro import registry
from repro.multimodal import plugin  # noqa: F401  (family, shapes data, tiny_clip)
from repro.studies.rvpt import methods  # noqa: F401  (registration)

registry.FIGURES.defer("rvpt/", "repro.studies.rvpt.figures")  # imported by the job that draws one

for _name in ("no_defence", "rvpt", "linear_probe", "cleanclip"):
    registry.MM_METHODS.register(_name)(getattr(methods, _name))
