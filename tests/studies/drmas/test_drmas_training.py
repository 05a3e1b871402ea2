"""Dr. MAS trains and evaluates end to end on tiny inputs through the CLI the workflow calls: the
team's warm start, the Solver / Verifier rollout, agent-wise normalisation, shared and non-shared
agents (one worker group per agent, per-group gradient norms in train_log.csv, every agent in the
checkpoint), and the team evaluated with avg@k / pass@k."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml
from cli_run import run_cli
from safetensors.torch import load_file

from repro.config import load, run_config
from repro.studies.drmas.warmstart import build as build_team

SHRINK = {"iterations": 2, "tasks_per_batch": 2, "group_size": 3, "val_every": 0, "checkpoint_every": 1,
          "mini_batch_rows": 4, "micro_batch_rows": 4, "max_response_tokens": 12}


def drmas_run(root, method: str, benchmark: str) -> dict:
    """The run config the workflow would pass for ``method`` on ``benchmark`` (Dr. MAS studied alone)."""
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["studies"] = ["drmas"]
    return run_config(load(cfg, root), "drmas", method, benchmark)


def cli_train(run: dict, base, data, model, out) -> None:
    run_cli("--log", str(out / "train.log"), "train", "--run-config", json.dumps(run), "--dataset-dir", str(data),
            "--model-dir", str(model), "--out", str(out / "checkpoint"), "--log-csv", str(out / "train_log.csv"),
            "--work-dir", str(out / "_resume"), "--tracking-uri", f"sqlite:///{base / 'mlflow.db'}")


def cli_evaluate(run: dict, data, out) -> dict:
    """The test split's record of eval.json."""
    run_cli("--log", str(out / "eval.log"), "evaluate", "--run-config", json.dumps(run), "--dataset-dir", str(data),
            "--checkpoint", str(out / "checkpoint"), "--out", str(out / "eval.json"))
    return json.loads((out / "eval.json").read_text())["splits"]["test"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_math):
    base = tmp_path_factory.mktemp("drmas")
    return (base, *tiny_math(base, {"train": 40, "valid": 4, "test": 4}, build_team))


@pytest.mark.parametrize("method", ["share_drmas", "nonshare_drmas"])
def test_team_trains_and_evaluates(inputs, root, method):
    base, data, model = inputs
    run = drmas_run(root, method, "math")
    assert run["train"]["rollout"] == "drmas_math" and run["params"]["norm"] == "agent"
    run["train"].update(SHRINK)
    run["evaluate"].update(episodes_per_game=2)
    run.update(benchmark="math", model="tiny", seed=0)
    out = base / method
    cli_train(run, base, data, model, out)
    log = pd.read_csv(out / "train_log.csv")
    rows = log[log.iteration >= 1]
    assert len(rows) == 2 and rows["train/grad_norm"].notna().all()
    initial = load_file(model / "model.safetensors")
    trained = load_file(out / "checkpoint" / "model.safetensors")
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)
    if method == "nonshare_drmas":
        assert {"train/grad_norm/wg0", "train/grad_norm/wg1"} <= set(log.columns)
        assert rows["train/grad_norm/wg0"].notna().all()
        other = load_file(out / "checkpoint" / "agents" / "agent1" / "model.safetensors")
        assert any(not torch.equal(other[k], trained[k]) for k in trained)  # the Verifier's own weights
    res = cli_evaluate(run, data, out)
    assert res["episodes"] == 8 and res["top_p"] == 0.95 and "pass_at_k_pct" in res["metrics"]


@pytest.fixture(scope="module")
def search_inputs(tmp_path_factory):
    from repro.data.search_embedded import build as build_data
    from repro.studies.drmas.warmstart import build_search

    base = tmp_path_factory.mktemp("drmas_search")
    data, model = base / "data", base / "model"
    build_data(data, {"seed": 0, "people": 40, "train": 30, "valid": 4, "test": 3})
    build_search(model, {"demo_questions": 12, "sft_epochs": 1, "model": {"num_hidden_layers": 1}}, data)
    return base, data, model


@pytest.mark.parametrize("method", ["nonshare_grpo", "single_grpo"])
def test_search_team_trains_and_evaluates(search_inputs, root, method):
    """The search benchmark's overrides reach the run (team rollout, three non-shared agents, the
    single agent's multi-turn rollout) and the search episodes train and evaluate."""
    base, data, model = search_inputs
    run = drmas_run(root, method, "search")
    rollout = {"nonshare_grpo": "drmas_search", "single_grpo": "multi_turn"}[method]
    assert (run["train"]["rollout"], run["train"]["max_steps"], run["train"]["group_size"]) == (rollout, 4, 5)
    run["train"].update(SHRINK)
    run["evaluate"].update(episodes_per_game=1)
    run.update(benchmark="search", model="tiny", seed=0)
    out = base / method
    cli_train(run, base, data, model, out)
    log = pd.read_csv(out / "train_log.csv")
    if method == "nonshare_grpo":
        assert {f"train/grad_norm/wg{k}" for k in range(3)} <= set(log.columns)
        assert (out / "checkpoint" / "agents" / "agent2" / "model.safetensors").exists()  # the Answer agent
    res = cli_evaluate(run, data, out)
    assert res["episodes"] == 3 and 0.0 <= res["success_rate"] <= 1.0 and res["mean_episode_length"] >= 1
