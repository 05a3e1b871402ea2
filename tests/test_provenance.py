"""The CPU record every result carries, and the kernel pins the workflow sets for its jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from repro.provenance import apply_cpu_pins, kernel_signature

PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}


def test_pins_are_defaults_an_exported_value_wins():
    env = {"MKL_CBWR": "COMPATIBLE"}
    assert apply_cpu_pins(PINS, env) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE",
                                         "OPENBLAS_CORETYPE": "Haswell"}
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"


def _record_in_subprocess(env: dict, import_torch: bool) -> dict:
    code = ("import json" + (", torch" if import_torch else "") +
            "; from repro.provenance import cpu_record; print(json.dumps(cpu_record()))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_the_record_names_the_kernels_in_force():
    """Torch dispatches what ATEN_CPU_CAPABILITY allows (every x86-64 CPU here has AVX2), and
    the record says so beside the CPU model, the BLAS build and the thread count."""
    rec = _record_in_subprocess(PINS, import_torch=True)
    assert rec["torch"]["capability"] == "AVX2" and rec["torch"]["blas"] and rec["torch"]["threads"] >= 1
    assert rec["model"] and rec["cores"] >= 1 and rec["env"]["MKL_CBWR"] == "AVX2"
    assert any(lib["internal_api"] == "openblas" and lib["architecture"] == "Haswell"
               for lib in rec["blas_libraries"])
    assert kernel_signature(rec).startswith("torch AVX2 ")
    # a process that never imported torch says so: no torch kernel touched its numbers
    assert _record_in_subprocess({}, import_torch=False)["torch"] is None
    assert kernel_signature(None) == "not recorded"
