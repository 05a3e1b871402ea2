"""Class texts written by a language model: BDetCLIP's benign descriptions and class-unrelated
sentences for a paper-scale image dataset that has no official resources (Food-101, Caltech-101;
other-papers.md §3.1-3.2: the authors generated them once with GPT-4 from prompts not published).

The model is the dataset entry's ``job.generator`` (an open instruct LLM, a ``get_model`` folder in
the HF layout); ``repro.data.wds_images`` calls ``generate`` when its ``class_texts`` says
``generate:`` and writes the result to ``class_texts.json``, the file the official resources fill
for ImageNet, so the dataset's MANIFEST versions the texts with the images. ``spec``::

    descriptions: 7        # benign descriptions per class (the official ImageNet file has 7)
    benign_prompt: ...     # [I] {c}: the class name, {n}: descriptions
    unrelated_prompt: ...  # [I] {c}: the class name
    temperature: 0.7       # [I] sampling of every request; the seed of round r is seed + r
    top_p: 0.95
    max_new_tokens: 256
    seed: 0
    max_samples: 4         # requests per class (and kind) before the class is reported short
    backend: auto          # vllm where it imports and a GPU is visible, else transformers
    batch_size: 32         # transformers: prompts per generate call

Each answer is split into lines; numbering ("3. ", "3) "), bullets and quotes are stripped, and
empty lines or headers (ending in ":") dropped, as the fork strips the official file's numbering.
A class keeps its first ``descriptions`` distinct lines over up to ``max_samples`` answers (its
first line for the unrelated sentence); a class still short after that fails the dataset, naming it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "descriptions": 7,
    # [I] the GPT-4 prompts of the paper were not published
    "benign_prompt": ("Describe what a photo of a {c} shows, in {n} short sentences about its visual "
                      "features. Write one sentence per line and nothing else."),
    "unrelated_prompt": ("Write one short sentence about an everyday topic that has nothing to do with "
                         "{c}. Write only the sentence."),
    "temperature": 0.7,
    "top_p": 0.95,
    "max_new_tokens": 256,
    "seed": 0,
    "max_samples": 4,
    "backend": "auto",
    "batch_size": 32,
}
BACKENDS = ("auto", "vllm", "transformers")

_NUMBERING = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s*")

#: prompts (chat-formatted texts) and a round's seed -> one answer per prompt
Generate = Callable[[list[str], int], list[str]]


def parse_lines(text: str) -> list[str]:
    """The sentences of one answer: one per line, numbering, bullets and quotes stripped, empty
    lines and headers (ending in ":") dropped."""
    out = []
    for line in text.splitlines():
        line = _NUMBERING.sub("", line).replace('"', "").strip()
        if line and not line.endswith(":"):
            out.append(line)
    return out


def check(spec: dict[str, Any]) -> dict[str, Any]:
    """``DEFAULTS`` under ``spec``, checked."""
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"class_texts.generate: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}")
    p = {**DEFAULTS, **spec}
    if p["backend"] not in BACKENDS:
        raise ValueError(f"class_texts.generate.backend: {p['backend']!r}; allowed: {', '.join(BACKENDS)}")
    for key in ("descriptions", "max_samples", "max_new_tokens", "batch_size"):
        if not isinstance(p[key], int) or p[key] < 1:
            raise ValueError(f"class_texts.generate.{key}: {p[key]!r} must be a positive integer")
    return p


def collect(generate_fn: Generate, classes: list[str], prompts: list[str], need: int, p: dict[str, Any],
            what: str) -> dict[str, list[str]]:
    """class -> its first ``need`` distinct lines over up to ``max_samples`` rounds; each round asks
    again for the classes still short (``prompts`` aligned with ``classes``)."""
    got: dict[str, list[str]] = {c: [] for c in classes}
    prompt_of = dict(zip(classes, prompts))
    for r in range(p["max_samples"]):
        pending = [c for c in classes if len(got[c]) < need]
        if not pending:
            break
        for c, answer in zip(pending, generate_fn([prompt_of[c] for c in pending], p["seed"] + r)):
            for line in parse_lines(answer):
                if len(got[c]) < need and line not in got[c]:
                    got[c].append(line)
        log.info("class texts (%s): round %d, %d of %d classes complete", what, r + 1,
                 sum(len(v) >= need for v in got.values()), len(classes))
    short = [c for c in classes if len(got[c]) < need]
    if short:
        raise ValueError(f"class_texts.generate: {len(short)} classes have fewer than {need} {what} after "
                         f"{p['max_samples']} answers each, e.g. {short[:5]}; raise max_samples or "
                         f"max_new_tokens, or reword the prompt")
    return got


def generate(model_dir: Path, classes: list[str], spec: dict[str, Any]) -> dict[str, Any]:
    """``{"benign": class -> descriptions, "unrelated": class -> sentence, "generator": what wrote
    them}`` from the LLM in ``model_dir``."""
    from repro import io as rio  # noqa: PLC0415

    p = check(spec)
    backend = p["backend"] if p["backend"] != "auto" else ("vllm" if _vllm_usable() else "transformers")
    fn, chat = (_vllm if backend == "vllm" else _transformers)(Path(model_dir), p)
    benign = collect(fn, classes, [chat(p["benign_prompt"].format(c=c, n=p["descriptions"])) for c in classes],
                     p["descriptions"], p, "descriptions")
    unrelated = collect(fn, classes, [chat(p["unrelated_prompt"].format(c=c)) for c in classes], 1, p,
                        "unrelated sentences")
    return {"benign": benign, "unrelated": {c: v[0] for c, v in unrelated.items()},
            "generator": {"model": rio.manifest_record(model_dir), "backend": backend, "params": p}}


def _vllm_usable() -> bool:
    import importlib.util  # noqa: PLC0415

    import torch  # noqa: PLC0415

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def _chat(tokenizer) -> Callable[[str], str]:
    """A user turn in the model's chat format, ready for its answer (the plain prompt without one)."""
    if not getattr(tokenizer, "chat_template", None):
        return lambda prompt: prompt
    return lambda prompt: tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                        add_generation_prompt=True)


def _transformers(model_dir: Path, p: dict[str, Any]) -> tuple[Generate, Callable[[str], str]]:
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    from repro.device import default_device  # noqa: PLC0415

    device = default_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(device).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token

    def fn(texts: list[str], seed: int) -> list[str]:
        torch.manual_seed(seed)
        out = []
        for lo in range(0, len(texts), p["batch_size"]):
            enc = tok(texts[lo:lo + p["batch_size"]], return_tensors="pt", padding=True,
                      add_special_tokens=False).to(device)
            with torch.no_grad():
                ids = model.generate(**enc, do_sample=True, temperature=p["temperature"], top_p=p["top_p"],
                                     max_new_tokens=p["max_new_tokens"], pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return out

    return fn, _chat(tok)


def _vllm(model_dir: Path, p: dict[str, Any]) -> tuple[Generate, Callable[[str], str]]:  # GPU only
    from vllm import LLM, SamplingParams  # noqa: PLC0415  (envs/vllm.yaml)

    llm = LLM(model=str(model_dir), seed=p["seed"])

    def fn(texts: list[str], seed: int) -> list[str]:
        params = SamplingParams(temperature=p["temperature"], top_p=p["top_p"], max_tokens=p["max_new_tokens"],
                                seed=seed)
        return [o.outputs[0].text for o in llm.generate(texts, params)]

    return fn, _chat(llm.get_tokenizer())
