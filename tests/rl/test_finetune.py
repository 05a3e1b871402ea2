"""What the trainer updates (``train.finetune``): LoRA on q/k/v/o leaves every other weight of the
saved (merged) checkpoint equal to the base model's, changes the attention projections, and
refuses the sampler and sharding it is not built for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from repro.config import ConfigError, load, run_config
from repro.rl.family import AgenticRL

pytest.importorskip("peft")

SHRINK = {"iterations": 2, "tasks_per_batch": 2, "group_size": 3, "max_steps": 4, "val_every": 0,
          "checkpoint_every": 1, "mini_batch_rows": 16, "micro_batch_rows": 8, "lr": 0.01,
          "finetune": "lora", "finetune_params": {"rank": 4, "alpha": 8, "dropout": 0.0}}


def test_lora_trains_only_the_adapted_projections(tmp_path, root, tiny_alfworld):
    data, model = tiny_alfworld(tmp_path, {"train": 4, "valid_seen": 2, "valid_unseen": 2})
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    run = run_config(load(cfg, root), "hgpo", "gigpo", "alfworld")
    run["train"].update(SHRINK)
    run.update(benchmark="alfworld", model="tiny", seed=0)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "repro.cli", "--log", str(out / "train.log"), "train", "--run-config", json.dumps(run),
           "--dataset-dir", str(data), "--model-dir", str(model), "--out", str(out / "checkpoint"),
           "--log-csv", str(out / "train_log.csv"), "--work-dir", str(out / "_resume"),
           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    proc = subprocess.run(cmd, env={**os.environ, "REPRO_TORCH_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    trained, base = load_file(out / "checkpoint" / "model.safetensors"), load_file(model / "model.safetensors")
    assert set(trained) == set(base)  # a plain model: evaluate loads it like any checkpoint
    adapted = [k for k in base if any(f"{t}.weight" in k for t in ("q_proj", "k_proj", "v_proj", "o_proj"))]
    assert adapted and any(not torch.equal(trained[k], base[k]) for k in adapted)
    assert all(torch.equal(trained[k], base[k]) for k in base if k not in adapted)


@pytest.mark.parametrize(("extra", "message"), [({"rollout_backend": "vllm"}, "needs rollout_backend: transformers"),
                                                ({"parallel": "fsdp"}, "parallel: ddp"),
                                                ({"finetune_params": {"rank": 0}}, "rank >= 1"),
                                                ({"finetune": "qlora"}, "not a registered fine-tuning method")])
def test_lora_config_is_checked(extra, message):
    with pytest.raises(ConfigError, match=message):
        AgenticRL().train_config({"finetune": "lora", **extra}, "train")
