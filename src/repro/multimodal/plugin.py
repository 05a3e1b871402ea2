"""What every vision-language study's plugin loads: the ``multimodal`` family, the generated
shapes data and the ``tiny_clip`` builder (registered lazily: it imports torch and open_clip).
Importing it twice (several studies in one workflow) registers once: modules import once."""

from repro import registry
from repro.data import shapes  # noqa: F401  (shapes/embedded)
from repro.multimodal import family  # noqa: F401  (registers the family)

registry.MODELS.lazy("tiny_clip", "repro.multimodal.clip:build")
