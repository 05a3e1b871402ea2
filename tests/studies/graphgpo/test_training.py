"""GraphGPO trains end to end on tiny inputs: real ALFWorld games keyed by the tracked world state,
the graph estimator, the progress diagnostic in train_log.csv, and the run config GraphGPO's study
gives (config/studies/graphgpo.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from repro.config import load, run_config

SHRINK = {"iterations": 2, "tasks_per_batch": 2, "group_size": 4, "max_steps": 6, "val_every": 0,
          "checkpoint_every": 1, "mini_batch_rows": 16, "micro_batch_rows": 8}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_alfworld):
    base = tmp_path_factory.mktemp("graphgpo")
    return (base, *tiny_alfworld(base, {"train": 4, "valid_seen": 2, "valid_unseen": 2}))


def test_graphgpo_trains_with_world_state_keys(inputs, root):
    base, data, model = inputs
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["studies"] = ["graphgpo"]
    run = run_config(load(cfg, root), "graphgpo", "graphgpo", "alfworld")
    assert run["train"]["state_key"] == "alfworld_tracked" and run["params"]["omega"] == 0.1
    run["train"].update(SHRINK)
    run.update(benchmark="alfworld", model="tiny", seed=0)
    out = base / "run"
    cmd = [sys.executable, "-m", "repro.cli", "--log", str(out / "train.log"), "train",
           "--run-config", json.dumps(run), "--dataset-dir", str(data), "--model-dir", str(model),
           "--out", str(out / "checkpoint"), "--log-csv", str(out / "train_log.csv"),
           "--work-dir", str(out / "_resume"), "--tracking-uri", f"sqlite:///{base / 'mlflow.db'}"]
    proc = subprocess.run(cmd, env={**os.environ, "REPRO_TORCH_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    trained = load_file(out / "checkpoint" / "model.safetensors")
    initial = load_file(model / "model.safetensors")
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)
    log = pd.read_csv(out / "train_log.csv")
    rows = log[log.iteration >= 1]
    assert len(rows) == 2 and rows["graph/nodes_per_group"].notna().all()
    assert (rows["graph/nodes_per_group"] >= 1).all()
