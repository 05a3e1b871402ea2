"""The ``repro`` command's exit (repro.cli.run): the job's files and log are complete, its exit
code is main's, and the garbage collector was frozen before shutdown."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess

from repro import cli


def test_console_script_writes_output_and_log(tmp_path):
    exe = shutil.which("repro")
    assert exe, "the repro console script is not installed (pip install -e .)"
    out, log = tmp_path / "math", tmp_path / "fetch.log"
    proc = subprocess.run([exe, "--log", str(log), "fetch-dataset", "--plugin", "repro.studies.kpo",
                           "--name", "math/embedded", "--params", '{"seed": 0, "max_number": 9, "train": 8, "test": 4}',
                           "--out", str(out)], env={**os.environ, "REPRO_TORCH_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()), "the dataset folder is empty"
    assert "dataset math/embedded ready" in log.read_text()


def test_run_returns_mains_code_and_freezes(monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: 2)
    try:
        assert cli.run() == 2
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
