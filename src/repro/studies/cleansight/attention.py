"""CleanSight's detector and purifier as a registered ``transformers`` attention function
(other-papers.md §5.2; the authors' ``cleansight/{hook,detector,pruner}.py`` monkey-patch eager
attention, this registers the same computation through ``AttentionInterface``).

Installed on the language model only (``install``); outside a ``session`` it is exactly HF Llama's
eager attention. Inside a session, for a batch whose prompts share one layout (visual tokens at
[start, start + length), text after them):

1. **Feature** (prefill): at each detection layer l and head h, the last query token's
   post-softmax attention row a gives S^{l,h} = sum_{visual} a_j / (sum_{text after image} a_j + 1e-12);
   the feature vector concatenates (l, h) in layer-major order (rows: batch).
2. **Detection** at the last detection layer: d = ||(f - mu) / (sigma + 1e-8)||_2 against the clean
   calibration statistics; poisoned if d > gamma.
3. **Purification** of a poisoned row: the visual tokens that receive more than ``tau`` of the last
   query's attention in any head of the last detection layer are pruned: from that layer on (its
   attention is recomputed) and in every later decoding step, -1e38 is added to their
   pre-softmax logits, so their attention weight from every text query is exactly 0 (a visual
   query early in the image block sees only visual keys; where all of them are pruned its
   softmax stays over them, as in the authors' code). No weight changes.

Shapes: query B x H x Q x D, key / value B x KV x K x D (GQA repeated), attention_mask B x 1 x Q x K
(additive, eager's) or None.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch

NAME = "cleansight"
PRUNE = -1e38  # added to a pruned key's logit (the authors' value)


def whitened_distance(f: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """d = ||(f - mu) / (sigma + 1e-8)||_2 per row ([B, F] -> [B]), in float64: a last query that
    leaves (almost) no attention on the text gives S ~ 1e12, whose whitened square overflows
    float32 to inf (one seed's model in ten did)."""
    return torch.linalg.vector_norm((f.double() - mu.double()) / (sigma.double() + 1e-8), dim=1)


@dataclass
class Session:
    """One batch's CleanSight state. ``mu``/``sigma`` None: record features only (calibration)."""

    layers: list[int]
    start: int
    length: int
    mu: torch.Tensor | None = None
    sigma: torch.Tensor | None = None
    gamma: float = float("inf")
    tau: float = 0.02
    purify: bool = True
    features: dict[int, torch.Tensor] = field(default_factory=dict)   # layer -> B x H
    score: torch.Tensor | None = None                                 # B: d
    flagged: torch.Tensor | None = None                               # B bool
    pruned: torch.Tensor | None = None                                # B x length bool

    def feature(self) -> torch.Tensor:
        """B x (layers x heads), layer-major."""
        return torch.cat([self.features[l] for l in self.layers], dim=1)


_ACTIVE: list[Session] = []


@contextlib.contextmanager
def session(s: Session) -> Iterator[Session]:
    """Run the installed attention with CleanSight's state ``s`` (one generate / forward call)."""
    _ACTIVE.append(s)
    try:
        yield s
    finally:
        _ACTIVE.pop()


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def _probs(query, key, mask, scaling, prune=None, start=0, length=0):
    logits = torch.matmul(query, key.transpose(2, 3)) * scaling
    if mask is not None:
        logits = logits + mask
    if prune is not None:
        add = torch.zeros(prune.shape[0], logits.shape[-1], dtype=logits.dtype, device=logits.device)
        add[:, start:start + length] = prune.to(logits.dtype) * PRUNE
        logits = logits + add[:, None, None, :]
    return torch.nn.functional.softmax(logits, dim=-1, dtype=torch.float32).to(query.dtype)


def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The registered attention function (the eager computation plus CleanSight's steps)."""
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    s = _ACTIVE[-1] if _ACTIVE else None
    layer = getattr(module, "layer_idx", None)
    active = s is not None and layer is not None and s.pruned is not None and layer >= s.layers[-1]
    probs = _probs(query, key, attention_mask, scaling, s.pruned if active else None,
                   s.start if s else 0, s.length if s else 0)
    if s is not None and layer in s.layers and query.shape[2] > 1 and s.flagged is None:
        last = probs[:, :, -1, :].float()                       # B x H x K
        visual = last[..., s.start:s.start + s.length]
        text = last[..., s.start + s.length:]
        s.features[layer] = visual.sum(-1) / (text.sum(-1) + 1e-12)
        if layer == s.layers[-1] and s.mu is not None:
            f = s.feature()
            s.score = whitened_distance(f, s.mu, s.sigma)
            s.flagged = s.score > s.gamma
            if s.purify:
                s.pruned = s.flagged[:, None] & (visual > s.tau).any(dim=1)
                probs = _probs(query, key, attention_mask, scaling, s.pruned, s.start, s.length)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def install(model) -> None:
    """Register the function (once per process) and make the language model use it; the vision
    tower keeps its own attention."""
    from transformers import AttentionInterface, AttentionMaskInterface  # noqa: PLC0415
    from transformers.masking_utils import eager_mask  # noqa: PLC0415

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, eager_mask)  # the additive mask eager attention reads
    model.set_attn_implementation({"text_config": NAME, "vision_config": "eager", "": "eager"})
