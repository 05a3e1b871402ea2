"""Running the CLI as the workflow's jobs do (a subprocess, one torch thread), for end-to-end tests.
Importable from any test: pytest puts tests/ on sys.path (its conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args: str, timeout: int = 600) -> None:
    """``python -m repro.cli *args``; fails the test with the end of stderr when it fails."""
    proc = subprocess.run([sys.executable, "-m", "repro.cli", *args], env={**os.environ, "REPRO_TORCH_THREADS": "1"},
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
