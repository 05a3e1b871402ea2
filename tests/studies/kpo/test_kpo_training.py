"""KPO trains and evaluates end to end on tiny inputs through the CLI the workflow calls: generated
problems, the math warm start, the single-turn rollout with the verifier's reward, the ``kpo``
loss with the study's run config (its Kalman columns, gradient norms and ratio spikes in
train_log.csv), and avg@k / pass@k in eval.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml
from cli_run import run_cli
from safetensors.torch import load_file

from repro.config import load, run_config
from repro.rl.math_benchmark import build_warmstart

SHRINK = {"iterations": 2, "tasks_per_batch": 2, "group_size": 4, "val_every": 2, "val_episodes": 4,
          "checkpoint_every": 1, "mini_batch_rows": 2, "micro_batch_rows": 2, "max_response_tokens": 12}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_math):
    base = tmp_path_factory.mktemp("kpo")
    return (base, *tiny_math(base, {"train": 60, "valid": 6, "test": 5}, build_warmstart))


def test_kpo_trains_and_reports_avg_and_pass_at_k(inputs, root):
    base, data, model = inputs
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["studies"] = ["kpo"]
    run = run_config(load(cfg, root), "kpo", "kpo", "math")
    assert run["train"]["policy_loss"] == "kpo" and run["train"]["rollout"] == "single_turn"
    assert run["train"]["policy_loss_params"]["kalman_q"] == 0.0073
    run["train"].update(SHRINK)
    run["evaluate"].update(episodes_per_game=3)
    run.update(benchmark="math", model="tiny", seed=0)
    out = base / "run"
    run_cli("--log", str(out / "train.log"), "train", "--run-config", json.dumps(run), "--dataset-dir", str(data),
         "--model-dir", str(model), "--out", str(out / "checkpoint"), "--log-csv", str(out / "train_log.csv"),
         "--work-dir", str(out / "_resume"), "--tracking-uri", f"sqlite:///{base / 'mlflow.db'}")
    trained = load_file(out / "checkpoint" / "model.safetensors")
    initial = load_file(model / "model.safetensors")
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)
    log = pd.read_csv(out / "train_log.csv")
    rows = log[log.iteration >= 1]
    assert len(rows) == 2
    for col in ("train/grad_norm", "train/grad_norm_max", "train/ratio_spike_frac", "train/filtered_abs_mean"):
        assert rows[col].notna().all(), col
    assert (rows["train/grad_norm_max"] >= rows["train/grad_norm"]).all()
    assert {"train/sign_switch_raw", "train/sign_switch_filtered"} <= set(log.columns)
    assert log["eval/val/success_rate"].notna().sum() == 2  # before training and at iteration 2
    run_cli("--log", str(out / "eval.log"), "evaluate", "--run-config", json.dumps(run), "--dataset-dir", str(data),
         "--checkpoint", str(out / "checkpoint"), "--out", str(out / "eval.json"))
    res = json.loads((out / "eval.json").read_text())["splits"]["test"]
    assert res["episodes"] == 15 and res["games"] == 5 and res["top_p"] == 0.7
    avg, pass_k = 100 * res["success_rate"], res["metrics"]["pass_at_k_pct"]
    assert 0 <= avg <= pass_k <= 100  # a problem solved in some sample counts once
