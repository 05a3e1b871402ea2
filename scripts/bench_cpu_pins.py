"""Do the CPU pins make one training compute the same numbers on CPUs of different capability?

One machine imitates two: "avx512" lets every library dispatch its fastest kernels on this CPU;
"avx2" forces what a CPU without AVX512 would run (torch's ATen kernels, MKL's instruction set,
oneDNN, OpenBLAS's Haswell kernels). Each is run without the pins and with the workflow's
``cpu_pins`` (config/config.yaml) on top, so four trainings of one embedded run (default: ALFWorld
GRPO, seed 0) go through ``repro train`` exactly as the workflow calls it, two at a time, one
thread each. Printed: each training's time, final-weight digest and last logged row, and which
trainings agree bit for bit.

    python scripts/bench_cpu_pins.py --workdir <a folder where the main command ran> \\
        [--study hgpo --benchmark alfworld --method grpo --seed 0] [--out benchmarks/cpu_pins.md]

The folder must hold the run's dataset and base model (resources/); results go to a fresh
temporary folder inside it and are removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from repro.config import job_config, load, run_table
from repro.io import report
from repro.provenance import KERNEL_VARS, TRAIN_RECORD

# what a CPU without AVX512 dispatches by default (this CPU can run both)
IMITATE = {
    "avx512": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell"},
}


def weights_digest(checkpoint: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(checkpoint.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def train(workdir: Path, out: Path, run: dict, dataset: str, model: str, env: dict) -> dict:
    out.mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if k not in KERNEL_VARS}
    cmd = ["repro", "--log-file", str(out / "train.log"), "train", "--run-config", json.dumps(run, sort_keys=True),
           "--dataset-dir", dataset, "--model-dir", model, "--out", str(out / "checkpoint"),
           "--log-csv", str(out / "train_log.csv"), "--work-dir", str(out / "_resume"),
           "--tracking-spool", str(out / "mlflow_run.json")]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, env={**base, **env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                          "OPENBLAS_NUM_THREADS": "1"}, check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    prov = json.loads((out / "checkpoint" / TRAIN_RECORD).read_text())["cpu"]
    log = pd.read_csv(out / "train_log.csv")
    numbers = log[[c for c in log.columns if not c.startswith("time/")]]  # wall-clock columns differ anyway
    return {"seconds": round(seconds, 1), "weights": weights_digest(out / "checkpoint"), "numbers": numbers,
            "log": hashlib.sha256(numbers.to_csv(index=False).encode()).hexdigest()[:16],
            "torch": prov["torch"]["capability"], "openblas": ",".join(
                str(b["architecture"]) for b in prov["blas_libraries"] if b["internal_api"] == "openblas"),
            "last": {k: log.iloc[-1][k] for k in ("rollout/success_rate", "train/policy_loss", "eval/val/success_rate")
                     if k in log}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--configfile", default="config/config.yaml")
    ap.add_argument("--study", default="hgpo")
    ap.add_argument("--benchmark", default="alfworld")
    ap.add_argument("--method", default="grpo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    a = ap.parse_args()
    workdir = a.workdir.resolve()
    config = yaml.safe_load((workdir / a.configfile).read_text())
    loaded = load(config, workdir)
    run = next(r for r in run_table(loaded) if (r.study, r.benchmark, r.method, r.seed)
               == (a.study, a.benchmark, a.method, a.seed))
    rc = job_config(loaded, run)
    pins = {k: str(v) for k, v in config.get("cpu_pins", {}).items()}
    cases = {f"{cpu}, {'pinned' if pinned else 'free'}": {**IMITATE[cpu], **(pins if pinned else {})}
             for pinned in (False, True) for cpu in IMITATE}
    tmp = Path(tempfile.mkdtemp(prefix="bench_cpu_pins_", dir=workdir))
    try:
        with ThreadPoolExecutor(2) as pool:  # two at a time, one thread each: the workflow's lanes
            futures = {name: pool.submit(train, workdir, tmp / str(i), rc, f"resources/datasets/{run.dataset}",
                                         f"resources/models/{run.model}", env)
                       for i, (name, env) in enumerate(cases.items())}
            res = {name: f.result() for name, f in futures.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [f"One embedded training ({run.study} {run.benchmark} {run.model} {run.method} seed {run.seed}) "
             f"under imitated CPU capabilities; pins: {pins}", "",
             "| case | torch kernels | OpenBLAS | train s | weights sha256 | train_log sha256 (time/* dropped) | last row |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        last = ", ".join(f"{k} {v:.4g}" for k, v in r["last"].items())
        lines.append(f"| {name} | {r['torch']} | {r['openblas']} | {r['seconds']} | {r['weights']} | {r['log']} | {last} |")
    for pinned in ("free", "pinned"):
        a512, a2 = res[f"avx512, {pinned}"], res[f"avx2, {pinned}"]
        same = a512["weights"] == a2["weights"] and a512["log"] == a2["log"]
        gap = (a512["numbers"] - a2["numbers"]).abs().max()
        worst = ", ".join(f"{k} {v:.3g}" for k, v in gap[gap > 0].sort_values(ascending=False).head(4).items())
        lines.append(f"\n{pinned}: avx512 and avx2 " + ("agree bit for bit (weights and every logged number)"
                     if same else f"differ; largest |Δ| over the logged rows: {worst or 'none (weights differ)'}"))
    report(lines, a.out)


if __name__ == "__main__":
    sys.exit(main())
