"""The shrunk embedded configuration the workflow tests run (locally and on SLURM), and a helper
that runs the real Snakemake on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

SMOKE_DATASET = {"seed": 0, "n_layouts_seen": 2, "n_layouts_unseen": 1, "num_workers": 1,
                 "games": {"train": 12, "valid_seen": 6, "valid_unseen": 6}}
SMOKE_MODEL = {"seed": 0, "demo_episodes": 12, "sft_epochs": 1,
               "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "num_key_value_heads": 1}}
SMOKE_TRAIN = {"iterations": 2, "tasks_per_batch": 2, "group_size": 2, "max_steps": 4, "val_every": 1,
               "val_episodes": 2, "checkpoint_every": 1, "mini_batch_rows": 16}
SMOKE_EVAL = {"episodes_per_game": 1, "max_steps": 4}
SMOKE_WEBSHOP_DATASET = {"seed": 0, "products_per_family": 2, "max_goals_per_product": 2, "eval_goals": 0.3}
SMOKE_WEBSHOP_MODEL = {**SMOKE_MODEL, "demo_max_steps": 6, "max_prompt_tokens": 640,
                       "prompt": {"history_length": 2, "style": "compact", "require_think": False,
                                  "max_obs_chars": 300, "constrain_to_admissible": True}}


# credentials every workflow test runs with: no file the workflow writes may contain them
PLANTED_SECRETS = {"HF_TOKEN": "hf_plantedTokenValue0123456789abcdef",
                   "AWS_SECRET_ACCESS_KEY": "plantedSecretKey0123456789abcdefABCDEF"}


def leaked_secrets(folder: Path) -> list[str]:
    """Files under ``folder`` (logs, results, MLflow store, Snakemake metadata) that contain a
    planted credential."""
    values = [v.encode() for v in PLANTED_SECRETS.values()]
    return [str(p) for p in folder.rglob("*")
            if p.is_file() and not p.is_symlink() and any(v in p.read_bytes() for v in values)]


def snakemake(root: Path, wd: Path, *args: str, check: bool = True, profile: str = "default",
              timeout: int = 1200, path_prepend: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "-d", str(wd),
           "--profile", str(root / "workflow" / "profiles" / profile), *args]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the default store
    env.update(PLANTED_SECRETS)
    if path_prepend is not None:
        env["PATH"] = f"{path_prepend}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def shrink(root: Path, wd: Path, benchmarks: tuple[str, ...] = ("alfworld", "webshop")) -> None:
    """Copy the real config into ``wd`` and shrink it (the composed-config pattern)."""
    shutil.copytree(root / "config", wd / "config")
    shutil.copytree(root / "paper_figures" / "reported", wd / "paper_figures" / "reported")
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["studies"] = ["hgpo"]  # the classic studies have smoke runs of their own (tests/studies)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    study = yaml.safe_load((wd / "config" / "studies" / "hgpo.yaml").read_text())
    study["datasets"]["alfworld/embedded"] = SMOKE_DATASET
    study["datasets"]["webshop/embedded"] = SMOKE_WEBSHOP_DATASET
    study["models"]["tiny-qwen2-alfworld"]["params"] = SMOKE_MODEL
    study["models"]["tiny-qwen2-webshop"]["params"] = SMOKE_WEBSHOP_MODEL
    study["benchmarks"] = {b: study["benchmarks"][b] for b in benchmarks}
    for sc in ("embedded", "paper"):
        models = study["scales"][sc]["models"]
        if isinstance(models, dict):
            study["scales"][sc]["models"] = {b: models[b] for b in benchmarks}
    study["methods"] = {k: study["methods"][k] for k in ("warmstart", "hgpo")}
    emb = study["scales"]["embedded"]
    emb["seeds"] = [0]
    emb["train"].update(SMOKE_TRAIN)
    emb["evaluate"].update(SMOKE_EVAL)
    (wd / "config" / "studies" / "hgpo.yaml").write_text(yaml.safe_dump(study))


def _wrap_repro(folder: Path, script_for) -> Path:
    """Write ``folder/bin/repro`` from ``script_for(real_repro, marker)``; returns the bin folder.
    Jobs find it first on PATH: faults injected from outside the package."""
    real = shutil.which("repro")
    if real is None:
        raise RuntimeError("repro is not on PATH; activate the virtual environment")
    bindir = folder / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "repro"
    script.write_text(script_for(real, folder / "injected-once"))
    script.chmod(0o755)
    return bindir


def flaky_repro(folder: Path, mode: str) -> Path:
    """A ``repro`` that fails (exit 1) the first time it is called (``mode="once"``) or every
    time (``"always"``), else runs the real one."""
    return _wrap_repro(folder, lambda real, marker: (
        "#!/bin/sh\n"
        f'if [ "{mode}" = always ] || [ ! -e "{marker}" ]; then\n'
        f'    touch "{marker}"; echo "injected failure ({mode})" >&2; exit 1\n'
        "fi\n"
        f'exec "{real}" "$@"\n'))


def preempted_repro(folder: Path) -> Path:
    """A ``repro`` whose first ``train`` stops its trainer at the first checkpoint (SIGSTOP, so
    it cannot go further) and cancels its own SLURM job with ``scancel``, as a preemption would;
    every other call runs the real ``repro``."""
    return _wrap_repro(folder, lambda real, marker: f"""#!{sys.executable}
import os, signal, subprocess, sys, time
from pathlib import Path
args = sys.argv[1:]
if "train" in args and not os.path.exists({str(marker)!r}):
    Path({str(marker)!r}).touch()
    work = Path(args[args.index("--work-dir") + 1])
    proc = subprocess.Popen([{real!r}, *args])
    while not (work / "state.pt").exists():
        if proc.poll() is not None:
            sys.exit("trainer ended before its first checkpoint")
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)
    subprocess.run(["scancel", os.environ["SLURM_JOB_ID"]], check=True)
    proc.wait()
    sys.exit(1)
os.execv({real!r}, [{real!r}, *args])
""")
