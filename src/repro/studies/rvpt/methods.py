"""RVPT and its baselines as methods of the ``multimodal`` family (other-papers.md §4.4).

Every method is a defended classifier over the backdoored CLIP's zero-shot set-up; ``evaluate``
measures the paper's three numbers on each split, with the model's own trigger:

- CA: clean top-1 accuracy;
- ASR: the share of triggered images of the non-target classes classified as the target;
- PA: the accuracy on those triggered images (their true class);
- PR: perturbation resistivity (Eq. 1), the mean cos(f(x), f(x + delta)) of the method's image
  features over clean images, delta Gaussian noise of ``pr_noise_std`` on the [0, 1] pixel scale.

Methods: ``no_defence`` (the backdoored model's zero-shot classifier); ``rvpt`` (deep visual
prompts, CE + alpha * feature repelling; ``alpha = 0`` is plain VPT); ``linear_probe`` (a linear
head on the frozen image features); ``cleanclip`` (the whole CLIP fine-tuned on clean pairs with
the multimodal contrastive loss plus the unimodal self-supervised terms of CleanCLIP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from repro.multimodal.family import Clip, EvalConfig, Fitted, TrainConfig, batches, nothing_to_fit, optimizer


@dataclass(frozen=True)
class EvalParams:
    pr_noise_std: float = 0.05  # [I] the paper's 0.001 is on an unstated scale


@dataclass(frozen=True)
class NoParams(EvalParams):
    pass


@dataclass(frozen=True)
class RVPTParams(EvalParams):
    start: int = 3        # D: blocks 0..D-1 run unprompted (paper: D = 3 of 12)
    length: int = 50      # b: prompt tokens per block (paper: 50)
    alpha: float = 2.0    # weight of the feature-repelling term (paper: 2; 0 = plain VPT)
    init_std: float = 0.02  # [I] the paper's Gaussian init gives no std
    margin: float | None = None  # L_FR,i <- max(L_FR,i, m) (the paper's margin ablation; none by default)


@dataclass(frozen=True)
class CleanCLIPParams(EvalParams):
    unimodal_weight: float = 1.0  # CleanCLIP's lambda for the image-image and text-text terms
    word_drop: float = 0.2        # text augmentation: each word dropped with this probability [I]
    pad: int = 4                  # image augmentation: random crop after padding by `pad` pixels [I]


class Defence:
    """A classifier over the base CLIP; subclasses give ``features`` (and may replace ``logits``)."""

    Params: type = NoParams

    @nothing_to_fit
    def fit(self, clip: Clip, params: Any, cfg: TrainConfig, seed: int, log_row) -> Fitted:
        return Fitted()

    def load(self, clip: Clip, fitted: Fitted) -> None:
        """Install what was fitted into ``clip`` before evaluating (a method that changes weights)."""

    def features(self, clip: Clip, fitted: Fitted, params: Any, x):
        """Normalised image features N x d of pixel tensors ``x`` (N x 3 x H x W)."""
        return clip.model.encode_image(x, normalize=True)

    def logits(self, clip: Clip, fitted: Fitted, params: Any, x):
        return self.features(clip, fitted, params, x) @ clip.class_embeddings.T.to(x.device)

    def evaluate(self, clip: Clip, fitted: Fitted, params: Any, cfg: EvalConfig, seed: int) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        from repro.multimodal.clip import pixels  # noqa: PLC0415

        def predict(images: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return torch.cat([self.logits(clip, fitted, params, pixels(images[i:i + 256], clip.device)).argmax(-1)
                                  for i in range(0, len(images), 256)]).cpu().numpy()

        def resistivity(images: np.ndarray, g: torch.Generator) -> float:
            """Mean cos(f(x), f(x + delta)) over the images (Eq. 1), delta Gaussian on the [0, 1]
            scale (drawn on the CPU batch by batch: the same stream as one draw), in batches."""
            cos = []
            for i in range(0, len(images), 256):
                x = images[i:i + 256]
                noisy = (torch.from_numpy(np.array(x)).float() / 255.0
                         + params.pr_noise_std * torch.randn(x.shape, generator=g)).clamp(0, 1)
                noisy = (noisy * 255).round().to(torch.uint8).numpy()
                with torch.no_grad():
                    cos.append(torch.nn.functional.cosine_similarity(
                        self.features(clip, fitted, params, pixels(x, clip.device)),
                        self.features(clip, fitted, params, pixels(noisy, clip.device)), dim=-1).cpu())
            return float(torch.cat(cos).mean())

        self.load(clip, fitted)
        out = {}
        for split in cfg.splits:
            images, labels, _ = clip.split(split, cfg.max_examples)
            others = labels != clip.target
            triggered = clip.trigger(images[others])
            hit = predict(triggered)
            out[split] = {"metrics": {
                "clean_accuracy_pct": 100 * float((predict(images) == labels).mean()),
                "attack_success_rate_pct": 100 * float((hit == clip.target).mean()),
                "poisoned_accuracy_pct": 100 * float((hit == labels[others]).mean()),
                "perturbation_resistivity": resistivity(images, torch.Generator().manual_seed(seed))},
                "n": int(len(images)), "n_triggered": int(others.sum())}
        return out


class NoDefence(Defence):
    """The backdoored model's zero-shot classifier, unchanged."""


class RVPT(Defence):
    """Deep visual prompts trained with L_CE + alpha * L_FR on the few-shot clean split (§4.4)."""

    Params = RVPTParams

    def fit(self, clip, params: RVPTParams, cfg, seed, log_row) -> Fitted:
        import torch  # noqa: PLC0415

        from repro.multimodal.clip import pixels  # noqa: PLC0415
        from repro.studies.rvpt.prompts import init_prompts, rvpt_loss  # noqa: PLC0415

        images, labels, _ = clip.split(cfg.data_split, cfg.max_examples)
        y, classes = torch.from_numpy(labels).to(clip.device), clip.class_embeddings.to(clip.device)
        prompts = init_prompts(clip.model.visual, params.start, params.length, params.init_std, seed, clip.device)
        plan = list(batches(len(images), cfg, seed))
        opt, sched = optimizer([prompts], cfg, sum(map(len, plan)))
        for epoch in plan:
            parts = []
            for idx in epoch:
                loss, terms = rvpt_loss(clip.model, pixels(images[idx], clip.device), y[idx], classes, prompts,
                                        params.start, params.alpha, params.margin)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                parts.append(terms)
            log_row({k: float(np.mean([p[k] for p in parts])) for k in parts[0]})
        return Fitted({"prompts": prompts.detach()}, {"examples": int(len(images))})

    def features(self, clip, fitted, params: RVPTParams, x):
        from repro.studies.rvpt.prompts import encode  # noqa: PLC0415

        feats, _ = encode(clip.model.visual, x, fitted.tensors["prompts"].to(x.device), params.start)
        return feats / feats.norm(dim=-1, keepdim=True)


class LinearProbe(Defence):
    """A linear classifier (weights K x d, bias K) on the frozen normalised image features times
    CLIP's logit scale (the zero-shot logits' scale, so the paper's SGD settings train it)."""

    def fit(self, clip, params, cfg, seed, log_row) -> Fitted:
        import torch  # noqa: PLC0415

        from repro.multimodal.clip import encode_images  # noqa: PLC0415

        images, labels, _ = clip.split(cfg.data_split, cfg.max_examples)
        f, y = float(clip.model.logit_scale.exp()) * encode_images(clip.model, images), torch.from_numpy(labels)
        head = torch.nn.Linear(f.shape[1], len(clip.classes))
        plan = list(batches(len(f), cfg, seed))
        opt, sched = optimizer(list(head.parameters()), cfg, sum(map(len, plan)))
        for epoch in plan:
            losses = []
            for idx in epoch:
                loss = torch.nn.functional.cross_entropy(head(f[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
            log_row({"ce": float(np.mean(losses))})
        return Fitted({"weight": head.weight.detach(), "bias": head.bias.detach()}, {"examples": int(len(f))})

    def logits(self, clip, fitted, params, x):
        f = float(clip.model.logit_scale.exp()) * self.features(clip, fitted, params, x)
        return f @ fitted.tensors["weight"].T.to(f.device) + fitted.tensors["bias"].to(f.device)


class CleanCLIP(Defence):
    """The whole CLIP fine-tuned on clean image-caption pairs with CleanCLIP's objective: the CLIP
    contrastive loss plus ``unimodal_weight`` x (image vs augmented image + text vs augmented text),
    each an InfoNCE over the batch (Bansal et al., 2023). The fitted tensors are the new weights."""

    Params = CleanCLIPParams

    def fit(self, clip, params: CleanCLIPParams, cfg, seed, log_row) -> Fitted:
        import torch  # noqa: PLC0415
        from open_clip.loss import ClipLoss  # noqa: PLC0415

        from repro.multimodal.clip import pixels  # noqa: PLC0415

        images, _, records = clip.split(cfg.data_split, cfg.max_examples)
        captions = [r["caption"] for r in records]
        rng = np.random.default_rng([seed, 5])
        model = clip.model
        for p in model.parameters():
            p.requires_grad_(True)
        model.train()
        loss_fn = ClipLoss()
        plan = list(batches(len(images), cfg, seed))
        opt, sched = optimizer(list(model.parameters()), cfg, sum(map(len, plan)))
        for epoch in plan:
            parts = []
            for idx in epoch:
                x = pixels(images[idx], clip.device)
                x_aug = pixels(_crop(images[idx], params.pad, rng), clip.device)
                t = clip.tokenizer([captions[i] for i in idx]).to(clip.device)
                t_aug = clip.tokenizer([_drop_words(captions[i], params.word_drop, rng) for i in idx]).to(clip.device)
                img, img_aug = model.encode_image(x, normalize=True), model.encode_image(x_aug, normalize=True)
                txt, txt_aug = model.encode_text(t, normalize=True), model.encode_text(t_aug, normalize=True)
                scale = model.logit_scale.exp()
                multimodal = loss_fn(img, txt, scale)
                unimodal = loss_fn(img, img_aug, scale) + loss_fn(txt, txt_aug, scale)
                loss = multimodal + params.unimodal_weight * unimodal
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, np.log(100))
                parts.append((multimodal.item(), unimodal.item()))
            log_row({"multimodal": float(np.mean([p[0] for p in parts])),
                     "unimodal": float(np.mean([p[1] for p in parts]))})
        model.eval()
        return Fitted({k: v.detach().clone() for k, v in model.state_dict().items()}, {"examples": int(len(images))})

    def load(self, clip, fitted) -> None:
        clip.model.load_state_dict(fitted.tensors)
        clip.model.eval()
        clip.__dict__.pop("class_embeddings", None)  # the text tower changed too: re-encode the prompts


def _crop(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``H x W`` crop of each image padded by ``pad`` (edge values), uint8."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None]
    cols = dx[:, None] + np.arange(w)[None]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _drop_words(text: str, p: float, rng: np.random.Generator) -> str:
    """``text`` with each word dropped with probability ``p`` (at least one word kept)."""
    words = re.findall(r"\S+", text)
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept or words[:1])


no_defence, rvpt, linear_probe, cleanclip = NoDefence(), RVPT(), LinearProbe(), CleanCLIP()
