"""What every vision-language study's plugin loads: the ``multimodal`` family, the generated
shapes data, the paper scale's WebDataset image data (``images/<name>``) and the CLIP builder
(registered lazily: it imports torch and open_clip), as ``tiny_clip`` (the embedded scale's, from
scratch or fine-tuned) and ``clip`` (the same code fine-tuning a paper-scale base: the BadCLIP /
CleanCLIP poisoning recipe). Importing it twice (several studies in one workflow) registers once:
modules import once."""

from repro import registry
from repro.data import shapes, wds_images  # noqa: F401  (shapes/embedded, images/<name>)
from repro.multimodal import family  # noqa: F401  (registers the family)

registry.MODELS.lazy("tiny_clip", "repro.multimodal.clip:build")
registry.MODELS.lazy("clip", "repro.multimodal.clip:build")
