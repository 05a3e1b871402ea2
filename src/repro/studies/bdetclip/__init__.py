"""BDetCLIP (Niu, He et al., ICML 2025): test-time backdoor detection by contrastive prompting.

The study's plugin registers the multimodal family, the shapes data, the tiny CLIP builder and the
detectors (``methods``: BDetCLIP and the STRIP, SCALE-UP and TeCo baselines) and figures."""

from repro import registry
from repro.multimodal import plugin  # noqa: F401  (family, shapes data, tiny_clip)
from repro.studies.bdetclip import methods  # noqa: F401  (registration)

registry.FIGURES.defer("bdetclip/", "repro.studies.bdetclip.figures")  # imported by the job that draws one

for _name in ("bdetclip", "strip", "scaleup", "teco"):
    registry.MM_METHODS.register(_name)(getattr(methods, _name))
