"""PA-MoE and its token-routing baseline train end to end on tiny inputs (real ALFWorld games, the
study's own run configs) and their checkpoints restore for evaluation; the sampler's log-probs of
a mixed-expert batch are what the update recomputes expert by expert."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from repro.config import load, run_config

pytest.importorskip("peft")

SHRINK = {"iterations": 2, "tasks_per_batch": 2, "group_size": 3, "max_steps": 5, "val_every": 2, "val_episodes": 2,
          "checkpoint_every": 1, "mini_batch_rows": 16, "micro_batch_rows": 8, "lr": 0.01}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_alfworld):
    base = tmp_path_factory.mktemp("pamoe")
    return (base, *tiny_alfworld(base, {"train": 4, "valid_seen": 2, "valid_unseen": 2}))


def _run(root, method: str):
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["studies"] = ["pamoe"]
    run = run_config(load(cfg, root), "pamoe", method, "alfworld")
    run["train"].update(SHRINK)
    run["evaluate"].update(episodes_per_game=1, max_steps=5)
    run.update(benchmark="alfworld", model="tiny", seed=0)
    return run


def _cli(base, *args):
    proc = subprocess.run([sys.executable, "-m", "repro.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "REPRO_TORCH_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("method, columns", [
    ("pamoe", ["router/loss", "router/tau", "moe/switches_per_episode", "moe/max_expert_share"]),
    ("token_moe", ["moe/switches_per_episode", "moe/token_switches_per_episode"]),
])
def test_routed_experts_train_and_restore(inputs, root, method, columns):
    base, data, model = inputs
    run = _run(root, method)
    out = base / method
    _cli(base, "--log", str(out / "train.log"), "train", "--run-config", json.dumps(run), "--dataset-dir", str(data),
         "--model-dir", str(model), "--out", str(out / "checkpoint"), "--log-csv", str(out / "train_log.csv"),
         "--work-dir", str(out / "_resume"), "--tracking-uri", f"sqlite:///{base / 'mlflow.db'}")
    log = pd.read_csv(out / "train_log.csv")
    rows = log[log.iteration >= 1]
    assert len(rows) == 2 and rows[columns].notna().all().all()
    assert (rows[[c for c in log if c.startswith("share/")]].sum(axis=1).round(6) == 1).all()
    if method == "pamoe":  # tau anneals over anneal_steps router updates (6 in the study's embedded config)
        assert rows["router/tau"].tolist() == pytest.approx([2.0, 2.0 - 1.5 / 6])
    # the checkpoint's model is the frozen base; the experts live beside it and have learned
    assert all(torch.equal(v, load_file(model / "model.safetensors")[k])
               for k, v in load_file(out / "checkpoint" / "model.safetensors").items())
    adapters = torch.load(out / "checkpoint" / "adapters.pt", weights_only=True)
    assert any(v.abs().sum() > 0 for k, v in adapters.items() if "lora_B" in k or "moe_B" in k)
    _cli(base, "evaluate", "--run-config", json.dumps(run), "--dataset-dir", str(data),
         "--checkpoint", str(out / "checkpoint"), "--out", str(out / "eval.json"))
    split = json.loads((out / "eval.json").read_text())["splits"]["valid_seen"]
    experts = split["experts"]
    assert len(experts["share"]) == 4 and sum(experts["share"]) == pytest.approx(1.0, abs=1e-3)
    assert set(experts["share_by_task_type"]) == set(split["per_task_type"])


def test_single_lora_baseline_has_the_experts_total_rank(root):
    study = yaml.safe_load((root / "config" / "studies" / "pamoe.yaml").read_text())
    for scale in ("embedded", "paper"):
        experts = study["methods"]["pamoe"]["train"][scale]["finetune_params"]
        single = study["methods"]["gigpo_lora"]["train"][scale]["finetune_params"]
        token = study["methods"]["token_moe"]["train"][scale]["finetune_params"]
        assert single["rank"] == experts["experts"] * experts["rank"], scale
        assert (token["experts"], token["rank"]) == (experts["experts"], experts["rank"]), scale
        assert single["alpha"] / single["rank"] == experts["alpha"] / experts["rank"], scale


def test_sampler_logprobs_equal_the_per_expert_recompute(inputs):
    """The mixed-adapter sample (one generate, rows on experts 0, 1, 2, 1) and the update's
    forward, expert by expert (``trainer.by_agent``), give the same log-probs in fp32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from repro.rl.generation import TransformersBackend
    from repro.rl.policy import batched_logprobs
    from repro.rl.trainer import by_agent
    from repro.studies.pamoe.params import LoraExpertsParams
    from repro.studies.pamoe.routed import lora_experts

    _, _, model_dir = inputs
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tuned = lora_experts(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), tok,
                         LoraExpertsParams(experts=3, rank=4, alpha=8, dropout=0.0, heads=2))
    with torch.no_grad():
        for name, p in tuned.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)
    backend = TransformersBackend(tuned.sampler, tok, max_new_tokens=6, max_prompt_tokens=64,
                                  agent_kwargs=tuned.agent_kwargs)
    prompts = ["you are in the kitchen", "go to the fridge", "you are in the kitchen", "open the drawer"]
    agents = [0, 1, 2, 1]
    gens = backend.generate(prompts, temperature=1.0, seed=3, agents=agents)
    ro = type("Ro", (), {})()
    ro.batch = type("B", (), {"agent": np.array(agents)})()
    got = [None] * 4
    for rows in by_agent(range(4), ro, tuned):
        for i, x in zip(rows, batched_logprobs(tuned.module, [gens[i].prompt_ids for i in rows],
                                               [gens[i].response_ids for i in rows], tok.pad_token_id, 8)):
            got[i] = x
    for g, x in zip(gens, got):
        torch.testing.assert_close(x, torch.tensor(g.logprobs), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one set of weights"):
        TransformersBackend(tuned.module, tok, max_new_tokens=2, max_prompt_tokens=8).generate(
            prompts[:1], temperature=1.0, seed=0, agents=[0])
