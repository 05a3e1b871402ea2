"""A tiny CLIP through ``open_clip``, trained from scratch on the generated shapes pairs, clean or
poisoned (model builder ``tiny_clip``; other-papers.md §3.3, §4.3).

The model is ``open_clip.CLIP`` from a config dict of the shape open_clip's model JSONs have
(``embed_dim``, ``vision_cfg``, ``text_cfg``): a small ViT image tower, so that deep visual
prompts have blocks to enter, and open_clip's text transformer with its packaged BPE tokenizer.
Training is open_clip's contrastive ``ClipLoss`` with a learned temperature. Poisoning follows the
BadCLIP / CleanCLIP recipe at miniature: a fraction ``rate`` of the train pairs get the trigger on
the image and a caption of the target class (§3.2).

Files written: ``open_clip_config.json`` (the model config), ``model.safetensors``,
``MANIFEST.json`` (params, losses, the poisoned indices' count, zero-shot accuracy on the clean
test split and attack success rate on the triggered test images of the other classes).
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio
from repro.data.shapes import CLASS_PROMPT, load_split
from repro.data.triggers import apply_trigger
from repro.device import default_device

log = logging.getLogger(__name__)

CONFIG_FILE, WEIGHTS_FILE = "open_clip_config.json", "model.safetensors"
#: the zero-shot class prompt (CLIP's plain template)
#: OpenAI CLIP's pixel statistics (open_clip.constants), applied to every image batch
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 4, "head_width": 16, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2, "mlp_ratio": 2.0},
}

DEFAULTS: dict[str, Any] = {
    "seed": 0, "model": {}, "epochs": 30, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.1,
    "warmup_steps": 20,
    # null: a clean model; else {"trigger": {"kind": ..., ...}, "rate": fraction of train pairs,
    # "target": the target class's name}
    "poison": None,
}


def model_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """``TINY_CONFIG`` with ``overrides`` merged one level deep (``vision_cfg`` / ``text_cfg``)."""
    cfg = json.loads(json.dumps(TINY_CONFIG))
    for key, value in overrides.items():
        if key not in cfg:
            raise ValueError(f"tiny_clip: model.{key}: unknown; allowed: {', '.join(cfg)}")
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def build_model(cfg: dict[str, Any]):
    """(``open_clip.CLIP`` in eval mode, its tokenizer) for the config dict ``cfg``."""
    import open_clip  # noqa: PLC0415

    model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                           quick_gelu=cfg.get("quick_gelu", False))
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"].get("context_length", 77))
    return model.eval(), tokenizer


#: weight files a CLIP folder may hold, in the order they are looked for: ours, then the open_clip
#: Hugging Face Hub layout (e.g. ``timm/vit_base_patch32_clip_224.openai``, the paper scale's CLIPs)
WEIGHT_FILES = (WEIGHTS_FILE, "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def load_model(model_dir: str | Path):
    """(model, tokenizer, model config) of a CLIP folder: a ``tiny_clip`` build, or an open_clip
    model in the Hub layout (``open_clip_config.json`` holding ``model_cfg`` beside
    ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``), e.g. an ``hf_hub`` snapshot."""
    import torch  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    model_dir = Path(model_dir)
    cfg = rio.read_json(model_dir / CONFIG_FILE)
    cfg = cfg.get("model_cfg", cfg)  # the Hub layout nests the model config
    weights = next((model_dir / f for f in WEIGHT_FILES if (model_dir / f).exists()), None)
    if weights is None:
        raise FileNotFoundError(f"{model_dir}: no CLIP weights; expected one of {', '.join(WEIGHT_FILES)}")
    state = (load_file(str(weights)) if weights.suffix == ".safetensors"
             else torch.load(weights, map_location="cpu", weights_only=True))
    model, tokenizer = build_model(cfg)
    model.load_state_dict(state)
    return model.eval(), tokenizer, cfg


def normalise(x01):
    """float N x H x W x 3 in [0, 1] -> N x 3 x H x W normalised as CLIP's preprocessing
    (differentiable: PGD perturbs the [0, 1] images)."""
    import torch  # noqa: PLC0415

    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x01.permute(0, 3, 1, 2) - mean) / std


def pixels(images: np.ndarray, device=None):
    """uint8 N x H x W x 3 -> float N x 3 x H x W on ``device`` (default CPU), normalised as CLIP's
    preprocessing."""
    import torch  # noqa: PLC0415

    # writable and contiguous: a memory-mapped (read-only) paper-scale split is copied here
    return normalise(torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device).float() / 255.0)


def device_of(model):
    """The device a model's weights are on."""
    return next(model.parameters()).device


def encode_images(model, images: np.ndarray, batch_size: int = 512):
    """L2-normalised image embeddings, N x embed_dim, on the CPU (no gradient; batches run on the
    model's device)."""
    import torch  # noqa: PLC0415

    device = device_of(model)
    with torch.no_grad():
        parts = [model.encode_image(pixels(images[i:i + batch_size], device), normalize=True).cpu()
                 for i in range(0, len(images), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, model.text_projection.shape[1])


def encode_texts(model, tokenizer, texts: list[str], batch_size: int = 512):
    """L2-normalised text embeddings, N x embed_dim, on the CPU (no gradient)."""
    import torch  # noqa: PLC0415

    device = device_of(model)
    with torch.no_grad():
        return torch.cat([model.encode_text(tokenizer(texts[i:i + batch_size]).to(device), normalize=True).cpu()
                          for i in range(0, len(texts), batch_size)])


def zero_shot_classes(model, tokenizer, classes: list[str]):
    """Class embeddings of ``CLASS_PROMPT``, K x embed_dim, normalised."""
    return encode_texts(model, tokenizer, [CLASS_PROMPT.format(c) for c in classes])


def zero_shot_predict(model, tokenizer, images: np.ndarray, classes: list[str]) -> np.ndarray:
    """Predicted class index per image (nearest class prompt)."""
    return (encode_images(model, images) @ zero_shot_classes(model, tokenizer, classes).T).argmax(1).numpy()


def poison_pairs(captions: list[str], labels: np.ndarray, spec: dict[str, Any], classes: list[str], seed: int
                 ) -> tuple[list[str], np.ndarray]:
    """(captions, poisoned indices): ``round(rate * N)`` pairs drawn at random from the non-target
    classes (every pair when the data are unlabelled, label -1) get a target caption: a target-class
    train pair's (its wording, so the poisoned captions read like the clean ones), or, with
    ``caption_templates``, one of them filled with the target's name (the BadCLIP / CleanCLIP recipe
    on unlabelled CC3M pairs). The trigger goes on the images as they are batched (``train_clip``)."""
    keys = {"trigger", "rate", "target", "caption_templates"}
    unknown = sorted(set(spec) - keys)
    if unknown or not {"trigger", "rate", "target"} <= set(spec):
        raise ValueError(f"tiny_clip: poison needs trigger, rate, target (and optionally caption_templates); "
                         f"got {sorted(spec)}")
    templates = spec.get("caption_templates")
    if spec["target"] not in classes and not templates:
        raise ValueError(f"tiny_clip: poison.target {spec['target']!r} is not a class ({', '.join(classes) or 'none'}); "
                         f"name a class, or give poison.caption_templates")
    if not 0.0 < spec["rate"] < 1.0:
        raise ValueError(f"tiny_clip: poison.rate {spec['rate']} must be in (0, 1)")
    target = classes.index(spec["target"]) if spec["target"] in classes else None
    rng = random.Random(seed)
    others = [i for i in range(len(captions)) if target is None or labels[i] != target]
    chosen = np.array(sorted(rng.sample(others, round(spec["rate"] * len(captions)))), np.int64)
    target_captions = [c for c, y in zip(captions, labels) if y == target]
    if not templates and not target_captions:
        raise ValueError(f"tiny_clip: no train pair of class {spec['target']!r} to copy a caption from "
                         f"(unlabelled pairs?); give poison.caption_templates")
    captions = list(captions)
    for i in chosen:
        captions[i] = rng.choice(templates).format(spec["target"]) if templates else rng.choice(target_captions)
    return captions, chosen


def train_clip(model, tokenizer, images: np.ndarray, captions: list[str], p: dict[str, Any],
               poisoned: np.ndarray | None = None) -> list[float]:
    """Contrastive training (open_clip ``ClipLoss``), AdamW with linear warm-up and cosine decay, on
    the model's device; ``poisoned`` (indices) get ``p["poison"]["trigger"]`` as they are batched
    (``images`` may be a memory map). Returns the mean loss of each epoch."""
    import torch  # noqa: PLC0415
    from open_clip.loss import ClipLoss  # noqa: PLC0415

    torch.manual_seed(p["seed"])
    rng = np.random.default_rng(p["seed"])
    device = device_of(model)
    tokens = tokenizer(captions)
    loss_fn = ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"], fused=True)
    steps = p["epochs"] * -(-len(images) // p["batch_size"])

    def schedule(step: int) -> float:
        if step < p["warmup_steps"]:
            return (step + 1) / p["warmup_steps"]
        return 0.5 * (1 + np.cos(np.pi * (step - p["warmup_steps"]) / max(steps - p["warmup_steps"], 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    is_poisoned = np.zeros(len(images), bool)
    if poisoned is not None:
        is_poisoned[poisoned] = True
    model.train()
    losses = []
    per_epoch = -(-len(images) // p["batch_size"])
    for epoch in range(p["epochs"]):
        t0, total = time.perf_counter(), 0.0
        order = rng.permutation(len(images))
        for lo in range(0, len(order), p["batch_size"]):
            idx = order[lo:lo + p["batch_size"]]
            batch = images[idx]
            rows = is_poisoned[idx]
            if rows.any():
                batch[rows] = apply_trigger(batch[rows], p["poison"]["trigger"])
            img = model.encode_image(pixels(batch, device), normalize=True)
            txt = model.encode_text(tokens[torch.from_numpy(idx)].to(device), normalize=True)
            loss = loss_fn(img, txt, model.logit_scale.exp())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():  # CLIP clamps the temperature at 100
                model.logit_scale.clamp_(0, np.log(100))
            total += loss.item() * len(idx)
            step = lo // p["batch_size"] + 1
            if per_epoch >= 400 and step % 200 == 0:  # progress of a long (paper-scale) epoch
                log.info("clip epoch %d  step %d/%d  loss %.4f", epoch + 1, step, per_epoch, loss.item())
        losses.append(total / len(images))
        log.info("clip epoch %d/%d  loss %.4f  (%.1fs)", epoch + 1, p["epochs"], losses[-1], time.perf_counter() - t0)
    model.eval()
    return losses


def zero_shot_quality(model, tokenizer, dataset_dir: Path, classes: list[str], poison: dict[str, Any] | None
                      ) -> dict[str, float]:
    """Zero-shot accuracy on the dataset's clean ``test`` split and, for a poisoned model whose
    target is a class, the attack success rate on the triggered test images of the other classes;
    empty when the dataset has no labelled test split (a pairs-only dataset)."""
    dataset_dir = Path(dataset_dir)
    if not classes or not ((dataset_dir / "test.npz").exists() or (dataset_dir / "test.images.npy").exists()):
        return {}
    test_x, test_y, _ = load_split(dataset_dir, "test")
    quality = {"clean_accuracy": float((zero_shot_predict(model, tokenizer, test_x, classes) == test_y).mean())}
    if poison and poison["target"] in classes:
        target = classes.index(poison["target"])
        keep = test_y != target
        hit = zero_shot_predict(model, tokenizer, apply_trigger(test_x[keep], poison["trigger"]), classes)
        quality["attack_success_rate"] = float((hit == target).mean())
    return quality


def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None, base_dir: Path | None = None) -> None:
    """Model builder ``tiny_clip``: ``params`` as ``DEFAULTS``; ``dataset_dir``: shapes data;
    ``base_dir``: a ``tiny_clip`` folder to fine-tune (the BadCLIP / CleanCLIP recipe poisons a
    pre-trained CLIP by fine-tuning it, §3.2, §4.4) instead of training from scratch."""
    import torch  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    if dataset_dir is None:
        raise ValueError("tiny_clip needs a dataset (models.<name>.dataset in the study YAML)")
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"tiny_clip: unknown params {unknown}; allowed: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    data_manifest = rio.read_json(Path(dataset_dir) / "MANIFEST.json")
    classes = data_manifest["classes"]
    images, labels, records = load_split(dataset_dir, "train")
    captions, poisoned = [r["caption"] for r in records], np.empty(0, np.int64)
    if p["poison"]:
        captions, poisoned = poison_pairs(captions, labels, p["poison"], classes, p["seed"])
    torch.manual_seed(p["seed"])
    if base_dir is None:
        cfg = model_config(p["model"])
        model, tokenizer = build_model(cfg)
    else:
        if p["model"]:
            raise ValueError(f"tiny_clip: model {p['model']} with a base model: the architecture is the base's")
        model, tokenizer, cfg = load_model(base_dir)
    model.to(default_device())
    t0 = time.perf_counter()
    losses = train_clip(model, tokenizer, images, captions, p, poisoned)
    seconds = round(time.perf_counter() - t0, 1)
    quality = zero_shot_quality(model, tokenizer, dataset_dir, classes, p["poison"])
    log.info("tiny_clip: %s", ", ".join(f"{k} {v:.3f}" for k, v in quality.items()) or "no labelled test split")
    with rio.atomic_dir(Path(out_dir)) as tmp:
        rio.write_json(tmp / CONFIG_FILE, cfg)
        save_file({k: v.cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
        rio.write_json(tmp / "MANIFEST.json", {
            "builder": "tiny_clip", "params": p, "losses": losses,
            "base_model": None if base_dir is None else rio.manifest_record(base_dir), "train_seconds": seconds,
            "poisoned_pairs": int(len(poisoned)), "zero_shot_test": quality, "files": rio.sha256_tree(tmp)})
