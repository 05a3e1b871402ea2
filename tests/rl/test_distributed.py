"""Data-parallel training: two processes (torchrun, gloo, CPU) give the losses and updated
parameters of one process on the same batch (actor and critic), within float tolerance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_update.py")


def _run(cmd: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]


def _one_and_two(tmp_path: Path, *args: str) -> tuple[dict, dict]:
    """The worker's output in one process and in two (torchrun, gloo)."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    _run([sys.executable, str(WORKER), str(tmp_path / "one" / "out.pt"), *args], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(WORKER), str(tmp_path / "two" / "out.pt"), *args], tmp_path)
    one, two = (torch.load(tmp_path / d / "out.pt") for d in ("one", "two"))
    assert one["world"] == 1 and two["world"] == 2
    return one, two


def _update_gap(one: dict, two: dict, net: str) -> float:
    """|Δ_one − Δ_two| / |Δ_one|: Δ a run's update of ``net``, all parameters as one vector."""
    d_one, d_two = (torch.cat([(r[net][n] - one[f"{net}0"][n]).flatten() for n in one[net]]) for r in (one, two))
    return float((d_one - d_two).norm() / d_one.norm())


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(tmp_path, parallel):
    """Whole model per rank with all-reduced gradients (ddp), or parameters, gradients and AdamW
    states sharded over the ranks (fsdp, FSDP2 on gloo): the same update as one process.

    Two processes sum the gradients in another order than one, so every number may differ by
    rounding, and the CPU's kernels decide by how much; the checks are what rounding cannot break
    (measured under forced CPU capabilities avx512 / avx2 / default and MKL_CBWR=COMPATIBLE: update
    gaps ≤ 5.2e-6, logged losses ≤ 2e-6 relative, clip fractions equal)."""
    one, two = _one_and_two(tmp_path, parallel)
    assert one["parts"].keys() == two["parts"].keys()
    for k, v in one["parts"].items():
        if k in one["element"]:  # counts tokens past a threshold: one token may cross it
            assert abs(v - two["parts"][k]) <= one["element"][k] + 1e-9, (k, v, two["parts"][k])
        else:
            assert two["parts"][k] == pytest.approx(v, rel=1e-4, abs=1e-7), k
    # no per-element tolerance is safe: a parameter whose true gradient is zero (the key biases)
    # moves by AdamW-amplified rounding noise alone; the whole update agrees to 0.1 % of its norm
    for net in ("actor", "critic"):
        assert _update_gap(one, two, net) < 1e-3, net
    assert one["critic_state_keys"] == two["critic_state_keys"] or parallel == "fsdp"
    assert two["critic_state_keys"]  # the resumable optimizer state was gathered
    # the saved checkpoint (save_pretrained of the gathered weights) is the updated actor
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "actor").state_dict()
    for name, a in two["actor"].items():
        assert torch.equal(saved[name], a), name


def test_update_check_fails_without_the_gradient_all_reduce(tmp_path):
    """The tolerance above is far from what a missing all-reduce does: each rank then steps on
    its own micro-batches' gradients and the updates differ by ~50 % (actor) and ~100 % (critic)."""
    one, two = _one_and_two(tmp_path, "ddp", "no-allreduce")
    assert _update_gap(one, two, "actor") > 0.1 and _update_gap(one, two, "critic") > 0.1


def test_rollout_concat_keeps_groups_apart_and_recodes_anchors():
    """Rollouts of two ranks become one batch: group and trajectory ids stay distinct, equal
    observations get equal anchor codes across ranks, rows keep their order."""
    import numpy as np

    from repro.rl.batch import StepBatch
    from repro.rl.rollout import Rollout

    def part(obs: list[str], won: bool, agent: list[int] | None = None) -> Rollout:
        n = len(obs)
        batch = StepBatch.from_anchor_strings(group=[0] * n, traj=[0] * n, step=list(range(n)), anchor_obs=obs,
                                              reward=[0.0] * n, episode_reward=[10.0 * won] * n, valid=[True] * n,
                                              agent=agent)
        return Rollout(batch=batch, prompt_ids=[[1]] * n, response_ids=[[2]] * n, won=np.array([won]),
                       lengths=np.array([n]), task_types=["t"], games=["g"], seconds={"env": 1.0},
                       scores=np.array([float(won)]), anchor_obs=obs)

    ro = Rollout.concat([part(["a", "b"], True), part(["c", "a", "b"], False)])
    b = ro.batch
    assert b.group.tolist() == [0, 0, 1, 1, 1] and b.traj.tolist() == [0, 0, 1, 1, 1]
    assert b.anchor[0] == b.anchor[3] and b.anchor[1] == b.anchor[4] and len(set(b.anchor.tolist())) == 3
    assert b.step.tolist() == [0, 1, 0, 1, 2] and ro.won.tolist() == [True, False]
    b.check_order()
    assert Rollout.concat([ro]) is ro and b.agent is None
    # each step row's agent (multi-agent rollouts) survives the concatenation, in row order
    ro = Rollout.concat([part(["a", "b"], True, [0, 1]), part(["c", "a", "b"], False, [1, 1, 0])])
    assert ro.batch.agent.tolist() == [0, 1, 1, 1, 0]
