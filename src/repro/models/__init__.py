"""Base models: hub snapshots at pinned revisions (``hub``), architecture specs of the classic
studies (``architecture``), the tiny-model and tokenizer builders of the embedded scale.

Importing this package registers the generic model builders (a core plugin, ``repro.plugins``);
family-specific builders (e.g. ``tiny_qwen2_sft``, which warm-starts on a benchmark's expert) are
registered by their family's plugin.
"""

from repro.registry import MODELS

MODELS.lazy("architecture", "repro.models.architecture:build_architecture")
MODELS.lazy("hf_hub", "repro.models.hub:download_snapshot")
