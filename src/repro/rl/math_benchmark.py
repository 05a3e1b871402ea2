"""The ``math`` benchmark of the agentic-RL family and its embedded warm start.

Imported by the plugins of the math studies (KPO, Dr. MAS); registers

- ``BENCHMARKS["math"]``: single-step episodes of ``repro.envs.math.MathBatchEnv`` (the prompt is
  the question plus the study's answer instruction, ``env.instruction``; the whole response is
  the action; valid = the verifier finds an answer in it);
- ``DATASETS["math/embedded"]`` (``repro.data.math_embedded``) and ``DATASETS["math/dapo"]``
  (``repro.data.math_dapo``);
- ``MODELS["tiny_qwen2_math"]``: a tiny Qwen2 with a digit-level tokenizer, warm-started by SFT
  on the train split's worked solutions (the embedded counterpart of an instruct model that can
  already do some of the problems).

Splits: ``train``, ``valid`` (train-time validation) and the evaluation sets: ``test``
(embedded) or the paper's six (``aime24``, ``aime25``, ``amc23``, ``math500``, ``minerva``,
``olympiad``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import registry
from repro.envs import math as menv
from repro.data import math_dapo  # noqa: F401  (registers math/dapo)
from repro.data import math_embedded  # noqa: F401  (registers math/embedded)
from repro.rl import prompts
from repro.rl.benchmarks import Benchmark

log = logging.getLogger(__name__)

PAPER_EVAL_SPLITS = ("aime24", "aime25", "amc23", "math500", "minerva", "olympiad")


@dataclass(frozen=True)
class MathBenchmark(Benchmark):
    """The environment's observation is the whole user prompt; no history, no action list."""

    def prompt(self, obs: str, admissible: list[str], task: str, memory: prompts.Memory, opts) -> str:
        return obs


def _make(dataset_dir, split, *, workers, max_steps, seed, slots, **env):
    return menv.MathBatchEnv(dataset_dir, split, **env)


def _games(dataset_dir, split, **env):
    return menv.MathBatchEnv(dataset_dir, split, **env).list_games()


def _parse(text: str, require_think: bool) -> tuple[str, bool]:
    """The whole response is the action; it is valid when it states an answer."""
    return text, menv.extract_answer(text) is not None


def _no_expert(*args, **kwargs):
    raise NotImplementedError("the math benchmark has no expert episodes; its warm start "
                              "(builder tiny_qwen2_math) learns from the train split's worked solutions")


registry.BENCHMARKS.register("math")(MathBenchmark(
    name="math", train_split="train", val_split="valid", eval_splits=("test", "valid", "train") + PAPER_EVAL_SPLITS,
    make=_make, list_games=_games, task_text=lambda obs: obs, templates={}, observation_filters={},
    parser=_parse, expert_episodes=_no_expert,
))


# --- embedded warm start ---------------------------------------------------------------------------

WARMSTART_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "instruction": "hash",        # the answer instruction of the prompts (MathBatchEnv)
    "sft_epochs": 4,
    "sft_lr": 2e-3,
    "sft_batch_size": 64,
    "sft_micro_batch_size": 16,   # the same gradient over length-sorted chunks: 18-28% less time
                                  # per step than whole batches (docs/perf/bench_sft_micro.md)
    "max_prompt_tokens": 96,
    "model": {},                  # Qwen2Config overrides (repro.models.tiny defaults otherwise)
}


def solution_pairs(env: menv.MathBatchEnv, train: list[dict[str, Any]], params: dict[str, Any]) -> list[tuple[str, str]]:
    """(prompt, worked solution) of every train problem: the single-turn warm start's SFT data."""
    return [(env.prompt(q), q["solution"]) for q in train]


def build_warmstart(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None,
                    pairs_fn=solution_pairs, builder: str = "tiny_qwen2_math") -> None:
    """Tokenizer on every split's text (as a pretrained tokenizer knows the words of any problem),
    a fresh tiny Qwen2, SFT on the train split's (prompt, response) pairs ``pairs_fn(env, train,
    params)``: by default (question + instruction, worked solution); a multi-agent team's builder
    passes its roles' pairs."""
    from repro.rl.sft import warm_start_tiny  # noqa: PLC0415

    if dataset_dir is None:
        raise ValueError(f"{builder} needs a dataset (models.<name>.dataset in the study YAML)")
    p = {**WARMSTART_DEFAULTS, **params}
    env = menv.MathBatchEnv(dataset_dir, "train", instruction=p["instruction"])
    train = list(env.problems().values())
    missing = [q["id"] for q in train if not q.get("solution")]
    if missing:
        raise ValueError(f"{menv.split_file(dataset_dir, 'train')}: problems without a worked solution "
                         f"(needed by {builder}): {missing[:3]}")
    pairs = pairs_fn(env, train, p)
    texts = [q["question"] for split in sorted(f.stem for f in Path(dataset_dir).glob("*.jsonl"))
             for q in menv.read_problems(dataset_dir, split)]
    warm_start_tiny(out_dir, pairs, texts, p, {"builder": builder, "params": p, "demonstrations": len(pairs)})
    log.info("warm-started math model written to %s (%d worked solutions)", out_dir, len(pairs))


registry.MODELS.register("tiny_qwen2_math")(build_warmstart)
