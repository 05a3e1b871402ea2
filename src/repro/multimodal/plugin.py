"""The vision-language studies' shared plugin (``repro.plugins``): importing it registers the
generated shapes data and the tiny CLIP builder (clean or backdoored), lazily (open_clip, torch)."""

from repro import registry
from repro.data import shapes  # noqa: F401  (registers shapes/embedded)

registry.MODELS.lazy("tiny_clip", "repro.multimodal.clip:build")
