"""Time ALFWorld's engine on the embedded games: steps per second of one process stepping a
GRPO-sized batch (8 games x 8 slots, 15 random admissible actions each), with

  plain    TextWorld's engine as installed,
  memo     its parsing memoized (``repro.envs.alfworld.memoize_engine``) but the text generator's
           contexts deep-copied as TextWorld does,
  shallow  memoized and the contexts copied shallowly (what the workers run).

Usage (after the workflow has generated the data):
    python scripts/bench_alfworld_env.py --data resources/datasets/alfworld/embedded --iterations 3
Each mode runs in its own process (the patches are process-wide); the episodes are the same.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import time


def _run(mode: str, data: str, iterations: int, out) -> None:
    import textworld.envs.pddl.textgen as textgen

    from repro.envs import alfworld as A

    deep = textgen.copy_context
    if mode != "plain":
        A.memoize_engine(maxsize=4 * 64)
    if mode == "memo":
        textgen.copy_context = deep
    games, cache, rng = A.list_games(data, "train"), A._ChainCache(15, 64), random.Random(0)
    steps, t0 = 0, time.perf_counter()
    for _ in range(iterations):
        cache.release_all()
        admissible = []
        for i, game in enumerate(g for g in rng.sample(games, 8) for _ in range(8)):
            cache.active[i] = cache.acquire(game)
            admissible.append(A._drop_help(cache.active[i][1].reset()[1]["admissible_commands"]))
        done = [False] * len(admissible)
        for _ in range(15):
            for i in (i for i, d in enumerate(done) if not d):
                _, _, d, infos = cache.active[i][1].step(rng.choice(admissible[i]))
                admissible[i], done[i], steps = A._drop_help(infos["admissible_commands"]), d or infos["won"], steps + 1
    out.send({"mode": mode, "steps": steps, "seconds": round(time.perf_counter() - t0, 2),
              "steps_per_s": round(steps / (time.perf_counter() - t0), 1)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="an embedded ALFWorld dataset folder")
    ap.add_argument("--iterations", type=int, default=3, help="batches of 8 games x 8 slots")
    ap.add_argument("--modes", nargs="+", default=["plain", "memo", "shallow"])
    a = ap.parse_args()
    for mode in a.modes:
        recv, send = mp.Pipe(duplex=False)
        p = mp.get_context("fork").Process(target=_run, args=(mode, a.data, a.iterations, send))
        p.start()
        print(json.dumps(recv.recv()), flush=True)
        p.join()


if __name__ == "__main__":
    main()
