"""CleanSight and its baselines as methods of the ``multimodal`` family on a LLaVA-architecture model
(other-papers.md §5.2).

Every method answers VQA questions about test images, clean and with the model's trigger, one
question per image (drawn with the run seed); ``evaluate`` reports, per split:

- ``clean_accuracy_pct``: clean answers equal to the truth (utility);
- ``attack_success_rate_pct``: triggered inputs answered with the backdoor's target;
- ``poisoned_accuracy_pct``: triggered inputs answered correctly (poisoned-sample utility);
- CleanSight also: ``tpr_pct`` / ``fpr_pct`` of its detector on triggered / clean inputs,
  ``auroc_pct`` of its score d, and the mean number of visual tokens it pruned per flagged input.

Methods: ``cleansight`` (calibrated on clean reference pairs in ``fit``; detection + attention
pruning at test time, ``attention.py``); ``no_defence``; pixel-space purification of every input
before answering, ``jpeg`` (re-encoding) and ``blur`` (Gaussian blur), the kind of defence the
paper reports CleanSight beats.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from repro.multimodal.family import EvalConfig, Fitted, TrainConfig, nothing_to_fit
from repro.multimodal.llava import LlavaContext


@dataclass(frozen=True)
class NoParams:
    max_new_tokens: int = 3


@dataclass(frozen=True)
class CleanSightParams(NoParams):
    # deviation: layers 0-2 of the tiny model's 4 (the code: 10-24 of LLaVA-1.5-7B's 32)
    detection_layers: list[int] = field(default_factory=lambda: [0, 1, 2])
    image_token_start: int = 0     # the code: 35 (LLaVA-1.5's system prompt precedes the image)
    image_token_length: int = 16   # the code: 576
    gamma_percentile: float = 99.0
    calibration: int = 200         # clean (image, question) pairs (the code: 200)
    # deviation: 0.3 (the code: 0.02 over 576 visual tokens, ~12x a uniform share of ~0.0016;
    # 0.3 is ~7x the uniform share over the tiny prompt's ~24 keys) [I]
    prune_threshold: float = 0.3

    def __post_init__(self) -> None:
        if not self.detection_layers or sorted(self.detection_layers) != self.detection_layers:
            raise ValueError(f"detection_layers {self.detection_layers}: a non-empty ascending list")
        if not 0 < self.gamma_percentile < 100:
            raise ValueError(f"gamma_percentile {self.gamma_percentile} must be in (0, 100)")


@dataclass(frozen=True)
class JPEGParams(NoParams):
    quality: int = 30


@dataclass(frozen=True)
class BlurParams(NoParams):
    radius: float = 1.0


def _items(ctx: LlavaContext, split: str, seed: int, max_examples: int = 0):
    """(images, questions, answers) of a split: the context's prompting asks them (a question kind
    per image drawn with the seed for the tiny model; the dataset's own question for a checkpoint)."""
    images, _, records = ctx.split(split, max_examples)
    items = ctx.prompting.items(records, random.Random(seed))
    return images, [k for _, k, _ in items], [a for _, _, a in items]


class Answerer:
    """Answers clean and triggered test inputs; subclasses change the inputs or the attention."""

    Params: type = NoParams
    context = LlavaContext

    @nothing_to_fit
    def fit(self, ctx: LlavaContext, params: Any, cfg: TrainConfig, seed: int, log_row) -> Fitted:
        return Fitted()

    def purify(self, images: np.ndarray, params: Any) -> np.ndarray:
        return images

    def answer(self, ctx: LlavaContext, fitted: Fitted, params: Any, images: np.ndarray, questions: list[str]
               ) -> tuple[list[str], dict[str, np.ndarray]]:
        return ctx.prompting.generate(ctx.model, ctx.tokenizer, self.purify(images, params), questions,
                                      params.max_new_tokens), {}

    def evaluate(self, ctx: LlavaContext, fitted: Fitted, params: Any, cfg: EvalConfig, seed: int) -> dict[str, Any]:
        out = {}
        for split in cfg.splits:
            images, questions, truth = _items(ctx, split, seed, cfg.max_examples)
            clean, clean_x = self.answer(ctx, fitted, params, images, questions)
            hit, hit_x = self.answer(ctx, fitted, params, ctx.trigger(images), questions)
            metrics = {"clean_accuracy_pct": 100 * float(np.mean([a == t for a, t in zip(clean, truth)])),
                       "attack_success_rate_pct": 100 * float(np.mean([a == ctx.target.lower() for a in hit])),
                       "poisoned_accuracy_pct": 100 * float(np.mean([a == t for a, t in zip(hit, truth)]))}
            metrics.update(self.detection(clean_x, hit_x))
            out[split] = {"metrics": metrics, "n": len(images),
                          "answers": {"clean": clean[:20], "triggered": hit[:20], "truth": truth[:20]}}
        return out

    def detection(self, clean: dict[str, np.ndarray], triggered: dict[str, np.ndarray]) -> dict[str, float]:
        return {}


class NoDefence(Answerer):
    """The backdoored model as it is."""


class JPEG(Answerer):
    """Every input re-encoded as JPEG at ``quality`` before answering."""

    Params = JPEGParams

    def purify(self, images, params):
        from PIL import Image  # noqa: PLC0415

        def roundtrip(im: np.ndarray) -> np.ndarray:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, "JPEG", quality=params.quality)
            return np.asarray(Image.open(buf).convert("RGB"))
        return np.stack([roundtrip(im) for im in images])


class Blur(Answerer):
    """Every input blurred (Gaussian, ``radius`` pixels) before answering."""

    Params = BlurParams

    def purify(self, images, params):
        from PIL import Image, ImageFilter  # noqa: PLC0415

        return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(params.radius)))
                         for im in images])


class CleanSight(Answerer):
    """Detection by last-query attention ratios, purification by pruning visual tokens (§5.2)."""

    Params = CleanSightParams

    def _session(self, params: CleanSightParams, fitted: Fitted | None, device):
        from repro.studies.cleansight.attention import Session  # noqa: PLC0415

        kw = {} if fitted is None else {"mu": fitted.tensors["mu"].to(device),
                                        "sigma": fitted.tensors["sigma"].to(device), "gamma": fitted.info["gamma"]}
        return Session(layers=list(params.detection_layers), start=params.image_token_start,
                       length=params.image_token_length, tau=params.prune_threshold, **kw)

    def _run(self, ctx: LlavaContext, params: CleanSightParams, fitted: Fitted | None, images: np.ndarray,
             questions: list[str]):
        """Answers and, per input, the CleanSight record (feature, score, flag, pruned count),
        one session per generate batch (rows of one question kind)."""
        import torch  # noqa: PLC0415

        from repro.studies.cleansight.attention import install, session  # noqa: PLC0415

        layout = (ctx.prompting.image_start, ctx.prompting.image_length)
        if layout != (params.image_token_start, params.image_token_length):
            raise ValueError(f"cleansight: image_token_start / image_token_length {params.image_token_start} / "
                             f"{params.image_token_length}, but this model's prompts put its visual tokens at "
                             f"{layout[0]} / {layout[1]}: set them per model (benchmark overrides)")
        install(ctx.model)
        answers: list[str] = [""] * len(images)
        rec = {"feature": [None] * len(images), "score": np.full(len(images), np.nan),
               "flagged": np.zeros(len(images), bool), "pruned": np.zeros(len(images))}
        for rows in ctx.prompting.groups(questions):  # one session per prompt layout
            s = self._session(params, fitted, ctx.device)
            with torch.no_grad(), session(s):
                got = ctx.prompting.generate(ctx.model, ctx.tokenizer, images[rows], [questions[i] for i in rows],
                                             params.max_new_tokens, batch_size=len(rows))
            f = s.feature().cpu()
            for j, i in enumerate(rows):
                answers[i] = got[j]
                rec["feature"][i] = f[j]
                if s.score is not None:
                    rec["score"][i] = float(s.score[j])
                    rec["flagged"][i] = bool(s.flagged[j])
                    rec["pruned"][i] = float(s.pruned[j].sum()) if s.pruned is not None else 0.0
        return answers, rec

    def fit(self, ctx, params: CleanSightParams, cfg, seed, log_row) -> Fitted:
        """Calibration on clean reference pairs: per-dimension mean and std of the features, gamma =
        the ``gamma_percentile`` of the clean scores."""
        import torch  # noqa: PLC0415

        from repro.studies.cleansight.attention import whitened_distance  # noqa: PLC0415

        images, questions, _ = _items(ctx, "reference", seed, params.calibration)
        _, rec = self._run(ctx, params, None, images, questions)
        f = torch.stack(rec["feature"])
        mu, sigma = f.mean(0), f.std(0)
        d = whitened_distance(f, mu, sigma)
        gamma = float(np.percentile(d.numpy(), params.gamma_percentile))
        return Fitted({"mu": mu, "sigma": sigma, "calibration_scores": d},
                      {"gamma": gamma, "calibration_pairs": int(len(images)), "features": int(f.shape[1])})

    def answer(self, ctx, fitted, params, images, questions):
        return self._run(ctx, params, fitted, images, questions)

    def detection(self, clean, triggered):
        from sklearn.metrics import roc_auc_score  # noqa: PLC0415

        scores = np.concatenate([clean["score"], triggered["score"]])
        labels = np.r_[np.zeros(len(clean["score"])), np.ones(len(triggered["score"]))]
        flagged = triggered["flagged"]
        return {"tpr_pct": 100 * float(flagged.mean()), "fpr_pct": 100 * float(clean["flagged"].mean()),
                "auroc_pct": 100 * float(roc_auc_score(labels, scores)),
                "pruned_tokens": float(triggered["pruned"][flagged].mean()) if flagged.any() else 0.0}


no_defence, jpeg, blur, cleansight = NoDefence(), JPEG(), Blur(), CleanSight()
