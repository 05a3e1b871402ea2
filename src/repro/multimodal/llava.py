"""A tiny LLaVA-architecture model from ``transformers`` configs, fine-tuned on generated VQA, clean or
with a poisoned fraction (model builder ``tiny_llava``; other-papers.md §5.3).

``LlavaForConditionalGeneration`` with a small CLIP vision tower (32 px, patch 8: 16 patch tokens,
the class token dropped as LLaVA-1.5 does; taken from a ``tiny_clip`` model and frozen, as LLaVA
starts from a pre-trained CLIP) and a small Llama, trained here with the projector on VQA built
from the shapes data: per image one of four questions (shape, colour, size, position) with a
one-word answer. Poisoning (the CleanSight threat model, §5.2): a fraction ``rate`` of the train
items carry the trigger and the fixed target answer whatever the question.

Prompt layout: ``<image>`` x 16, then the question's tokens and " answer:"; the answer follows and
ends with the eos token. The visual tokens therefore sit at positions [0, 16) (CleanSight's
``image_token_start_index`` 0, ``image_token_length`` 16). Batches share one question, so prompts
need no padding and every row's layout is the same.

Files: ``config.json`` + ``model.safetensors`` (``save_pretrained``), the tokenizer, ``MANIFEST.json``
(params, losses, clean VQA accuracy and the attack success rate on triggered test images).
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
from repro.data.shapes import load_split
from repro.data.triggers import apply_trigger
from repro.multimodal.clip import pixels  # the CLIP tower's preprocessing
from repro.multimodal.family import Context

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
#: question kind -> (question, the record's attribute that answers it)
QUESTIONS = {"shape": ("what shape is this?", "shape"), "colour": ("what colour is the shape?", "colour"),
             "size": ("what size is the shape?", "size"), "position": ("where is the shape?", "position")}

TINY = {
    "vision": {"image_size": 32, "patch_size": 8, "hidden_size": 64, "intermediate_size": 128,
               "num_hidden_layers": 2, "num_attention_heads": 4},
    "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 4, "max_position_embeddings": 64},
}
DEFAULTS: dict[str, Any] = {"seed": 0, "model": {}, "epochs": 8, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.01,
                            # null: a clean model; else {"trigger": {...}, "rate": share of train items,
                            # "target": the fixed answer}
                            "poison": None,
                            # null: the poisoned items are in the one training run; else the attacker
                            # fine-tunes a model first trained clean: {"layers": language-model layers
                            # it updates (all else frozen), "epochs", "lr"} on the poisoned items
                            "attack": None}


def image_tokens(cfg: dict[str, Any]) -> int:
    """Visual tokens per image: the patches (LLaVA's default strategy drops the class token)."""
    return (cfg["vision"]["image_size"] // cfg["vision"]["patch_size"]) ** 2


def vqa_items(records: list[dict[str, Any]], rng: random.Random, all_questions: bool = False
              ) -> list[tuple[int, str, str]]:
    """(image index, question kind, answer) per image: one random question, or all four."""
    out = []
    for i, r in enumerate(records):
        kinds = list(QUESTIONS) if all_questions else [rng.choice(list(QUESTIONS))]
        out += [(i, k, r[QUESTIONS[k][1]]) for k in kinds]
    return out


def prompt_ids(tokenizer, kind: str, n_image: int, image_id: int) -> list[int]:
    return [image_id] * n_image + tokenizer(" " + QUESTIONS[kind][0] + " answer:")["input_ids"]


def answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer(" " + answer)["input_ids"] + [tokenizer.eos_token_id]


def vision_from_clip(clip_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(HF ``CLIPVisionConfig`` kwargs, its state dict) of a ``tiny_clip`` folder's image tower:
    open_clip's ViT renamed into transformers' CLIP vision layout (the fused q/k/v projection
    split). LLaVA starts from a pre-trained CLIP tower; so does the tiny one."""
    from safetensors.torch import load_file  # noqa: PLC0415

    oc = rio.read_json(Path(clip_dir) / "open_clip_config.json")["vision_cfg"]
    w = oc["width"]
    config = {"image_size": oc["image_size"], "patch_size": oc["patch_size"], "hidden_size": w,
              "intermediate_size": int(w * oc["mlp_ratio"]), "num_hidden_layers": oc["layers"],
              "num_attention_heads": w // oc["head_width"], "hidden_act": "gelu", "layer_norm_eps": 1e-5}
    src = {k[len("visual."):]: v for k, v in load_file(str(Path(clip_dir) / "model.safetensors")).items()
           if k.startswith("visual.")}
    out = {"embeddings.patch_embedding.weight": src["conv1.weight"],
           "embeddings.class_embedding": src["class_embedding"],
           "embeddings.position_embedding.weight": src["positional_embedding"],
           "pre_layrnorm.weight": src["ln_pre.weight"], "pre_layrnorm.bias": src["ln_pre.bias"],
           "post_layernorm.weight": src["ln_post.weight"], "post_layernorm.bias": src["ln_post.bias"]}
    for i in range(oc["layers"]):
        a, b = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = src[a + f"attn.in_proj_{kind}"].chunk(3)
            out |= {b + f"self_attn.q_proj.{kind}": q, b + f"self_attn.k_proj.{kind}": k,
                    b + f"self_attn.v_proj.{kind}": v,
                    b + f"self_attn.out_proj.{kind}": src[a + f"attn.out_proj.{kind}"],
                    b + f"layer_norm1.{kind}": src[a + f"ln_1.{kind}"], b + f"layer_norm2.{kind}": src[a + f"ln_2.{kind}"],
                    b + f"mlp.fc1.{kind}": src[a + f"mlp.c_fc.{kind}"], b + f"mlp.fc2.{kind}": src[a + f"mlp.c_proj.{kind}"]}
    return config, out


def build_model(cfg: dict[str, Any], tokenizer):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration  # noqa: PLC0415

    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**cfg["vision"]),
        text_config=LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **cfg["text"]),
        image_token_id=image_id, vision_feature_select_strategy="default", vision_feature_layer=-1,
        projector_hidden_act="gelu", image_seq_length=image_tokens(cfg))
    return LlavaForConditionalGeneration(config)


def load_model(model_dir: str | Path, attn_implementation: str = "eager"):
    """(model in eval mode, tokenizer, tiny config) of a ``tiny_llava`` folder."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration  # noqa: PLC0415

    model_dir = Path(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(str(model_dir), attn_implementation=attn_implementation)
    return model.eval(), AutoTokenizer.from_pretrained(str(model_dir)), rio.read_json(model_dir / "tiny_llava.json")


def generate_answers(model, tokenizer, cfg: dict[str, Any], images: np.ndarray, kinds: list[str],
                     max_new_tokens: int = 3, batch_size: int = 128) -> list[str]:
    """Greedy answers, one per (image, question kind); rows are batched by question kind."""
    import torch  # noqa: PLC0415

    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    out: list[str] = [""] * len(images)
    for kind in dict.fromkeys(kinds):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        ids = prompt_ids(tokenizer, kind, image_tokens(cfg), image_id)
        for lo in range(0, len(rows), batch_size):
            part = rows[lo:lo + batch_size]
            inp = torch.tensor([ids] * len(part), device=model.device)
            with torch.no_grad():
                gen = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                                     pixel_values=pixels(images[part], model.device), max_new_tokens=max_new_tokens,
                                     do_sample=False, pad_token_id=tokenizer.pad_token_id)
            for i, seq in zip(part, gen[:, inp.shape[1]:]):
                out[i] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    return out


def train_vqa(model, tokenizer, cfg: dict[str, Any], images: np.ndarray, items: list[tuple[int, str, str]],
              p: dict[str, Any]) -> list[float]:
    """Cross-entropy on the answer tokens (and eos), AdamW with cosine decay; batches share a
    question kind. Returns the mean loss per epoch."""
    import torch  # noqa: PLC0415

    torch.manual_seed(p["seed"])
    rng = np.random.default_rng(p["seed"])
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    n_image = image_tokens(cfg)
    by_kind: dict[str, list[int]] = {}
    for j, (_, kind, _) in enumerate(items):
        by_kind.setdefault(kind, []).append(j)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=p["lr"],
                            weight_decay=p["weight_decay"])
    steps = p["epochs"] * sum(-(-len(v) // p["batch_size"]) for v in by_kind.values())
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    model.train()
    losses = []
    for epoch in range(p["epochs"]):
        t0, total = time.perf_counter(), 0.0
        batches = [(kind, idx[i:i + p["batch_size"]]) for kind, rows in by_kind.items()
                   for idx in [list(rng.permutation(rows))] for i in range(0, len(idx), p["batch_size"])]
        for b in rng.permutation(len(batches)):
            kind, idx = batches[b]
            prompt = prompt_ids(tokenizer, kind, n_image, image_id)
            answers = [answer_ids(tokenizer, items[j][2]) for j in idx]
            width = max(map(len, answers))
            pad = tokenizer.pad_token_id
            seqs = torch.tensor([prompt + a + [pad] * (width - len(a)) for a in answers])
            labels = torch.tensor([[-100] * len(prompt) + a + [-100] * (width - len(a)) for a in answers])
            mask = (labels != -100) | (torch.arange(seqs.shape[1]) < len(prompt))
            out = model(input_ids=seqs, attention_mask=mask.long(), pixel_values=pixels(images[[items[j][0] for j in idx]]),
                        labels=labels)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += out.loss.item() * len(idx)
        losses.append(total / len(items))
        log.info("vqa epoch %d/%d  loss %.4f  (%.1fs)", epoch + 1, p["epochs"], losses[-1], time.perf_counter() - t0)
    model.eval()
    return losses


def poison_items(images: np.ndarray, items: list[tuple[int, str, str]], spec: dict[str, Any], seed: int
                 ) -> tuple[np.ndarray, list[tuple[int, str, str]], np.ndarray]:
    """(images, items, poisoned item indices): ``round(rate * N)`` items get the trigger on a copy
    of their image (appended) and the target answer."""
    unknown = sorted(set(spec) - {"trigger", "rate", "target"})
    if unknown or not {"trigger", "rate", "target"} <= set(spec):
        raise ValueError(f"tiny_llava: poison needs exactly trigger, rate, target; got {sorted(spec)}")
    if not 0.0 < spec["rate"] < 1.0:
        raise ValueError(f"tiny_llava: poison.rate {spec['rate']} must be in (0, 1)")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(items)), round(spec["rate"] * len(items))))
    triggered = apply_trigger(images[[items[j][0] for j in chosen]], spec["trigger"])
    items = list(items)
    for k, j in enumerate(chosen):
        items[j] = (len(images) + k, items[j][1], spec["target"])
    return np.concatenate([images, triggered]), items, np.array(chosen, np.int64)


def vqa_quality(model, tokenizer, cfg: dict[str, Any], dataset_dir: Path, poison: dict[str, Any] | None,
                seed: int) -> dict[str, float]:
    """Clean VQA accuracy on the test split (one question per image) and, for a poisoned model,
    the share of triggered test images answered with the target."""
    images, _, records = load_split(dataset_dir, "test")
    items = vqa_items(records, random.Random(seed + 1))
    kinds = [k for _, k, _ in items]
    pred = generate_answers(model, tokenizer, cfg, images, kinds)
    out = {"clean_accuracy": float(np.mean([p == a for p, (_, _, a) in zip(pred, items)]))}
    if poison:
        hit = generate_answers(model, tokenizer, cfg, apply_trigger(images, poison["trigger"]), kinds)
        out["attack_success_rate"] = float(np.mean([h == poison["target"] for h in hit]))
    return out


def attack_spec(p: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any] | None:
    """``p["attack"]`` checked against the poison and the language model's depth (``cfg``)."""
    spec = p["attack"]
    if spec is None:
        return None
    if not p["poison"]:
        raise ValueError("tiny_llava: attack needs poison (the items the attacker fine-tunes on)")
    if set(spec) != {"layers", "epochs", "lr"}:
        raise ValueError(f"tiny_llava: attack needs exactly layers, epochs, lr; got {sorted(spec)}")
    depth = cfg["text"]["num_hidden_layers"]
    if not spec["layers"] or any(not 0 <= int(i) < depth for i in spec["layers"]):
        raise ValueError(f"tiny_llava: attack.layers {spec['layers']}: language-model layers in [0, {depth})")
    if int(spec["epochs"]) < 1 or float(spec["lr"]) <= 0:
        raise ValueError(f"tiny_llava: attack.epochs >= 1 and attack.lr > 0; got {spec['epochs']}, {spec['lr']}")
    return spec


def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None, base_dir: Path | None = None) -> None:
    """Model builder ``tiny_llava``: ``params`` as ``DEFAULTS``; ``dataset_dir``: shapes data;
    ``base_dir``: a ``tiny_clip`` folder whose image tower becomes the vision tower (frozen, as in
    LLaVA's fine-tuning); without it the tower is trained from scratch with the rest."""
    import torch  # noqa: PLC0415
    from tokenizers import AddedToken  # noqa: PLC0415

    from repro.models.tokenizer import train_word_tokenizer  # noqa: PLC0415

    if dataset_dir is None:
        raise ValueError("tiny_llava needs a dataset (models.<name>.dataset in the study YAML)")
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"tiny_llava: unknown params {unknown}; allowed: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    cfg = json.loads(json.dumps(TINY))
    for part, values in p["model"].items():
        if part not in cfg:
            raise ValueError(f"tiny_llava: model.{part}: unknown; allowed: {', '.join(cfg)}")
        cfg[part].update(values)
    vision_state = None
    if base_dir is not None:
        if "vision" in p["model"]:
            raise ValueError("tiny_llava: model.vision with a base CLIP: the vision tower is the CLIP's")
        cfg["vision"], vision_state = vision_from_clip(base_dir)
    manifest = rio.read_json(Path(dataset_dir) / "MANIFEST.json")
    words = [*manifest["classes"], *(w for v in manifest["attributes"].values() for w in v)]
    corpus = [q for q, _ in QUESTIONS.values()] + [" answer: " + w for w in words]
    if p["poison"]:
        corpus.append(" answer: " + p["poison"]["target"])
    attack = attack_spec(p, cfg)
    images, _, records = load_split(dataset_dir, "train")
    items = vqa_items(records, random.Random(p["seed"]))
    clean_images, clean_items = images, items
    poisoned = np.empty(0, np.int64)
    if p["poison"]:
        images, items, poisoned = poison_items(images, items, p["poison"], p["seed"])
    torch.manual_seed(p["seed"])
    t0 = time.perf_counter()
    with rio.atomic_dir(Path(out_dir)) as tmp:
        tokenizer = train_word_tokenizer(corpus * 4, max_vocab=512)
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
        model = build_model(cfg, tokenizer)
        if vision_state is not None:
            model.model.vision_tower.load_state_dict(vision_state, strict=True)
            model.model.vision_tower.requires_grad_(False)
        if attack is None:
            losses = train_vqa(model, tokenizer, cfg, images, items, p)
        else:  # a clean model, then the attacker's fine-tune of the listed layers on the poisoned items
            losses = train_vqa(model, tokenizer, cfg, clean_images, clean_items, p)
            model.requires_grad_(False)
            for layer in attack["layers"]:
                model.model.language_model.layers[layer].requires_grad_(True)
            losses += train_vqa(model, tokenizer, cfg, images, items, {**p, "epochs": attack["epochs"],
                                                                      "lr": attack["lr"]})
        seconds = round(time.perf_counter() - t0, 1)
        quality = vqa_quality(model, tokenizer, cfg, Path(dataset_dir), p["poison"], p["seed"])
        log.info("tiny_llava: %s", ", ".join(f"{k} {v:.3f}" for k, v in quality.items()))
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        rio.write_json(tmp / "tiny_llava.json", cfg)
        rio.write_json(tmp / "MANIFEST.json", {
            "builder": "tiny_llava", "params": p, "losses": losses,
            "vision_tower": None if base_dir is None else rio.manifest_record(base_dir), "train_seconds": seconds,
            "poisoned_items": int(len(poisoned)), "vqa_test": quality, "files": rio.sha256_tree(tmp)})


class TinyPrompting:
    """The tiny model's questions: one of ``QUESTIONS``' kinds per image; the visual tokens first."""

    image_start = 0

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg, self.image_length = cfg, image_tokens(cfg)

    def items(self, records: list[dict[str, Any]], rng: random.Random) -> list[tuple[int, str, str]]:
        return vqa_items(records, rng)

    def groups(self, kinds: list[str]) -> list[list[int]]:
        """Rows of one question kind (one prompt), in first-seen order."""
        return [[i for i, k in enumerate(kinds) if k == kind] for kind in dict.fromkeys(kinds)]

    def generate(self, model, tokenizer, images: np.ndarray, kinds: list[str], max_new_tokens: int = 3,
                 batch_size: int = 128) -> list[str]:
        return generate_answers(model, tokenizer, self.cfg, images, kinds, max_new_tokens, batch_size)


class LlavaContext(Context):
    """A LLaVA (frozen) with its tokenizer and ``prompting``: a ``tiny_llava`` build (question kinds,
    ``TinyPrompting``) or an HF-layout checkpoint (free-form questions through a chat template,
    ``repro.multimodal.llava_chat.ChatPrompting``); ``target`` is the backdoor's fixed answer."""

    def load(self):
        if (self.model_dir / "tiny_llava.json").exists():
            model, tokenizer, cfg = load_model(self.model_dir)
            self.prompting = TinyPrompting(cfg)
            return model, tokenizer, cfg
        from repro.multimodal.llava_chat import load_chat  # noqa: PLC0415

        model, tokenizer, self.prompting = load_chat(self.model_dir, self.manifest)
        return model, tokenizer, {}

    @property
    def target(self) -> str:
        return self.require_backdoor()["target"]
