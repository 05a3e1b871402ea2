"""Re-evaluate finished checkpoints of a study at other sampling temperatures.

The workflow evaluates at the study's ``evaluate.temperature``. This script answers "how do the
same checkpoints do at temperature T?" (e.g. the paper's 0.4 at the embedded scale, which
evaluates at 1.0): it replays the ``evaluate`` step of every run whose ``eval.json`` exists, with
only the temperature (and optionally the splits) changed, and prints success (%) mean ± std over
seeds per method, split and temperature. Nothing under ``results/`` is modified.

    python scripts/eval_temperatures.py --temperatures 0.4 1.0 [--splits valid_seen]
        [--study hgpo] [--configfile config/config.yaml] [--out benchmarks/eval_temperatures.md]
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

import numpy as np
import yaml

from repro import registry
from repro.config import job_config, load, run_table
from repro.io import write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default="config/config.yaml")
    ap.add_argument("--study", default="hgpo")
    ap.add_argument("--temperatures", type=float, nargs="+", required=True)
    ap.add_argument("--splits", nargs="+", default=None, help="default: the study's evaluation splits")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    loaded = load(yaml.safe_load(Path(a.configfile).read_text()))
    scale = loaded["config"]["scale"]
    results: dict[tuple[str, str, float], list[float]] = {}
    for r in run_table(loaded):
        if r.study != a.study:
            continue
        run_dir = Path("results") / scale / r.study / r.benchmark / r.model / r.method / f"seed{r.seed}"
        if not (run_dir / "eval.json").exists():
            continue
        run = job_config(loaded, r)
        family = registry.FAMILIES.get(run["family"])
        for temp in a.temperatures:
            rc = copy.deepcopy(run)
            rc["evaluate"]["temperature"] = temp
            if a.splits:
                rc["evaluate"]["splits"] = a.splits
            out = family.evaluate(rc, dataset_dir=Path("resources/datasets") / r.dataset,
                                  checkpoint_dir=run_dir / "checkpoint")
            for split, res in out["splits"].items():
                results.setdefault((r.method, split, temp), []).append(100 * res["success_rate"])
            print(f"{r.method} seed{r.seed} T={temp:g}: "
                  + ", ".join(f"{s} {100 * v['success_rate']:.1f}" for s, v in out["splits"].items()),
                  flush=True)
    lines = [f"Success (%) of `{a.study}` checkpoints ({scale} scale) by sampling temperature, "
             "mean ± std over seeds", "", "| method | split | temperature | success | seeds |",
             "|---|---|---|---|---|"]
    for (method, split, temp), vals in results.items():
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        lines.append(f"| {method} | {split} | {temp:g} | {np.mean(vals):.1f} ± {std:.1f} | {len(vals)} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.out:
        write_text(Path(a.out), table)


if __name__ == "__main__":
    main()
