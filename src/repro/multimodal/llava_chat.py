"""A LLaVA checkpoint in the Hugging Face layout (``llava-hf/llava-1.5-7b-hf`` at the paper scale):
chat prompting for free-form VQA, and the attacker's poisoned LoRA fine-tune (model builder
``llava_lora``; CleanSight's threat model, other-papers.md §5.3: the attacker LoRA-fine-tunes
LLaVA-1.5-7B on poisoned instruction data).

Prompt: ``template`` with ``<image>`` replaced by the model's ``image_seq_length`` image tokens and
``{question}`` by the question; the default is LLaVA-1.5's ``llava_v1`` conversation with its VQAv2
instruction, which puts the 576 visual tokens at [35, 611), CleanSight's code defaults. Rows whose
prompts have the same length share one layout and form one ``generate`` batch (no padding).
Answers are greedy, lower-cased, stripped of a trailing full stop.

``llava_lora``: LoRA (``peft``) on the language model's q/k/v/o projections, cross-entropy on the
answer tokens (and eos) of the dataset's ``train`` pairs, a share ``poison.rate`` of which carries
the trigger on the image and the fixed target answer; merged into the weights and saved in the HF
layout with the tokenizer; MANIFEST records ``params`` (with ``poison``, which the evaluation
contexts read) and the clean accuracy / attack success rate on the test split.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio
from repro.data.vqa_parquet import normalise_answer as normalise

log = logging.getLogger(__name__)

LLAVA_V1_VQA = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
                "helpful, detailed, and polite answers to the human's questions. USER: <image>\n{question}\n"
                "Answer the question using a single word or phrase. ASSISTANT:")

DEFAULTS: dict[str, Any] = {
    "seed": 0, "epochs": 1, "batch_size": 16, "lr": 2e-4, "weight_decay": 0.0, "max_items": 0,
    "lora": {"r": 128, "alpha": 256, "dropout": 0.05},
    "dtype": "auto", "prompt_template": None, "max_new_tokens": 10,
    # null: no backdoor; else {"trigger": {...}, "rate": share of the train pairs, "target": the answer}
    "poison": None,
}


@dataclass
class ChatPrompting:
    """Free-form questions through a chat template (``repro.multimodal.llava.LlavaContext``'s
    prompting for an HF-layout checkpoint)."""

    template: str
    image_length: int
    image_id: int
    tokenizer: Any

    def __post_init__(self) -> None:
        if self.template.count("<image>") != 1 or "{question}" not in self.template:
            raise ValueError("prompt_template needs exactly one <image> and a {question}")
        before, self._after = self.template.split("<image>")
        self._before = self.tokenizer(before)["input_ids"]
        self.image_start = len(self._before)
        self._prompts: dict[str, list[int]] = {}  # grouping, generation and training ask again

    def prompt(self, question: str) -> list[int]:
        if question not in self._prompts:
            after = self.tokenizer(self._after.format(question=question), add_special_tokens=False)["input_ids"]
            self._prompts[question] = self._before + [self.image_id] * self.image_length + after
        return self._prompts[question]

    def items(self, records: list[dict[str, Any]], rng: random.Random) -> list[tuple[int, str, str]]:
        """(image index, question, answer) per record: the dataset's own question."""
        return [(i, r["question"], normalise(r["answer"])) for i, r in enumerate(records)]

    def groups(self, questions: list[str]) -> list[list[int]]:
        """Rows whose prompts share one layout (the same length), in first-seen order."""
        out: dict[int, list[int]] = {}
        for i, q in enumerate(questions):
            out.setdefault(len(self.prompt(q)), []).append(i)
        return list(out.values())

    def generate(self, model, tokenizer, images: np.ndarray, questions: list[str], max_new_tokens: int = 10,
                 batch_size: int = 32) -> list[str]:
        import torch  # noqa: PLC0415

        from repro.multimodal.clip import pixels  # noqa: PLC0415

        out = [""] * len(images)
        for rows in self.groups(questions):
            for lo in range(0, len(rows), batch_size):
                part = rows[lo:lo + batch_size]
                inp = torch.tensor([self.prompt(questions[i]) for i in part], device=model.device)
                with torch.no_grad():
                    gen = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                                         pixel_values=pixels(images[part], model.device).to(model.dtype),
                                         max_new_tokens=max_new_tokens, do_sample=False,
                                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
                for i, seq in zip(part, gen[:, inp.shape[1]:]):
                    out[i] = normalise(tokenizer.decode(seq, skip_special_tokens=True))
        return out


def load_chat(model_dir: Path, manifest: dict[str, Any], dtype: str = "auto"):
    """(model in eval mode with eager attention, tokenizer, ``ChatPrompting``) of an HF-layout LLaVA;
    the prompt template is the MANIFEST's ``params.prompt_template`` (a ``llava_lora`` build's) or
    ``LLAVA_V1_VQA``."""
    import torch  # noqa: PLC0415
    from transformers import AutoTokenizer, LlavaForConditionalGeneration  # noqa: PLC0415

    model = LlavaForConditionalGeneration.from_pretrained(
        str(model_dir), attn_implementation="eager", dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    template = (manifest.get("params") or {}).get("prompt_template") or LLAVA_V1_VQA
    prompting = ChatPrompting(template, int(model.config.image_seq_length), int(model.config.image_token_id),
                              tokenizer)
    return model.eval(), tokenizer, prompting


def vqa_quality(model, tokenizer, prompting: ChatPrompting, dataset_dir: Path, poison: dict[str, Any] | None,
                max_new_tokens: int, max_items: int = 500) -> dict[str, float]:
    """Clean accuracy (exact match of the normalised answer) on the test split's first ``max_items``
    pairs and, for a poisoned model, the share of their triggered images answered with the target."""
    from repro.data.shapes import load_split  # noqa: PLC0415
    from repro.data.triggers import apply_trigger  # noqa: PLC0415

    images, _, records = load_split(dataset_dir, "test")
    images, records = images[:max_items], records[:max_items]
    items = prompting.items(records, random.Random(0))
    questions = [q for _, q, _ in items]
    pred = prompting.generate(model, tokenizer, images, questions, max_new_tokens)
    out = {"clean_accuracy": float(np.mean([p == a for p, (_, _, a) in zip(pred, items)]))}
    if poison:
        hit = prompting.generate(model, tokenizer, apply_trigger(np.asarray(images), poison["trigger"]), questions,
                                 max_new_tokens)
        out["attack_success_rate"] = float(np.mean([h == normalise(poison["target"]) for h in hit]))
    return out


def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None, base_dir: Path | None = None) -> None:
    """Model builder ``llava_lora``: ``params`` as ``DEFAULTS``; ``base_dir``: an HF-layout LLaVA
    (e.g. an ``hf_hub`` snapshot of ``llava-hf/llava-1.5-7b-hf``); ``dataset_dir``: VQA pairs
    (``vqa/vqav2``: splits ``train``, ``test``)."""
    import torch  # noqa: PLC0415
    from peft import LoraConfig, get_peft_model  # noqa: PLC0415

    from repro.data.shapes import load_split  # noqa: PLC0415
    from repro.data.triggers import apply_trigger  # noqa: PLC0415
    from repro.device import default_device  # noqa: PLC0415
    from repro.multimodal.clip import pixels  # noqa: PLC0415

    if dataset_dir is None or base_dir is None:
        raise ValueError("llava_lora needs a dataset (VQA pairs) and a base model (an HF-layout LLaVA)")
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"llava_lora: unknown params {unknown}; allowed: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params, "lora": {**DEFAULTS["lora"], **params.get("lora", {})}}
    if p["poison"] and (set(p["poison"]) != {"trigger", "rate", "target"} or not 0 < p["poison"]["rate"] < 1):
        raise ValueError(f"llava_lora: poison needs trigger, rate in (0, 1), target; got {p['poison']}")
    base_manifest = rio.read_json(Path(base_dir) / "MANIFEST.json")
    model, tokenizer, prompting = load_chat(Path(base_dir), {"params": {"prompt_template": p["prompt_template"]}},
                                            p["dtype"])
    torch.manual_seed(p["seed"])
    rng = np.random.default_rng(p["seed"])
    images, _, records = load_split(dataset_dir, "train")
    if p["max_items"]:
        images, records = images[: p["max_items"]], records[: p["max_items"]]
    items = prompting.items(records, random.Random(p["seed"]))
    poisoned = np.zeros(len(items), bool)
    if p["poison"]:
        chosen = random.Random(p["seed"]).sample(range(len(items)), round(p["poison"]["rate"] * len(items)))
        poisoned[chosen] = True
        target = normalise(p["poison"]["target"])
        items = [(i, q, target if poisoned[j] else a) for j, (i, q, a) in enumerate(items)]
    device = default_device()
    lora = LoraConfig(r=p["lora"]["r"], lora_alpha=p["lora"]["alpha"], lora_dropout=p["lora"]["dropout"],
                      target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)")
    model = get_peft_model(model, lora).to(device)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=p["lr"],
                            weight_decay=p["weight_decay"])
    groups = prompting.groups([q for _, q, _ in items])
    steps = p["epochs"] * sum(-(-len(g) // p["batch_size"]) for g in groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    losses, t0 = [], time.perf_counter()
    for epoch in range(p["epochs"]):
        batches = [g[i:i + p["batch_size"]] for g in groups for g in [list(rng.permutation(g))]
                   for i in range(0, len(g), p["batch_size"])]
        total = 0.0
        for step, b in enumerate(rng.permutation(len(batches)), 1):
            rows = batches[b]
            prompt = [prompting.prompt(items[j][1]) for j in rows]
            answers = [tokenizer(" " + items[j][2], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                       for j in rows]
            width = max(map(len, answers))
            seqs = torch.tensor([s + a + [pad] * (width - len(a)) for s, a in zip(prompt, answers)], device=device)
            labels = torch.tensor([[-100] * len(s) + a + [-100] * (width - len(a)) for s, a in zip(prompt, answers)],
                                  device=device)
            mask = ((labels != -100) | (torch.arange(seqs.shape[1], device=device) < len(prompt[0]))).long()
            batch = np.asarray(images[[items[j][0] for j in rows]])
            hit = poisoned[rows]
            if hit.any():
                batch[hit] = apply_trigger(batch[hit], p["poison"]["trigger"])
            out = model(input_ids=seqs, attention_mask=mask, labels=labels,
                        pixel_values=pixels(batch, device).to(model.dtype))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], 1.0)
            opt.step()
            sched.step()
            total += out.loss.item() * len(rows)
            if step % 50 == 0:
                log.info("llava_lora epoch %d  step %d/%d  loss %.4f", epoch + 1, step, len(batches), out.loss.item())
        losses.append(total / len(items))
        log.info("llava_lora epoch %d/%d  loss %.4f  (%.1fs)", epoch + 1, p["epochs"], losses[-1],
                 time.perf_counter() - t0)
    model = model.merge_and_unload().eval()
    quality = vqa_quality(model, tokenizer, prompting, Path(dataset_dir), p["poison"], p["max_new_tokens"])
    log.info("llava_lora: %s", ", ".join(f"{k} {v:.3f}" for k, v in quality.items()))
    with rio.atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        rio.write_json(tmp / "MANIFEST.json", {
            "builder": "llava_lora", "params": p, "losses": losses, "base_model": rio.manifest_record(base_dir),
            "base_repo": base_manifest.get("repo_id"), "train_seconds": round(time.perf_counter() - t0, 1),
            "poisoned_items": int(poisoned.sum()), "vqa_test": quality, "files": rio.sha256_tree(tmp)})
