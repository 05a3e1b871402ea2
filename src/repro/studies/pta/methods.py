"""PTA and its baselines as one method of the ``multimodal`` family: targeted PGD on a clean CLIP
with target-modal and source-modal proxies (other-papers.md §6.4; the loss is reconstructed [I]).

The attacker perturbs clean source images (non-target classes) so that their embeddings match the
target concept (``target``, a class). Target texts, in the captions' own language:

- the exact target: CLIP's class prompt ("a photo of a star.");
- seen paraphrases (the attack's target-modal proxies P_T): captions of the target under the
  templates ``seen_templates`` with attributes drawn from the first half of each attribute list;
- held-out paraphrases (never optimised): the other templates with the other half of the attributes.

At the paper scale (a labelled image dataset with CLIP's templates, ``images/<name>``) the seen and
held-out paraphrases are the dataset's templates split at ``seen_templates`` ([I]: the paper's
target texts are not known).

Variants by params: Adversarial Illusions (``targets: exact``, ``alpha: 0``), its multi-target
variant (``targets: paraphrases``, ``alpha: 0``) and PTA (``paraphrases`` + ``alpha`` x the mean
cosine to source-modal proxies P_S: real images of the target class from the reference split, or
each example's nearest clean reference images).

Metrics per split (all %): ASR in zero-shot classification (the target class wins among the classes
written in the same words: the class prompt for ``exact``, each held-out paraphrase's pattern for
``heldout``) and in retrieval (the adversarial image ranks first among ``gallery`` clean test images
for the query), each also as ASRD: successes the k-dist detector (k nearest clean reference
embeddings, threshold the ``quantile`` of the references' own k-dists) does not flag.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from repro.multimodal.family import (
    Clip,
    EvalConfig,
    Fitted,
    TrainConfig,
    nothing_to_fit,
)


@dataclass(frozen=True)
class PTAParams:
    target: str = "star"
    targets: Literal["exact", "paraphrases"] = "paraphrases"
    alpha: float = 0.0                 # weight of the source-modal proxies (0: no P_S)
    source: Literal["target_images", "nearest_clean"] = "target_images"  # [I] which images P_S holds
    n_source: int = 16                 # |P_S|
    seen_templates: int = 3            # caption templates whose paraphrases are P_T; the rest are held out
    eps: float = 8 / 255               # L_inf radius on the [0, 1] pixel scale
    steps: int = 20
    step_size: float = 2 / 255
    n_images: int = 96                 # source images attacked per split (non-target classes)
    gallery: int = 200                 # clean test images a retrieval query ranks against
    k: int = 10                        # k-dist detector
    quantile: float = 0.95             # [I] the detector's threshold: this quantile of clean k-dists
    examples: int = 4                  # clean / adversarial image pairs kept in eval.json (the figure)

    def __post_init__(self) -> None:
        if self.eps <= 0 or self.steps < 1 or self.step_size <= 0 or self.n_images < 1 or self.k < 1:
            raise ValueError("need eps > 0, steps >= 1, step_size > 0, n_images >= 1, k >= 1")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile {self.quantile} must be in (0, 1)")


def paraphrases(classes: list[str], attributes: dict[str, list[str]], seen_templates: int
                ) -> tuple[list[str], list[str]]:
    """(seen, held-out) caption patterns with a ``{}`` for the class: every template x the first
    (seen) or second (held-out) half of each attribute list; templates split at ``seen_templates``."""
    from repro.data.shapes import CAPTIONS  # noqa: PLC0415

    if not 0 < seen_templates < len(CAPTIONS):
        raise ValueError(f"seen_templates {seen_templates} must be in 1..{len(CAPTIONS) - 1}")
    half = {k: (v[: (len(v) + 1) // 2], v[(len(v) + 1) // 2:]) for k, v in attributes.items()}

    def patterns(templates: list[str], side: int) -> list[str]:
        out = []
        for t in templates:
            for i in range(max(len(h[side]) for h in half.values())):
                pick = {k: h[side][i % len(h[side])] for k, h in half.items()}
                out.append(t.format(shape="{}", colour=pick["colour"], size=pick["size"], position=pick["position"]))
        return list(dict.fromkeys(out))
    return patterns(CAPTIONS[:seen_templates], 0), patterns(CAPTIONS[seen_templates:], 1)


def template_paraphrases(templates: list[str], seen_templates: int) -> tuple[list[str], list[str]]:
    """(seen, held-out) patterns from a dataset's CLIP templates (``{c}`` for the class; the paper
    scale's 80 ImageNet templates [I]): the first ``seen_templates`` are the attack's proxies."""
    if not 0 < seen_templates < len(templates):
        raise ValueError(f"seen_templates {seen_templates} must be in 1..{len(templates) - 1} "
                         f"(the dataset has {len(templates)} templates)")
    patterns = [t.replace("{c}", "{}") for t in templates]
    return patterns[:seen_templates], patterns[seen_templates:]


def _paraphrases(clip: Clip, seen_templates: int) -> tuple[list[str], list[str]]:
    """The dataset's (seen, held-out) target texts: its CLIP templates where it has them (the paper
    scale's labelled images), else captions over the shapes' attributes (the embedded scale)."""
    templates = clip.data_manifest.get("templates")
    if templates:
        return template_paraphrases(templates, seen_templates)
    return paraphrases(clip.classes, clip.data_manifest["attributes"], seen_templates)


def _texts(clip: Clip, patterns: list[str], name: str):
    from repro.data.shapes import articles  # noqa: PLC0415
    from repro.multimodal.clip import encode_texts  # noqa: PLC0415

    return encode_texts(clip.model, clip.tokenizer, [articles(p.format(name)) for p in patterns])


def _objective(p: PTAParams, proxies, ref, ref_is_target: np.ndarray, start):
    """The PGD objective of embeddings (N x d -> N): mean cosine to the target proxies, plus alpha x
    the mean cosine to the source proxies (the target class's reference images, or each example's
    ``n_source`` nearest references to its clean embedding ``start``)."""
    import torch  # noqa: PLC0415

    from repro.studies.pta.attack import proxy_objective  # noqa: PLC0415

    if not p.alpha:
        return lambda e: proxy_objective(e, proxies, None, 0.0)
    if p.source == "target_images":
        src = ref[torch.from_numpy(np.flatnonzero(ref_is_target)[: p.n_source])]
        return lambda e: proxy_objective(e, proxies, src, p.alpha)
    near = ref[torch.cdist(start, ref).topk(p.n_source, largest=False).indices]  # N x S x d
    return lambda e: proxy_objective(e, proxies, None, 0.0) + p.alpha * torch.einsum("nd,nsd->ns", e, near).mean(-1)


class ProxyPGD:
    Params = PTAParams

    @nothing_to_fit
    def fit(self, clip: Clip, params: PTAParams, cfg: TrainConfig, seed: int, log_row) -> Fitted:
        return Fitted()  # a test-time attack

    def evaluate(self, clip: Clip, fitted: Fitted, p: PTAParams, cfg: EvalConfig, seed: int) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        from repro.multimodal.clip import CLASS_PROMPT, encode_images, normalise  # noqa: PLC0415
        from repro.studies.pta.attack import detector_threshold, k_dist, pgd  # noqa: PLC0415

        if p.target not in clip.classes:
            raise ValueError(f"pta: target {p.target!r} is not a class; allowed: {', '.join(clip.classes)}")
        target = clip.classes.index(p.target)
        def encode(x01):  # N x H x W x 3 in [0, 1] -> normalised embeddings (differentiable)
            return clip.model.encode_image(normalise(x01), normalize=True)

        seen, heldout = _paraphrases(clip, p.seen_templates)
        exact_pattern = [CLASS_PROMPT]
        proxies = _texts(clip, exact_pattern if p.targets == "exact" else seen, p.target)
        ref_images, ref_labels, _ = clip.split(cfg.reference_split)
        ref = encode_images(clip.model, ref_images)
        beta = detector_threshold(ref, p.k, p.quantile)
        out = {}
        for split in cfg.splits:
            images, labels, _ = clip.split(split, cfg.max_examples)
            chosen = np.flatnonzero(labels != target)[: p.n_images]
            rest = np.setdiff1d(np.arange(len(images)), chosen)
            gallery = encode_images(clip.model, images[rest[: p.gallery]])
            x0 = torch.from_numpy(images[chosen]).to(clip.device).float() / 255.0
            objective = _objective(p, proxies.to(clip.device), ref.to(clip.device), ref_labels == target,
                                   encode(x0).detach())
            adv = pgd(encode, x0, objective, eps=p.eps, steps=p.steps, step_size=p.step_size, seed=seed).cpu()
            x0 = x0.cpu()
            with torch.no_grad():
                emb = encode(adv.to(clip.device)).cpu()
            unflagged = (k_dist(emb, ref, p.k) <= beta).numpy()
            hits = {
                "exact_cls": self._classified(clip, emb, exact_pattern, target),
                "heldout_cls": self._classified(clip, emb, heldout, target),
                "exact_ret": self._retrieved(clip, emb, gallery, exact_pattern, p.target),
                "heldout_ret": self._retrieved(clip, emb, gallery, heldout, p.target),
            }
            metrics = {}
            for name, hit in hits.items():
                metrics[f"asr_{name}_pct"] = 100 * float(hit.mean())
                metrics[f"asrd_{name}_pct"] = 100 * float((hit * unflagged[:, None]).mean())
            metrics["flagged_pct"] = 100 * float(1 - unflagged.mean())
            metrics["linf_255"] = 255 * float((adv - x0).abs().amax())
            pick = random.Random(seed).sample(range(len(chosen)), min(p.examples, len(chosen)))
            out[split] = {"metrics": metrics, "n": int(len(chosen)), "threshold": beta,
                          "n_paraphrases": {"seen": len(seen), "heldout": len(heldout)},
                          "examples": {"clean": [images[chosen[i]].tolist() for i in pick],
                                       "adversarial": [(adv[i] * 255).round().to(torch.uint8).tolist() for i in pick]}}
        return out

    @staticmethod
    def _classified(clip: Clip, emb, patterns: list[str], target: int) -> np.ndarray:
        """N x P: under each pattern, is the target the nearest of the classes written that way."""
        from repro.data.shapes import articles  # noqa: PLC0415
        from repro.multimodal.clip import encode_texts  # noqa: PLC0415

        per = encode_texts(clip.model, clip.tokenizer, [articles(pat.format(c)) for pat in patterns for c in clip.classes])
        sims = (emb @ per.T).view(len(emb), len(patterns), len(clip.classes))
        return (sims.argmax(-1) == target).numpy()

    @staticmethod
    def _retrieved(clip: Clip, emb, gallery, patterns: list[str], target: str) -> np.ndarray:
        """N x P: for each pattern's query, does the adversarial image outrank every gallery image."""
        q = _texts(clip, patterns, target)  # P x d
        best = (gallery @ q.T).amax(0)      # P: the best clean gallery match per query
        return ((emb @ q.T) > best[None]).numpy()


proxy_pgd = ProxyPGD()
