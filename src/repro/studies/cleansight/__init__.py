"""CleanSight (Zhang, Yang, He, Chen, Zhang, Maennel, Feng, Xu; CVPR 2026): test-time attention
purification for backdoored vision-language models. The study's plugin registers the multimodal
family, the shapes data, the ``tiny_llava`` builder (lazily: torch, transformers), the methods
(``methods``: CleanSight, no defence, JPEG and blur purification) and the figures."""

from repro import registry
from repro.multimodal import plugin  # noqa: F401  (family, shapes data, tiny_clip)
from repro.studies.cleansight import figures, methods  # noqa: F401  (figures register themselves)

registry.MODELS.lazy("tiny_llava", "repro.multimodal.llava:build")
registry.MM_METHODS.register("lvlm_no_defence")(methods.no_defence)  # RVPT's CLIP no_defence is taken
registry.MM_METHODS.register("jpeg")(methods.jpeg)
registry.MM_METHODS.register("blur")(methods.blur)
registry.MM_METHODS.register("cleansight")(methods.cleansight)
