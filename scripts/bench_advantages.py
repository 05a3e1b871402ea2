"""Time the vectorised advantage estimators on synthetic ALFWorld-like batches.

The batches follow reference/agentic-rl.md §8.3: groups of 8 trajectories, ~50% successes of
length 5-24 (reward 10 on the last step), failures of length 50, ~40 distinct observations per
task visited by a random walk (so states repeat within and across trajectories), ~5% invalid
steps; each step's next state is the next row's (a won episode's last step: the success sink, a
failed one's: a dead-end state). Prints a markdown table; ``--out PATH`` also writes it there
(atomically). ``--graphgpo-loop`` adds GraphGPO's two loop references beside the vectorised
estimator, each checked to give the same numbers first: the plain-loop reference (dicts and heapq,
about as fast as pure Python gets; sizes up to 64k rows) and the same algorithm with the released
code's data access (whole-batch scans per task and trajectory, O(N^2) row placement, 0-d tensors
per row, agentic-rl.md §8.2; sizes up to 16k rows), with the speed-ups.

    python scripts/bench_advantages.py [--sizes 4000 16000 64000 1000000] [--graphgpo-loop] [--out benchmarks/bench_advantages.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable

import numpy as np

import repro.rl.advantages  # noqa: F401  (registers the estimators)
import repro.studies.graphgpo  # noqa: F401  (registers graphgpo)
from repro.io import write_text
from repro.registry import ESTIMATORS
from repro.rl.advantages import discounted_returns
from repro.rl.batch import SUCCESS, StepBatch
from repro.studies.graphgpo.loop_reference import graphgpo_loop, graphgpo_released_loops

GROUP_SIZE = 8  # rollouts per task, "group size 8" (§3.4.4)
STATES_PER_TASK = 40  # "40 distinct observations ... per task" (§8.3)
MEAN_ROWS_PER_TRAJ = 0.5 * (5 + 24) / 2 + 0.5 * 50  # half successes of 5-24 steps, half failures of 50


def synthetic_batch(target_rows: int, seed: int = 0) -> StepBatch:
    """A trajectory-major batch of about ``target_rows`` rows, built without Python loops over rows."""
    rng = np.random.default_rng(seed)
    n_groups = max(1, round(target_rows / (GROUP_SIZE * MEAN_ROWS_PER_TRAJ)))
    n_traj = n_groups * GROUP_SIZE
    success = rng.random(n_traj) < 0.5
    length = np.where(success, rng.integers(5, 25, n_traj), 50)
    starts = np.r_[0, np.cumsum(length)[:-1]]
    n = int(length.sum())
    traj = np.repeat(np.arange(n_traj), length)
    step = np.arange(n) - np.repeat(starts, length)
    group = traj // GROUP_SIZE
    moves = rng.choice([-1, 0, 1, 2], size=n)  # drifting random walk: stays, back-steps and wrap-around revisits
    moves[step == 0] = 0
    walk = np.cumsum(moves)
    state = (walk - np.repeat(walk[starts], length)) % STATES_PER_TASK  # every trajectory starts in state 0
    reward = np.zeros(n)
    last = starts + length - 1
    reward[last[success]] = 10.0
    anchor = group * (STATES_PER_TASK + 1) + state
    next_anchor = np.r_[anchor[1:], 0]
    next_anchor[last] = np.where(success, SUCCESS, group[last] * (STATES_PER_TASK + 1) + STATES_PER_TASK)
    return StepBatch(
        group=group,
        traj=traj,
        step=step,
        anchor=anchor,
        next_anchor=next_anchor,
        reward=reward,
        episode_reward=np.repeat(np.where(success, 10.0, 0.0), length),
        valid=rng.random(n) >= 0.05,
    )


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


COLUMNS: list[tuple[str, Callable[[StepBatch], object]]] = [
    ("Disc. returns", lambda b: discounted_returns(b.reward, b.traj, 0.95)),
    ("GRPO", lambda b: ESTIMATORS.get("grpo")(b, {})),
    ("RLOO", lambda b: ESTIMATORS.get("rloo")(b, {})),
    ("GiGPO", lambda b: ESTIMATORS.get("gigpo")(b, {})),
    ("HGPO K = 2", lambda b: ESTIMATORS.get("hgpo")(b, {"history_length": 2})),
    ("HGPO K = 4", lambda b: ESTIMATORS.get("hgpo")(b, {"history_length": 4})),
    ("HGPO K = 2 + base_group", lambda b: ESTIMATORS.get("hgpo")(b, {"history_length": 2, "base_group": True})),
    ("GraphGPO", lambda b: ESTIMATORS.get("graphgpo")(b, {})),
]


def graphgpo_reference(b: StepBatch) -> list[float]:
    """GraphGPO's plain-loop reference on the batch's columns (``repro.studies.graphgpo.loop_reference``)."""
    return graphgpo_loop(b.group.tolist(), b.anchor.tolist(), b.next_anchor.tolist(), b.valid.tolist(),
                         b.episode_reward.tolist())


def graphgpo_released_inputs(b: StepBatch) -> tuple:
    """The batch as the released code holds it: object arrays of id and key strings."""
    text = lambda c: "success" if c == SUCCESS else f"observation {c} " + "x" * 300  # noqa: E731  (~310 chars, §8.3)
    return ([f"uid-{g}" for g in b.group], [f"traj-{t}" for t in b.traj], [text(c) for c in b.anchor],
            [text(c) for c in b.next_anchor], b.valid, b.episode_reward)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4_000, 16_000, 64_000, 1_000_000])
    parser.add_argument("--out", default=None, help="also write the markdown table to this path")
    parser.add_argument("--graphgpo-loop", action="store_true",
                        help="also time GraphGPO's plain-loop reference (sizes <= 64k rows) and the speed-up")
    args = parser.parse_args()

    extra = (["GraphGPO plain loop", "speed-up", "GraphGPO released-code loops", "speed-up"]
             if args.graphgpo_loop else [])
    lines = [
        "| Groups × 8 (rows N) | " + " | ".join([name for name, _ in COLUMNS] + extra) + " |",
        "|---" * (len(COLUMNS) + len(extra) + 1) + "|",
    ]
    for size in args.sizes:
        batch = synthetic_batch(size)
        repeats = 1 if len(batch) >= 500_000 else 3
        times = [best_time(lambda: fn(batch), repeats) for _, fn in COLUMNS]
        cells = [f"{1e3 * t:.1f} ms" for t in times]
        for limit, ref in ((70_000, graphgpo_reference),
                           (20_000, lambda b: graphgpo_released_loops(*graphgpo_released_inputs(b))))[
                               : 2 if args.graphgpo_loop else 0]:
            if len(batch) > limit:
                cells += ["", ""]
                continue
            np.testing.assert_allclose(ref(batch), ESTIMATORS.get("graphgpo")(batch, {}),
                                       rtol=1e-9, atol=1e-9)  # the same numbers, then the time
            loop = best_time(lambda: ref(batch), 1)
            cells += [f"{1e3 * loop:.1f} ms", f"{loop / times[-1]:.0f}×"]
        lines.append(f"| {len(np.unique(batch.group))} ({len(batch):,}) | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    header = (
        f"Vectorised estimators (numpy {np.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}); best of 3 runs, "
        "1 run at >= 500k rows (the loop reference: 1 run). Each estimator's time includes its own "
        "returns and order check.\n"
    )
    table = header + "\n" + "\n".join(lines) + "\n"
    print("\n" + table)
    if args.out:
        write_text(args.out, table)


if __name__ == "__main__":
    main()
