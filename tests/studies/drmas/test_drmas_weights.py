"""Non-shared agents: each agent's model is updated only by its own rows, through its own worker
group (optimizer, mini-batches, gradient norm), samples when its role is named, and comes back
from the checkpoint; one shared model stays the single worker group it always was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer
import repro.rl.plugin  # noqa: F401  (registers ppo_clip)
from repro.rl import trainer as T
from repro.rl.batch import StepBatch
from repro.rl.config import TrainConfig
from repro.rl.finetune import Tuned
from repro.rl.rollout import Rollout
from repro.studies.drmas.params import PerAgentParams
from repro.studies.drmas.weights import per_agent_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny") / "m"
    build_tiny_qwen2(d, {"seed": 0, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "num_key_value_heads": 1},
                     ["solve verify approve reject the answer is 1 2 3 4 5 6 7 8 9"])
    return d


def rollout(agent: list[int]) -> Rollout:
    rng = np.random.default_rng(0)
    n = len(agent)
    prompts = [list(rng.integers(5, 30, size=6)) for _ in range(n)]
    responses = [list(rng.integers(5, 30, size=3)) + [1] for _ in range(n)]
    batch = StepBatch(group=np.zeros(n), traj=np.arange(n), step=np.zeros(n), anchor=np.zeros(n),
                      reward=np.ones(n), episode_reward=np.ones(n), valid=np.ones(n, bool), agent=np.array(agent))
    return Rollout(batch=batch, prompt_ids=prompts, response_ids=responses, won=np.ones(n, bool),
                   lengths=np.ones(n, np.int64), task_types=["t"] * n, games=["g"] * n)


def cfg() -> TrainConfig:
    return TrainConfig(lr=1e-2, mini_batch_rows=2, micro_batch_rows=2, old_logprobs="recompute",
                       policy_loss_params={"kl_coef": 0.0})


def test_each_agent_learns_from_its_own_rows_only(tiny):
    model, tok = load_model_and_tokenizer(tiny)
    tuned = per_agent_models(model, tok, PerAgentParams(agents=2))
    m0, m1 = tuned.module.models
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (m0, m1)]
    groups = T.worker_groups(tuned, tuned.module, fsdp=False)
    assert [a for a, _ in groups] == [(0,), (1,)]
    optimizers = [torch.optim.AdamW(p, lr=1e-2) for _, p in groups]
    ro = rollout([0, 0, 0, 0])  # only the first agent acted
    adv = np.array([1.0, -1.0, 0.5, -0.5])
    parts = T.update_groups(groups, optimizers, tuned.module, None, ro, adv, cfg(), tok,
                            np.random.default_rng(0), None, tuned)
    changed = [any(not torch.equal(before[i][k], m.state_dict()[k]) for k in before[i]) for i, m in enumerate((m0, m1))]
    assert changed == [True, False]
    assert "train/grad_norm/wg0" in parts and "train/grad_norm/wg1" not in parts
    assert parts["train/grad_norm"] == parts["train/grad_norm/wg0"]
    ro = rollout([0, 1, 1, 0])
    parts = T.update_groups(groups, optimizers, tuned.module, None, ro, adv, cfg(), tok,
                            np.random.default_rng(1), None, tuned)
    assert {"train/grad_norm/wg0", "train/grad_norm/wg1"} <= set(parts) and set(tuned.columns) >= {
        "train/grad_norm/wg0", "train/grad_norm/wg1"}
    assert any(not torch.equal(before[1][k], m1.state_dict()[k]) for k in before[1])
    # the optimizers hold their own agent's weights only
    assert {id(p) for p in groups[0][1]}.isdisjoint({id(p) for p in groups[1][1]})


def test_sampling_names_the_role_and_the_checkpoint_restores_every_agent(tiny, tmp_path):
    model, tok = load_model_and_tokenizer(tiny)
    tuned = per_agent_models(model, tok, PerAgentParams(agents=2))
    with torch.no_grad():
        for p in tuned.module.models[1].parameters():
            p.add_(0.5)
    assert tuned.agent_kwargs([1, 1]) == {} and tuned.module.active == 1
    with pytest.raises(ValueError, match="one agent's model"):
        tuned.agent_kwargs([0, 1])
    tuned.save(tmp_path / "ck")
    tok.save_pretrained(tmp_path / "ck")
    loaded, _ = load_model_and_tokenizer(tmp_path / "ck")
    back = per_agent_models(loaded, tok, PerAgentParams(agents=2), checkpoint=tmp_path / "ck")
    for a, b in zip(tuned.module.models, back.module.models):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_one_model_is_one_worker_group(tiny):
    model, tok = load_model_and_tokenizer(tiny)
    groups = T.worker_groups(Tuned(model), model, fsdp=False)
    assert len(groups) == 1 and groups[0][0] is None
    with pytest.raises(ValueError, match="not fsdp"):
        T.worker_groups(per_agent_models(model, tok, PerAgentParams()), model, fsdp=True)
