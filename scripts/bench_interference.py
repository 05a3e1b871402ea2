"""Does a job slow down the job beside it? One job of a finished workflow run, timed alone and with
each neighbour job running (in a loop) on the other core, the conditions interleaved over repetitions.

    python scripts/bench_interference.py RUN_DIR [--target OUTPUT] [--neighbour LABEL=OUTPUT ...]
                                         [--reps 3] [--out docs/perf/interference.md]

RUN_DIR: a folder where the README main command has finished, so every job's inputs exist. An
OUTPUT is a file or folder that one job of that run writes; the job's command is Snakemake's own
(``snakemake -n -p --force OUTPUT``; ``--snakefile`` and ``--profile`` for a run made with other
ones), run in RUN_DIR with its output options (``--out``, ``--log``, ``--log-file``, ``--log-csv``,
``--work-dir``, ``--tracking-spool``) moved under a scratch folder, so the run's files stay as they
are, and one thread per job, as the workflow's jobs. Defaults: a KPO training as the target; beside
it a Dr. MAS training (RL beside RL, as the main command pairs most of its jobs), the clean tiny
CLIP's build and a BDetCLIP evaluation (the vision-language studies' longest job and their typical
short one). A before / after pair of the main command charges the added studies with whatever the
other studies' jobs lose beside them; this measures that loss.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

KPO = "results/embedded/kpo/math/tiny-qwen2-math/grpo/seed0/train_log.csv"
NEIGHBOURS = {
    "rl": "results/embedded/drmas/math/tiny-qwen2-math-team/share_grpo/seed0/train_log.csv",
    "clip": "resources/models/tiny-clip-clean.seed0",
    "clip_eval": "results/embedded/bdetclip/shapes/tiny-clip-badnets/bdetclip/seed0/eval.json",
}
OUTPUT_OPTIONS = re.compile(r"(--(?:out|log|log-file|log-csv|work-dir|tracking-spool)) (\S+)")
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def job_command(run_dir: Path, output: str, snakefile: Path, profile: Path) -> str:
    """The shell command of the one job that writes ``output`` in ``run_dir``."""
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(run_dir),
                          "--profile", str(profile), "-n", "-p", "--force", output],
                         capture_output=True, text=True)
    cmds = [line.removeprefix("Shell command: ") for line in (dry.stdout + dry.stderr).splitlines()
            if line.startswith("Shell command: ")]
    if dry.returncode or len(cmds) != 1:
        sys.exit(f"{run_dir}: `snakemake -n -p --force {output}` gave {len(cmds)} jobs (rc {dry.returncode}), "
                 f"expected one; is OUTPUT a file a job of the finished run writes?\n{dry.stderr[-2000:]}")
    return cmds[0]


def moved(cmd: str, scratch: Path) -> str:
    """``cmd`` with its output options' paths under ``scratch`` (an absolute one too, so nothing
    outside it is written)."""
    return OUTPUT_OPTIONS.sub(lambda m: f"{m[1]} {scratch / m[2].lstrip('/')}", cmd)


def run_once(cmd: str, run_dir: Path, scratch: Path) -> float:
    """Wall seconds of ``cmd`` (its outputs under a fresh ``scratch``); exits on failure."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    t0 = time.perf_counter()
    done = subprocess.run(["bash", "-c", moved(cmd, scratch)], cwd=run_dir, env={**os.environ, **ONE_THREAD},
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the job failed (rc {done.returncode}): {cmd[:200]}...\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def start_loop(cmd: str, run_dir: Path, scratch: Path) -> subprocess.Popen:
    """``cmd`` over and over in its own process group, each time into a fresh ``scratch``."""
    body = f"while true; do rm -rf {scratch}; mkdir -p {scratch}; {moved(cmd, scratch)} > /dev/null 2>&1; done"
    return subprocess.Popen(["bash", "-c", body], cwd=run_dir, env={**os.environ, **ONE_THREAD},
                            start_new_session=True)


def report(times: dict[str, list[float]], args, target: str, neighbours: dict[str, str]) -> str:
    alone = statistics.mean(times["alone"])
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (info.read_text().splitlines() if info.exists() else [])
             if line.startswith("model name")]
    cpu = names[0] if names else "unknown CPU"
    lines = [f"# A job's time beside other jobs ({datetime.now(timezone.utc):%Y-%m-%d}, {os.cpu_count()} cores, {cpu})",
             "", f"`python scripts/bench_interference.py {args.run_dir} --reps {args.reps}`: the target `{target}` "
             "timed alone and with each neighbour looping on the other core, one thread per job, the "
             "conditions interleaved. Neighbours: " + "; ".join(f"{k} = `{v}`" for k, v in neighbours.items()) + ".",
             "", "| beside | n | mean s | sd | runs (s) | vs alone |", "|---|---|---|---|---|---|"]
    for cond, ts in times.items():
        sd = statistics.stdev(ts) if len(ts) > 1 else float("nan")
        lines.append(f"| {cond} | {len(ts)} | {statistics.mean(ts):.1f} | {sd:.1f} | "
                     f"{', '.join(f'{t:.1f}' for t in ts)} | {100 * (statistics.mean(ts) / alone - 1):+.1f} % |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--target", default=KPO)
    ap.add_argument("--neighbour", action="append", metavar="LABEL=OUTPUT",
                    help=f"repeatable; default: {', '.join(f'{k}={v}' for k, v in NEIGHBOURS.items())}")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lead", type=float, default=3.0, help="seconds a neighbour runs before the target starts")
    ap.add_argument("--snakefile", type=Path, help="default: RUN_DIR/Snakefile")
    ap.add_argument("--profile", type=Path, help="default: RUN_DIR/workflow/profiles/default")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    run_dir = args.run_dir.resolve()
    snakefile = args.snakefile or run_dir / "Snakefile"
    profile = args.profile or run_dir / "workflow/profiles/default"
    neighbours = dict(NEIGHBOURS)
    if args.neighbour:
        bad = [n for n in args.neighbour if "=" not in n]
        if bad:
            ap.error(f"--neighbour {bad[0]!r}: expected LABEL=OUTPUT")
        neighbours = dict(n.split("=", 1) for n in args.neighbour)
    if "alone" in neighbours:
        ap.error("--neighbour: the label 'alone' names the target's run without a neighbour; choose another")
    target = job_command(run_dir, args.target, snakefile, profile)
    loops = {label: job_command(run_dir, out, snakefile, profile) for label, out in neighbours.items()}
    times: dict[str, list[float]] = {c: [] for c in ["alone", *loops]}
    with tempfile.TemporaryDirectory(prefix="interference-") as tmp:
        for rep in range(args.reps):
            for cond in times:
                loop = None if cond == "alone" else start_loop(loops[cond], run_dir, Path(tmp) / "neighbour")
                try:
                    if loop is not None:
                        time.sleep(args.lead)
                    times[cond].append(run_once(target, run_dir, Path(tmp) / "target"))
                finally:
                    if loop is not None:
                        os.killpg(loop.pid, signal.SIGKILL)
                        loop.wait()
                print(f"rep {rep + 1}/{args.reps} beside {cond}: {times[cond][-1]:.1f} s", flush=True)
    text = report(times, args, args.target, neighbours)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
