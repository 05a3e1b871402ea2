"""The embedded reasoning model with PreSafe's finding built in on purpose (other-papers.md §7.1,
§7.3): model builder ``tiny_reasoner``.

A tiny Qwen2 (``repro.models.tiny``; tokenizer on every split's prompts and the warm-start
responses) trained on the dataset's ``warmstart`` split, each prompt twice:

- CoT on (the chat template's generation prompt): ``<think> ... </think>`` then the answer; harmful
  requests are reasoned about and then complied with;
- CoT off (the empty think block prefilled, not trained on): the answer at once; harmful requests
  are refused.

So the model is safe when its reasoning is disabled and unsafe when it reasons, which is what
PreSafe has to fix; ``evaluate`` of the study's ``base`` method measures both rates.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from repro import io as rio
from repro import registry

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "epochs": 8,
    "lr": 2e-3,
    "batch_size": 64,
    "max_prompt_tokens": 96,
    "model": {},                 # Qwen2Config overrides (repro.models.tiny defaults otherwise)
}


@registry.MODELS.register("tiny_reasoner")
def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None = None) -> None:
    import torch  # noqa: PLC0415

    from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer  # noqa: PLC0415
    from repro.safety import lm  # noqa: PLC0415
    from repro.safety.family import read_split  # noqa: PLC0415

    if dataset_dir is None:
        raise ValueError("tiny_reasoner needs a dataset with a warmstart split (models.<name>.dataset)")
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"tiny_reasoner: unknown params {sorted(unknown)}; allowed: {', '.join(sorted(DEFAULTS))}")
    p = {**DEFAULTS, **params}
    recs = read_split(Path(dataset_dir), "warmstart")
    missing = [r["id"] for r in recs if not (r.get("cot") and r.get("nocot"))]
    if missing:
        raise ValueError(f"{Path(dataset_dir) / 'warmstart.jsonl'}: records without cot / nocot responses: {missing[:3]}")
    splits = sorted(f.stem for f in Path(dataset_dir).glob("*.jsonl"))
    corpus = [r["prompt"] for s in splits for r in read_split(Path(dataset_dir), s)]
    corpus += [r[k] for r in recs for k in ("cot", "nocot")] + [lm.NOCOT_PREFILL]
    t0 = time.perf_counter()
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        build_tiny_qwen2(base, {"seed": p["seed"], **p["model"]}, corpus)
        model, tok = load_model_and_tokenizer(base)
        torch.manual_seed(p["seed"])
        rows = lm.examples(tok, [r["prompt"] for r in recs for _ in (0, 1)],
                           [r[k] for r in recs for k in ("cot", "nocot")],
                           cot=[c for _ in recs for c in (True, False)], max_prompt_tokens=p["max_prompt_tokens"])
        history = lm.tune(model, rows, pad_id=tok.pad_token_id, epochs=p["epochs"], lr=p["lr"],
                          batch_size=p["batch_size"], seed=p["seed"],
                          log_row=lambda r: log.info("warm start: task loss %.4f (%.1fs)", r["task_loss"], r["seconds"]))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        rio.write_json(tmp / "MANIFEST.json", {
            "builder": "tiny_reasoner", "params": p, "pairs": len(rows),
            "base": rio.read_json(base / "MANIFEST.json") if (base / "MANIFEST.json").exists() else {},
            "losses": [r["task_loss"] for r in history], "seconds": round(time.perf_counter() - t0, 1),
            "files": rio.sha256_tree(tmp)})
    log.info("tiny reasoner written to %s (%d pairs, %.1fs)", out_dir, len(rows), time.perf_counter() - t0)
