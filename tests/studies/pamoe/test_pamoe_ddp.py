"""PA-MoE's experts update data-parallel as in one process: each rank runs its micro-batches'
rows through their own experts, and the experts' gradients (only the adapters train) are summed
over ranks (``distributed.sync_grads``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
WORKER = Path(__file__).with_name("ddp_experts.py")


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]


def test_two_processes_update_the_experts_as_one(tmp_path):
    _run([sys.executable, str(WORKER), str(tmp_path / "one.pt")], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
          str(tmp_path / "two.pt")], tmp_path)
    one, two = (torch.load(tmp_path / f, weights_only=False) for f in ("one.pt", "two.pt"))
    assert one["world"] == 1 and two["world"] == 2
    moved = {k for k in one["after"] if not torch.equal(one["after"][k], one["before"][k])}
    assert any(".expert0." in k for k in moved) and any(".expert2." in k for k in moved)  # every expert learned
    d_one = torch.cat([(one["after"][k] - one["before"][k]).flatten() for k in sorted(one["after"])])
    d_two = torch.cat([(two["after"][k] - two["before"][k]).flatten() for k in sorted(one["after"])])
    assert float((d_one - d_two).norm() / d_one.norm()) < 1e-3  # as tests/rl/test_distributed.py
    assert two["parts"]["train/policy_loss"] == pytest.approx(one["parts"]["train/policy_loss"], rel=1e-4, abs=1e-7)
