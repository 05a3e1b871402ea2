"""Time sampling and the policy update with and without shared prompt prefixes, on real batches.

``train.shared_prefix`` computes a prompt shared by several rows once: the sampler runs each
distinct prompt of a batch once (``repro.rl.generation.prompt_cache``: a group's 8 rollouts of one
problem) and the update packs rows whose prompts start alike into one sequence each
(``repro.rl.policy.pack_shared``: a group's rows, a team's Solver and Verifier turns on one task).
This samples one training batch of each embedded math study from a finished run's warm-start
models and dataset, KPO (16 problems x 8, one turn) and Dr. MAS's math team (16 x 8, Solver /
Verifier loops), both ways with the same seed, and reports how many responses came out the same
and how far the sampled log-probs are apart. On the batch sampled the usual way it checks that the
update's two ways give the same log-probs and gradient, then times the update's forward-backward
over the trainer's micro-batch plan both ways. Repeats are interleaved, one thread, under the
workflow's ``cpu_pins``; medians. Prints a markdown table; ``--out PATH`` also writes it.

    python scripts/bench_shared_prefix.py RUN_DIR [--repeats 5] [--out docs/perf/bench_shared_prefix.md]

``RUN_DIR``: a checkout where the README main command ran (``resources/models/tiny-qwen2-math``,
``tiny-qwen2-math-team`` and ``resources/datasets/math/embedded`` exist).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
from repro.provenance import apply_cpu_pins  # noqa: E402

apply_cpu_pins(yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())["cpu_pins"])

import numpy as np  # noqa: E402
import torch  # noqa: E402

import repro.rl.math_benchmark  # noqa: E402,F401  (registers the math benchmark)
from repro.envs.math import MathBatchEnv  # noqa: E402
from repro.io import report  # noqa: E402
from repro.models.tiny import load_model_and_tokenizer  # noqa: E402
from repro.registry import BENCHMARKS  # noqa: E402
from repro.rl.generation import TransformersBackend  # noqa: E402
from repro.rl.config import TrainConfig  # noqa: E402
from repro.rl.policy import attention_span, prefix_groups, response_logprobs  # noqa: E402
from repro.rl.rollout import PromptOptions, Rollout  # noqa: E402
from repro.rl.trainer import rollout_plan  # noqa: E402
from repro.studies.drmas.orchestra import run_math_team  # noqa: E402

TASKS, GROUP = 16, 8  # both studies' embedded batch (config/studies/kpo.yaml, drmas.yaml)
DATA = "resources/datasets/math/embedded"


def kpo(run: Path):
    """(model, tok, sample(shared) -> generations, mini, micro): KPO's embedded settings."""
    model, tok = load_model_and_tokenizer(run / "resources/models/tiny-qwen2-math")
    env = MathBatchEnv(run / DATA, "train", instruction="hash")
    prompts = [env.prompt(q) for q in list(env.problems().values())[:TASKS] for _ in range(GROUP)]

    def sample(shared: bool):
        backend = TransformersBackend(model, tok, max_new_tokens=48, max_prompt_tokens=96, shared_prefix=shared)
        return backend.generate(prompts, temperature=1.0, seed=0)
    return model, tok, sample, 32, 32


def drmas(run: Path):
    """The same for Dr. MAS's math team (shared weights, its embedded settings)."""
    model, tok = load_model_and_tokenizer(run / "resources/models/tiny-qwen2-math-team")
    env = MathBatchEnv(run / DATA, "train", instruction="", extract="boxed")
    games = [g for g in env.list_games()[:TASKS] for _ in range(GROUP)]

    class Recorder(TransformersBackend):
        def generate(self, prompts, **kwargs):
            out = super().generate(prompts, **kwargs)
            self.seen += out
            return out

    def sample(shared: bool):
        backend = Recorder(model, tok, max_new_tokens=48, max_prompt_tokens=192, shared_prefix=shared)
        backend.seen = []
        run_math_team(env, backend, games, [i // GROUP for i in range(len(games))], max_steps=2, temperature=1.0,
                      seed=0, prompt=PromptOptions(style="compact", require_think=False), bench=BENCHMARKS.get("math"))
        return backend.seen
    return model, tok, sample, 512, 32


def plan(model, prompts, responses, mini: int, micro: int, shared: bool):
    """The trainer's micro-batches of one update."""
    ro = Rollout(batch=None, prompt_ids=prompts, response_ids=responses, won=np.zeros(0, bool),
                 lengths=np.zeros(0, int), task_types=[], games=[])
    cfg = TrainConfig(mini_batch_rows=mini, micro_batch_rows=micro, shared_prefix=shared)
    return rollout_plan(ro, cfg, np.random.default_rng(0), model)


def update(model, tok, prompts, responses, steps, shared: bool):
    """Forward-backward of every micro-batch of ``steps``: the summed log-probs' gradient and
    each row's log-probs."""
    model.zero_grad(set_to_none=True)
    logps = {}
    for micro, _ in steps:
        for m in micro:
            logp, _, mask = response_logprobs(model, [prompts[i] for i in m], [responses[i] for i in m],
                                              tok.pad_token_id, shared_prefix=shared)
            (logp * mask).sum().backward()
            for j, i in enumerate(m):
                logps[i] = logp[j, : len(responses[i])].detach()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return grad, logps


def tokens(prompts, responses, steps, shared: bool, span: float) -> tuple[int, int]:
    """(tokens, padded tokens) the update's forward passes run."""
    total = padded = 0
    for micro, _ in steps:
        for m in micro:
            if shared:
                lengths = [p + sum(len(prompts[m[i]]) - p + len(responses[m[i]]) for i in rows)
                           for p, rows in prefix_groups([prompts[i] for i in m], [responses[i] for i in m], span)]
            else:
                lengths = [len(prompts[i]) + len(responses[i]) for i in m]
            total, padded = total + sum(lengths), padded + len(lengths) * max(lengths)
    return total, padded


def timed(fn, repeats: int) -> dict[bool, float]:
    """Median seconds of ``fn(shared)`` for both ways, interleaved."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for shared in (False, True):
            t0 = time.perf_counter()
            fn(shared)
            times[shared].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(name: str, study, repeats: int) -> list[dict]:
    model, tok, sample, mini, micro = study
    model.eval()
    plain, shared = sample(False), sample(True)
    same = sum(a.response_ids == b.response_ids for a, b in zip(plain, shared))
    gap = max((abs(x - y) for a, b in zip(plain, shared) if a.response_ids == b.response_ids
               for x, y in zip(a.logprobs, b.logprobs)), default=float("nan"))
    t_sample = timed(sample, repeats)
    prompts, responses = [g.prompt_ids for g in plain], [g.response_ids for g in plain]
    model.train()
    span = attention_span(model.config)
    steps = {s: plan(model, prompts, responses, mini, micro, s) for s in (False, True)}
    g0, l0 = update(model, tok, prompts, responses, steps[False], False)
    g1, l1 = update(model, tok, prompts, responses, steps[True], True)
    t_update = timed(lambda s: update(model, tok, prompts, responses, steps[s], s), repeats)
    before, after = tokens(prompts, responses, steps[False], False, span), tokens(prompts, responses, steps[True], True, span)
    return [
        {"batch": name, "stage": "sampling", "rows": len(plain), "plain (s)": round(t_sample[False], 3),
         "shared prefix (s)": round(t_sample[True], 3), "saved": f"{100 * (1 - t_sample[True] / t_sample[False]):.0f} %",
         "check": f"{same}/{len(plain)} responses the same; their log-probs ≤ {gap:.1e} apart"},
        {"batch": name, "stage": "update (forward-backward)", "rows": len(prompts), "plain (s)": round(t_update[False], 3),
         "shared prefix (s)": round(t_update[True], 3), "saved": f"{100 * (1 - t_update[True] / t_update[False]):.0f} %",
         "check": (f"tokens {before[0]} → {after[0]} (padded {before[1]} → {after[1]}); log-probs ≤ "
                   f"{max(float((l0[i] - l1[i]).abs().max()) for i in l0 if len(l0[i])):.1e} apart, "
                   f"gradient {float((g0 - g1).norm() / g0.norm()):.1e} relative")},
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = bench("KPO", kpo(args.run_dir), args.repeats) + bench("Dr. MAS math team", drmas(args.run_dir), args.repeats)
    cols = list(rows[0])
    lines = [f"# Shared prompt prefixes: {args.repeats} interleaved repeats, medians", "",
             f"`python scripts/bench_shared_prefix.py RUN_DIR --repeats {args.repeats}`; "
             f"{platform.machine()}, torch {torch.__version__}, one thread, the workflow's cpu_pins.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    report(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
