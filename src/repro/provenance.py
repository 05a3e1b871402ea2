"""What produced a result: package versions, data and model digests, git commit, config hash, and
the CPU and numeric kernels the numbers were computed with.

The same code on the same inputs gives bit-identical numbers on one machine, but the CPU decides
which kernels run: torch's vectorised ATen kernels dispatch on the CPU's capability (AVX512, AVX2,
…), MKL and OpenBLAS pick their own code paths, and a summation in another order rounds
differently. A chaotic process (RL on a tiny model) turns those last-bit differences into different
results. The workflow pins the kernel dispatch (``cpu_pins`` in ``config/config.yaml``, see
:func:`apply_cpu_pins`) and every result records what was in force (:func:`cpu_record`), so a table
that mixes kernels says so (``repro.figures.summary.kernel_mixture``).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Mapping

from repro import io as rio

PACKAGES = ("repro", "alfworld", "textworld", "transformers", "tokenizers", "torch", "numpy", "scipy",
            "scikit-learn", "mlflow", "snakemake")
# Environment variables that steer kernel dispatch and threading; recorded when set.
KERNEL_VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
               "OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "REPRO_TORCH_THREADS")
TRAIN_RECORD = "train_provenance.json"  # written into the checkpoint by `repro train`


def apply_cpu_pins(pins: Mapping[str, str], environ: dict | None = None) -> dict[str, str]:
    """Set each pin in ``environ`` (default ``os.environ``) unless it is already set there (a value
    the user exported wins, and the results record it). Returns the pins now in force. Must run
    before the process that computes imports torch (the workflow sets them for its jobs)."""
    env = os.environ if environ is None else environ
    for key, value in pins.items():
        env.setdefault(key, str(value))
    return {k: env[k] for k in pins}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_build(torch) -> dict[str, Any]:
    """BLAS and kernel facts of the loaded torch."""
    info = torch.__config__.show()
    blas = next((p.split("=", 1)[1] for p in info.replace(",", " ").split() if p.startswith("BLAS_INFO=")), None)
    return {"capability": torch.backends.cpu.get_cpu_capability(), "blas": blas,
            "mkl": torch.backends.mkl.is_available(), "threads": torch.get_num_threads()}


def cpu_record() -> dict[str, Any]:
    """The CPU and the kernels in force in this process: CPU model and core count, torch's
    dispatched capability, BLAS build and thread count (``torch`` is None when the process never
    imported torch: then no torch kernel touched its numbers), the BLAS libraries loaded by
    numpy/scipy/torch (threadpoolctl) and the kernel environment variables that are set."""
    out: dict[str, Any] = {"model": _cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(),
                           "torch": _torch_build(sys.modules["torch"]) if "torch" in sys.modules else None}
    try:
        from threadpoolctl import threadpool_info

        out["blas_libraries"] = sorted(
            ({k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
             for lib in threadpool_info() if lib.get("user_api") == "blas"),
            key=lambda d: str(d["internal_api"]))
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, say so
        out["blas_libraries"] = None
    out["env"] = {k: os.environ[k] for k in KERNEL_VARS if k in os.environ}
    return out


def kernel_facts(cpu: Mapping[str, Any] | None) -> dict[str, str]:
    """The part of a :func:`cpu_record` that decides the numbers' last bits, per library the process
    loaded: torch's dispatched capability and BLAS, MKL's reproducibility mode, and each other BLAS
    library's kernel sets (numpy's and scipy's OpenBLAS count once). A library the process never
    loaded has no entry: it touched none of its numbers."""
    if not cpu:
        return {}
    out: dict[str, str] = {}
    t = cpu.get("torch")
    if t:
        out["torch"] = f"{t['capability']} {t['blas']}"
        if t.get("mkl"):
            out["MKL_CBWR"] = cpu.get("env", {}).get("MKL_CBWR", "unset")
    kernels: dict[str, set[str]] = {}
    for lib in cpu.get("blas_libraries") or []:
        if lib["internal_api"] != "mkl":
            kernels.setdefault(str(lib["internal_api"]), set()).add(str(lib["architecture"]))
    out.update({api: "/".join(sorted(arch)) for api, arch in kernels.items()})
    return out


def kernel_signature(cpu: Mapping[str, Any] | None) -> str:
    """:func:`kernel_facts` as one line (``not recorded`` without a record)."""
    facts = kernel_facts(cpu)
    return ", ".join(f"{k} {v}" for k, v in facts.items()) if cpu else "not recorded"


def cpu_tags(cpu: Mapping[str, Any]) -> dict[str, str]:
    """The CPU record as flat MLflow tags (``cpu.*``)."""
    t = cpu.get("torch") or {}
    return {"cpu.model": str(cpu["model"]), "cpu.cores": str(cpu["cores"]),
            "cpu.torch_capability": str(t.get("capability")), "cpu.torch_blas": str(t.get("blas")),
            "cpu.torch_threads": str(t.get("threads")), "cpu.kernels": kernel_signature(cpu)}


def provenance(dataset_dir: Path | None = None, model_dir: Path | None = None,
               run_config: dict | None = None) -> dict[str, Any]:
    """What produced a result: package versions, data and model digests (``MANIFEST.json``), git
    commit, config hash, the CPU record of this process and, for an evaluated checkpoint, the
    training's own record (``train``, from :data:`TRAIN_RECORD`)."""
    from repro.config import config_hash
    from repro.tracking import git_commit

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    out: dict[str, Any] = {"versions": versions, "git_commit": git_commit(), "cpu": cpu_record()}
    if dataset_dir is not None and (record := rio.manifest_record(dataset_dir)):
        folder = Path(dataset_dir).resolve()  # its name: runs of one benchmark may read per-seed draws
        out["dataset"] = {**record, "name": f"{folder.parent.name}/{folder.name}"}
    if model_dir is not None:
        model_dir = Path(model_dir)
        state = model_dir / "trainer_state.json"  # a trained checkpoint names its base model
        record = rio.manifest_record(model_dir) or (
            rio.read_json(state).get("base_model") if state.exists() else None)
        if record:
            out["model"] = record
        if (model_dir / TRAIN_RECORD).exists():
            out["train"] = rio.read_json(model_dir / TRAIN_RECORD)
    if run_config is not None:
        out["config_hash"] = config_hash(run_config)
    return out
