"""Time the math reward's verifier on real rollout batches, memoised against parsing every call.

A single-turn math rollout checks each response twice (``repro.rl.math_benchmark._parse``: does it
state an answer; ``MathBatchEnv.step``: is it right), and every check re-parsed the problem's gold
answer; a group's eight samples often repeat one another. ``repro.envs.math`` memoises math-verify's
parse and the verdict (pure functions of their text). This script samples ``--batches`` rollout
batches of the embedded KPO shape (16 train problems x 8 samples, temperature 1, 48 new tokens)
from a warm-started math model and times the rollout's verifier work on them: as before the memo
(every call parses afresh, with the cache bypassed) and memoised (cache cleared once, before the
first batch, so later batches reuse what earlier ones parsed, as a training job does), after one
untimed pass that warms math-verify's own caches. The parse reads only the text after ``####``
(e.g. `` 6``), so most parses repeat. It checks that both give the same verdicts. One thread; prints a markdown table, ``--out PATH`` also writes it.

    python scripts/bench_math_verifier.py [--model-dir resources/models/tiny-qwen2-math]
        [--dataset-dir resources/datasets/math/embedded] [--batches 10] [--out docs/perf/bench_math_verifier.md]

(the default paths are the README main command's: run it, or ``snakemake resources/models/tiny-qwen2-math``, first)
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from repro.envs import math as menv
from repro.io import report
from repro.models.tiny import load_model_and_tokenizer
from repro.rl.generation import TransformersBackend


def uncached_checks(golds: list[str], responses: list[str]) -> list[bool]:
    """The rollout's verifier work without the memo: a validity parse and a verdict per response."""
    out = []
    for gold, text in zip(golds, responses):
        menv._parse.cache_clear()
        menv._parsed(text)                                   # the validity check's parse
        menv._parse.cache_clear()                            # the verdict parses afresh too
        out.append(menv.is_correct.__wrapped__(gold, text))
    menv._parse.cache_clear()
    return out


def cached_checks(golds: list[str], responses: list[str]) -> list[bool]:
    """The same work through the memoised functions, as a rollout now calls them."""
    for text in responses:
        menv.extract_answer(text)
    return [menv.is_correct(gold, text) for gold, text in zip(golds, responses)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default="resources/models/tiny-qwen2-math")
    ap.add_argument("--dataset-dir", default="resources/datasets/math/embedded")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, tok = load_model_and_tokenizer(Path(args.model_dir))
    env = menv.MathBatchEnv(args.dataset_dir, "train")
    problems = list(env.problems().values())
    backend = TransformersBackend(model, tok, max_new_tokens=48, max_prompt_tokens=96)
    rng = np.random.default_rng(0)
    batches = []
    for b in range(args.batches):
        chosen = [problems[i] for i in rng.choice(len(problems), 16, replace=False) for _ in range(8)]
        texts = [g.text for g in backend.generate([env.prompt(p) for p in chosen], temperature=1.0, seed=b)]
        batches.append(([str(p["answer"]) for p in chosen], texts))

    for g, r in batches:  # warm math-verify's own caches (compiled patterns, ...) for both timings
        uncached_checks(g, r)
    t0 = time.process_time()
    before = [uncached_checks(g, r) for g, r in batches]
    t_before = time.process_time() - t0
    menv._parse.cache_clear()
    menv.is_correct.cache_clear()
    t0 = time.process_time()
    after = [cached_checks(g, r) for g, r in batches]
    t_after = time.process_time() - t0
    if before != after:
        raise SystemExit("the memoised verifier's verdicts differ from the uncached ones")
    n = sum(len(r) for _, r in batches)
    distinct = np.mean([len(set(zip(g, r))) / len(r) for g, r in batches])
    correct = np.mean([np.mean(v) for v in after])
    report([
        f"# Math verifier per rollout batch ({platform.machine()}, torch {torch.__version__}, 1 thread, CPU time)",
        "",
        f"{args.batches} batches of 16 problems x 8 samples from `{args.model_dir}` (temperature 1, "
        f"48 new tokens); {n} responses, {distinct:.0%} distinct within a batch, {correct:.0%} correct.",
        "",
        "| verifier | s per batch | vs uncached |",
        "|---|---|---|",
        f"| uncached (before) | {t_before / args.batches:.3f} | +0% |",
        f"| memoised | {t_after / args.batches:.3f} | {t_after / t_before - 1:+.0%} |",
    ], args.out)


if __name__ == "__main__":
    main()
