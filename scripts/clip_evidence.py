"""The vision-language studies' multi-seed evidence: independent replicates of the embedded pipeline.

A run seed of BDetCLIP, RVPT, PTA or CleanSight redraws only the evaluation (which images carry the
trigger, PGD's start, the prompts' init, the questions asked); the data, the poison draw and the
models are one DAG node each.
To decide a claim over independent data and models, each replicate r runs the real workflow in its
own folder with the shapes data, every tiny model's training and the poison draw seeded r (run seed
r as well), and the replicates' runs are then summarized and plotted together, seed = replicate
(paired tests pair the methods of one replicate: same data, same models).

    python scripts/clip_evidence.py --work /tmp/clip-evidence --replicates 3 \\
        --out paper_figures/evidence [--studies bdetclip rvpt pta cleansight] [--ablations]

Each replicate's config is the repository's, composed: nothing in ``config/`` is edited. The
tables are summarized with ``--allow-mixed-provenance`` (the replicates differ in their data and
model digests by design; each difference is logged to the summarize log).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLIP_STUDIES = ("bdetclip", "rvpt", "pta", "cleansight")


def compose(wd: Path, replicate: int, studies: list[str], ablations: bool) -> None:
    """``wd``'s config: the repository's, with the shared data and models seeded ``replicate``."""
    shutil.copytree(ROOT / "config", wd / "config")
    shutil.copytree(ROOT / "paper_figures" / "reported", wd / "paper_figures" / "reported")
    for study in studies:
        path = wd / "config" / "studies" / f"{study}.yaml"
        data = yaml.safe_load(path.read_text())
        data["datasets"]["shapes/embedded"]["seed"] = replicate
        for spec in data["models"].values():
            if spec["builder"] in ("tiny_clip", "tiny_llava"):
                spec["params"]["seed"] = replicate  # the init, batch order and poisoned pairs
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg.update(studies=list(studies), seeds={s: [replicate] for s in studies}, ablations=ablations)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def run(cmd: list[str], cwd: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="one folder per replicate is made here")
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--first", type=int, default=0, help="the first replicate's seed (fresh replicates after a choice)")
    ap.add_argument("--studies", nargs="+", default=list(CLIP_STUDIES), choices=CLIP_STUDIES)
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--out", type=Path, required=True, help="figures go to <out>/<study>/")
    a = ap.parse_args()
    seeds = range(a.first, a.first + a.replicates)
    for r in seeds:
        wd = a.work / f"replicate{r}"
        if not (wd / "config").exists():
            compose(wd, r, a.studies, a.ablations)
        t0 = time.perf_counter()
        run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--profile",
             str(ROOT / "workflow" / "profiles" / "default")], wd)
        print(f"replicate {r}: {time.perf_counter() - t0:.0f} s", flush=True)
    for study in a.studies:
        spec = yaml.safe_load((ROOT / "config" / "studies" / f"{study}.yaml").read_text())
        evals = sorted(str(p) for r in seeds
                       for p in (a.work / f"replicate{r}" / "results" / "embedded" / study).rglob("eval.json"))
        logs = [str(Path(p).with_name("train_log.csv")) for p in evals]
        out = a.out / study
        out.mkdir(parents=True, exist_ok=True)
        summary = a.work / f"{study}_summary.csv"
        run(["repro", "--log", str(a.work / f"{study}_summarize.log"), "summarize", "--evals", *evals,
             "--reported", str(ROOT / "paper_figures" / "reported" / f"{study}.csv"), "--out", str(summary),
             "--allow-mixed-provenance"], ROOT)
        for fig in spec["figures"] + (spec.get("ablation_figures", []) if a.ablations else []):
            run(["repro", "plot-figure", "--plugin", spec.get("plugin", f"repro.studies.{study}"),
                 "--figure", f"{study}/{fig}", "--summary", str(summary), "--train-logs", *logs,
                 "--evals", *evals, "--reported", str(ROOT / "paper_figures" / "reported" / f"{study}.csv"),
                 "--scale", "embedded", "--out-dir", str(out)], ROOT)


if __name__ == "__main__":
    main()
