"""Time the math warm starts' SFT step at several micro-batch sizes (the gradient is the same).

``repro.rl.sft.sft`` takes one optimizer step per random batch of 64 pairs and accumulates its
gradient over length-sorted micro-batches: with micro-batches as large as the batch, every pair is
padded to the batch's longest. The Dr. MAS math team's pairs (``team_pairs``: the Solver's first
answer, the Verifier's verdict on a shown solution, the Solver's second answer) differ ~2x in length,
KPO's single-solution pairs less. For each, on the embedded data (``math/embedded`` with the
study's parameters, generated here) and a fresh tiny Qwen2 of the warm start's shape: the padded
tokens per real token and the seconds of one forward-backward step at each micro size (best of
``--repeats``, one thread). Prints a markdown table; ``--out PATH`` also writes it.

    python scripts/bench_sft_micro.py [--steps 20] [--repeats 3] [--out docs/perf/bench_sft_micro.md]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from repro.data import math_embedded
from repro.io import report
from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer
from repro.rl import math_benchmark
from repro.rl.policy import micro_batches, response_logprobs
from repro.rl.sft import encode_pairs
from repro.studies.drmas.warmstart import team_pairs

#: config/studies/{kpo,drmas}.yaml's math/embedded dataset
DATASET = {"seed": 0, "max_number": 9, "train": 3000, "test": 128}
#: (name, pairs function, the builder's params over WARMSTART_DEFAULTS)
BUILDS = [("kpo math (tiny_qwen2_math)", math_benchmark.solution_pairs, {}),
          ("drmas math team (tiny_qwen2_math_team)", team_pairs,
           {"instruction": "", "prompt_style": "compact", "max_prompt_tokens": 192})]
MICROS = (64, 32, 16)


def bench(pairs_fn, params: dict, data: Path, steps: int, repeats: int) -> dict[int, tuple[float, float]]:
    """{micro: (padded tokens per real token, best seconds per optimizer step)}."""
    p = {**math_benchmark.WARMSTART_DEFAULTS, **params}
    env = math_benchmark.menv.MathBatchEnv(data, "train", instruction=p["instruction"])
    pairs = pairs_fn(env, list(env.problems().values()), p)
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_qwen2(Path(tmp), {"seed": 0}, [t for pair in pairs for t in pair])
        model, tok = load_model_and_tokenizer(Path(tmp))
    prompts, responses = encode_pairs(tok, pairs, p["max_prompt_tokens"])
    lengths = [len(a) + len(b) for a, b in zip(prompts, responses)]
    order = np.random.default_rng(0).permutation(len(pairs))
    batch = p["sft_batch_size"]
    batches = [order[lo:lo + batch] for lo in range(0, steps * batch, batch)]
    model.train()
    out: dict[int, tuple[float, float]] = {}
    for _ in range(repeats):
        for micro in MICROS:
            real = padded = 0
            t0 = time.perf_counter()
            for idx in batches:
                for m in micro_batches(idx, lengths, micro):
                    real += sum(lengths[i] for i in m)
                    padded += len(m) * max(lengths[i] for i in m)
                    logp, _, mask = response_logprobs(model, [prompts[i] for i in m], [responses[i] for i in m],
                                                      tok.pad_token_id)
                    (-(logp * mask).sum() / 1000.0).backward()
            best = min(out.get(micro, (0.0, float("inf")))[1], (time.perf_counter() - t0) / len(batches))
            out[micro] = (padded / real, best)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps (batches of 64 pairs) per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = [f"# SFT step by micro-batch size ({platform.processor() or platform.machine()}, torch "
             f"{torch.__version__}, 1 thread, best of {args.repeats}, {args.steps} steps of 64 pairs)", "",
             "| warm start | micro-batch | padded / real tokens | s per step | vs 64 |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        math_embedded.build(Path(tmp), DATASET)
        for name, pairs_fn, params in BUILDS:
            res = bench(pairs_fn, params, Path(tmp), args.steps, args.repeats)
            for micro, (pad, sec) in res.items():
                lines.append(f"| {name} | {micro} | {pad:.2f} | {sec:.3f} | {sec / res[64][1] - 1:+.0%} |")
    report(lines, args.out)


if __name__ == "__main__":
    main()
