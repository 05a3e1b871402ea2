"""Time the WebShop text env on generated catalogs (CPU, one process).

Measures: catalog generation, loading + BM25 indexing, goal construction, the mean cost of a
step under a random admissible policy (searches with goal queries, clicks, no purchase), the
purchase reward (spaCy noun tags cached or not), and BM25 search latency. ``--products`` sizes
the catalog (120 = the embedded default; 1000 = the paper's small set size). Prints a markdown
table; ``--out PATH`` also writes it there (atomically).

    python scripts/bench_webshop.py [--products 120 1000] [--out benchmarks/bench_webshop.md]
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
from pathlib import Path

from repro.data.webshop import FAMILIES, generate_embedded
from repro.envs.webshop import SpacyNouns, WebshopBatchEnv, get_reward
from repro.io import report


def bench(n_products: int, steps: int, slots: int) -> dict[str, float]:
    per_family = max(1, n_products // len(FAMILIES))
    root = Path(tempfile.mkdtemp(prefix="bench-webshop-")) / "data"
    t0 = time.perf_counter()
    generate_embedded(root, {"products_per_family": per_family})
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    env = WebshopBatchEnv(root, eval_goals=0.2, max_steps=None)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    goals = env.goals()
    t_goals = time.perf_counter() - t0
    rng = random.Random(0)
    env.reset([rng.randrange(len(goals)) for _ in range(slots)])
    env.timings.update(step_s=0.0, steps=0)
    for _ in range(steps // slots):
        acts = []
        for i in range(slots):
            s = env.session(i)
            choices = [c for c in s.available_actions()["clickables"] if c not in ("buy now", "search")]
            if s.page.kind == "search" or not choices or rng.random() < 0.1:
                acts.append(f"search[{rng.choice(goals).query}]")
            else:
                acts.append(f"click[{rng.choice(choices)}]")
        env.step(acts)
    step_ms = 1e3 * env.timings["step_s"] / max(env.timings["steps"], 1)
    nouns = SpacyNouns()
    nouns("warm up")
    cat = env.catalog
    sample = [rng.choice(goals) for _ in range(200)]
    t0 = time.perf_counter()
    for g in sample:
        nouns._cache.clear()  # cold: both titles tagged by spaCy
        get_reward(cat.by_asin[g.asin], g, 20.0, {}, nouns)
    reward_cold = 1e3 * (time.perf_counter() - t0) / len(sample)
    for g in sample:
        get_reward(cat.by_asin[g.asin], g, 20.0, {}, nouns)
    t0 = time.perf_counter()
    for g in sample:
        get_reward(cat.by_asin[g.asin], g, 20.0, {}, nouns)
    reward_warm = 1e3 * (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    for i in range(200):
        cat.index.scores(f"{sample[i].query} {sample[i].attributes[0]}")
    search_ms = 1e3 * (time.perf_counter() - t0) / 200
    return {"products": len(cat.products), "goals": len(goals), "generate_s": t_gen,
            "load_index_s": t_load, "goals_s": t_goals, "step_ms": step_ms,
            "reward_cold_ms": reward_cold, "reward_warm_ms": reward_warm, "search_ms": search_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, nargs="+", default=[120, 1000])
    ap.add_argument("--steps", type=int, default=4000, help="env steps under the random policy")
    ap.add_argument("--slots", type=int, default=16, help="batch size of the env")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cols = ["products", "goals", "generate_s", "load_index_s", "goals_s", "step_ms", "search_ms",
            "reward_cold_ms", "reward_warm_ms"]
    lines = [f"WebShop env on {platform.processor() or platform.machine()}, "
             f"{args.steps} random-policy steps in batches of {args.slots}", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for n in args.products:
        r = bench(n, args.steps, args.slots)
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c])
                                        for c in cols) + " |")
    report(lines, args.out)


if __name__ == "__main__":
    main()
