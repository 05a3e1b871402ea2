"""CleanSight (Zhang, Yang, He, Chen, Zhang, Maennel, Feng, Xu; CVPR 2026): test-time attention
purification for backdoored vision-language models. The study's plugin registers the multimodal
family, the shapes data, the paper scale's VQA pairs (``vqa/vqav2``), the ``tiny_llava`` and
``llava_lora`` builders (lazily: torch, transformers, peft), the methods (``methods``: CleanSight, no
defence, JPEG and blur purification) and the figures."""

from repro import registry
from repro.data import vqa_parquet  # noqa: F401  (vqa/vqav2)
from repro.multimodal import plugin  # noqa: F401  (family, shapes data, tiny_clip)
from repro.studies.cleansight import methods  # noqa: F401  (registration)

registry.FIGURES.defer("cleansight/", "repro.studies.cleansight.figures")  # imported by the job that draws one

registry.MODELS.lazy("tiny_llava", "repro.multimodal.llava:build")
registry.MODELS.lazy("llava_lora", "repro.multimodal.llava_chat:build")
registry.MM_METHODS.register("lvlm_no_defence")(methods.no_defence)  # RVPT's CLIP no_defence is taken
registry.MM_METHODS.register("jpeg")(methods.jpeg)
registry.MM_METHODS.register("blur")(methods.blur)
registry.MM_METHODS.register("cleansight")(methods.cleansight)
