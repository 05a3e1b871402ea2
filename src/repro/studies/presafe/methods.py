"""PreSafe's tuners (``registry.SAFETY_TUNERS``, family ``lm_safety``; other-papers.md §7.2, §7.4).

- ``base``: nothing trained (the reasoning model as it is).
- ``safety_sft``: Stage 2's loss ``L_task + lambda * L_align`` on the dataset's ``train`` split.
  ``L_task`` (SFT, §7.2): the refusal ``refusal_text`` for harmful prompts, given at once (PreSafe's
  path A: no think block), and the model's own greedy CoT-on response for the other prompts.
  ``L_align`` (``align_weight`` lambda > 0; §7.4): the Safety-Head on the last prompt token's
  last-layer state against the frozen Safety-Judge's label of the prompt (the judge distilled from
  the CoT-disabled model; ``safety_judge/`` beside the base model). lambda = 0 is plain safety SFT.
  Which prompts are harmful for ``L_task`` comes from the data (the paper's curated harmful and
  benign query sets, §7.4 [S]); the judge's labels feed only ``L_align``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseParams:
    """``base`` takes no params."""


def base(model, tok, **_: Any):
    """Nothing trained: evaluate the base model."""
    from repro.safety.family import Tuned  # noqa: PLC0415

    return Tuned(info={"trained": False})


base.Params = BaseParams
base.fit = base


@dataclass(frozen=True)
class SFTParams:
    align_weight: float = 0.0        # lambda of L_align; 0: plain safety SFT, no Safety-Head
    judge_labels: str = "hard"       # [I] hard (judge probability > 0.5) or soft (the probability)
    refusal_text: str = "I'm sorry, but I cannot help with that."
    own_traces: bool = True          # benign targets: the model's own CoT-on responses (§7.2)

    def __post_init__(self) -> None:
        if self.align_weight < 0 or self.judge_labels not in ("hard", "soft") or not self.refusal_text:
            raise ValueError(f"need align_weight >= 0, judge_labels in (hard, soft), a refusal_text; got {self}")


def safety_sft(model, tok, *, dataset_dir: Path, model_dir: Path, params: SFTParams, cfg, seed: int,
               log_row: Callable[[dict], None]):
    """The module docstring's Stage 2 on ``model`` (``cfg``: ``repro.safety.family.TrainConfig``)."""
    import numpy as np  # noqa: PLC0415

    import repro.rl.plugin  # noqa: F401, PLC0415  (the full / lora fine-tuning items)
    from repro import registry  # noqa: PLC0415
    from repro.safety import lm  # noqa: PLC0415
    from repro.safety.family import Tuned, read_split  # noqa: PLC0415
    from repro.studies.presafe.judge import JUDGE_DIR, SafetyJudge  # noqa: PLC0415

    recs = read_split(dataset_dir, "train")
    prompts = [r["prompt"] for r in recs]
    harmful = np.array([r["kind"] == "harmful" for r in recs])
    if params.own_traces:
        ids = lm.encode_prompts(tok, [p for p, h in zip(prompts, harmful) if not h], True, cfg.max_prompt_tokens)
        it = iter(lm.generate_with(cfg.generation, model, tok, model_dir, ids, max_new_tokens=cfg.max_new_tokens,
                                   batch_size=cfg.gen_batch_size, engine=cfg.engine))
        own = [params.refusal_text if h else next(it) for h in harmful]
    else:
        missing = [r["id"] for r, h in zip(recs, harmful) if not h and not r.get("response")]
        if missing:
            raise ValueError(f"{dataset_dir}/train.jsonl: own_traces is false but records {missing[:3]} have no response")
        own = [params.refusal_text if h else r["response"] for r, h in zip(recs, harmful)]
    info: dict[str, Any] = {"n_train": len(recs), "n_harmful": int(harmful.sum())}
    labels, head = None, None
    if params.align_weight > 0:
        judge = SafetyJudge.load(Path(model_dir) / JUDGE_DIR)
        prob = judge.predict(prompts)
        labels = (prob > 0.5).astype(float) if params.judge_labels == "hard" else prob
        info["judge_unsafe_pct"] = 100 * float((prob > 0.5).mean())
        info["judge_agreement_with_kind_pct"] = 100 * float(((prob > 0.5) == harmful).mean())
        del judge
        head = lm.SafetyHead(model.config.hidden_size).to(next(model.parameters()).device)
    rows = lm.examples(tok, prompts, own, labels=labels, max_prompt_tokens=cfg.max_prompt_tokens)
    tuned = registry.FINETUNING.get(cfg.finetune)(
        model, tok, registry.FINETUNING.meta(cfg.finetune)["params"](**cfg.finetune_params))
    history = lm.tune(tuned.module, rows, pad_id=tok.pad_token_id, epochs=cfg.epochs, lr=cfg.lr,
                      batch_size=cfg.batch_size, seed=seed, head=head, align_weight=params.align_weight,
                      micro_batch_size=cfg.micro_batch_size or None, params=tuned.trainable(), log_row=log_row)
    info["final_losses"] = history[-1] if history else {}
    return Tuned(model=tuned, head=head, info=info)


safety_sft.Params = SFTParams
safety_sft.fit = safety_sft
