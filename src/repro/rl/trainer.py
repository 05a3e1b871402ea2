"""The agentic-RL training loop: rollout → advantages → PPO updates → validation → checkpoint.

``repro.rl.family.AgenticRL`` (family ``agentic_rl``) calls ``train`` and ``evaluate`` here. One
process on CPU; the same loop is the unit a multi-GPU launcher wraps. The advantage estimator,
policy loss, rollout kind, sampler and diagnostics are registry items the run's config names;
nothing here names a method or a study.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from repro import io as rio
from repro import registry
from repro.families import item_params
from repro.rl import benchmarks
from repro.rl import distributed as dist
from repro.rl.benchmarks import Benchmark
from repro.rl.config import TrainConfig
from repro.rl.critic import Critic
from repro.rl.finetune import Tuned
from repro.rl.generation import GenerationBackend
from repro.rl.losses import agg_units, batch_units
from repro.rl.policy import (HeadAtResponses, attention_span, batched_logprobs, pad_to, response_logprobs,
                             shared_prefix_batches, update_plan)
from repro.rl.rollout import PromptOptions, Rollout

log = logging.getLogger(__name__)

#: train_log.csv columns; the configured diagnostics' columns follow
LOG_COLUMNS = [
    "iteration", "rollout/success_rate", "rollout/episode_reward", "rollout/valid_action_ratio",
    "rollout/episode_length", "train/policy_loss", "train/kl", "train/entropy", "train/clipfrac",
    "train/advantage_abs_mean", "train/grad_norm", "train/grad_norm_max", "train/ratio_spike_frac",
    "critic/value_loss", "critic/value_clipfrac", "time/rollout_s",
    "time/update_s", "eval/val/success_rate",
]


def _load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(max(1, int(os.environ.get("REPRO_TORCH_THREADS", "1"))))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(dist.device())
    tok = AutoTokenizer.from_pretrained(path)
    return model, tok


def _env(bench: Benchmark, dataset_dir: Path, split: str, cfg: TrainConfig, max_steps: int, seed: int,
         slots: int, env: dict):
    """The benchmark's batched env for ``split``; ``slots`` = episodes played at once (ALFWorld
    workers keep that many loaded games: each holds its own ~34 MB planner library)."""
    return bench.make(dataset_dir, split, workers=cfg.env_workers, max_steps=max_steps, seed=seed,
                      slots=slots, **env)


def _prompt_options(cfg: TrainConfig) -> PromptOptions:
    return PromptOptions(history_length=cfg.history_length, style=cfg.prompt_style,
                         require_think=cfg.require_think, max_obs_chars=cfg.max_obs_chars,
                         constrain_to_admissible=cfg.constrain_to_admissible)


def _backend(tuned: Tuned, tok, cfg: TrainConfig, model_dir: Path) -> GenerationBackend:
    """The configured sampler (``rollout_backend``), built around the trainer's policy."""
    per_row = {"agent_kwargs": tuned.agent_kwargs} if tuned.per_agent else {}
    return registry.ROLLOUT_BACKENDS.get(cfg.rollout_backend)(tuned.sampler, tok, cfg, model_dir, dist.device(),
                                                              **per_row)


def _tuned(model, tok, cfg: TrainConfig, checkpoint: Path | None = None) -> Tuned:
    """What ``train.finetune`` trains around ``model`` (restored from ``checkpoint`` to evaluate)."""
    params = item_params(registry.FINETUNING, cfg.finetune, cfg.finetune_params, "train.finetune_params")
    return registry.FINETUNING.get(cfg.finetune)(model, tok, params, checkpoint=checkpoint)


def play(env, backend, games: list, repeats: int, *, cfg: TrainConfig, max_steps: int,
         temperature: float, seed: int, bench: Benchmark, agents=None) -> Rollout:
    """Each game ``repeats`` times; the copies of one game form a group (``agents``: who acts at
    each step, ``Tuned.agents``)."""
    plays = [g for g in games for _ in range(repeats)]
    groups = [i for i in range(len(games)) for _ in range(repeats)]
    with precision(cfg):
        return registry.ROLLOUTS.get(cfg.rollout)(env, backend, plays, groups, max_steps=max_steps,
                                                  temperature=temperature, seed=seed,
                                                  prompt=_prompt_options(cfg), bench=bench,
                                                  state_keys=registry.STATE_KEYS.get(cfg.state_key),
                                                  **({} if agents is None else {"agents": agents}))


def precision(cfg: TrainConfig):
    """``bf16-mixed``: forward passes autocast to bf16 while weights, gradients and optimizer
    states stay fp32 (as FSDP mixed precision); ``float32``: no autocast."""
    return torch.autocast(device_type=torch.device(dist.device()).type, dtype=torch.bfloat16,
                          enabled=cfg.precision == "bf16-mixed")


def _sample_games(pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=len(pool) < k)]


def ppo_update(model, ref_model, optimizer, ro: Rollout, adv, cfg: TrainConfig,
               pad_id: int, rng: np.random.Generator, plan=None, eos_id: int | None = None,
               tuned: Tuned | None = None) -> dict[str, float]:
    """One optimizer step per mini-batch of ``plan`` (default: ``ppo_epochs`` passes over the step
    rows in random mini-batches of ``mini_batch_rows``), gradients accumulated over micro-batches
    of ``micro_batch_rows``. ``adv``: float[N] per step row, or a list of float[L_i] per token.

    Old, new and reference log-probs are all of the distribution the rollout sampled from: at
    ``train_temperature``, and renormalised over the allowed tokens where the rollout restricted
    sampling (``ro.allowed_ids``; needs ``eos_id``), so the update is the gradient of the policy
    that acted. The loss is ``train.policy_loss`` (``registry.POLICY_LOSSES``) with its params.
    With ``tuned.per_agent`` each row's log-probs come from its agent's weights (``ro.batch.agent``):
    a micro-batch runs one forward per agent present, whose losses add up to the same mean."""
    loss_fn, loss_params = policy_loss(cfg)
    agg = loss_fn.agg_mode(loss_params)
    temp = cfg.train_temperature
    allowed = ro.allowed_ids
    if allowed is not None and eos_id is None:
        raise ValueError("ppo_update: the rollout restricted sampling (allowed_ids); pass eos_id")
    if cfg.old_logprobs == "sampler" and ro.old_logprobs is not None:  # equal in fp32 (tested)
        old = [torch.tensor(x, dtype=torch.float32) for x in ro.old_logprobs]
    else:
        old = [None] * len(ro.prompt_ids)
        for rows in by_agent(range(len(ro.prompt_ids)), ro, tuned):
            for i, x in zip(rows, batched_logprobs(model, [ro.prompt_ids[i] for i in rows],
                                                   [ro.response_ids[i] for i in rows], pad_id, cfg.mini_batch_rows,
                                                   temperature=temp, eos_id=eos_id,
                                                   allowed_ids=None if allowed is None else [allowed[i] for i in rows])):
                old[i] = x
    ref = (batched_logprobs(ref_model, ro.prompt_ids, ro.response_ids, pad_id, cfg.mini_batch_rows,
                            temperature=temp, allowed_ids=allowed, eos_id=eos_id)
           if loss_fn.uses_reference(loss_params) else old)
    per_token = isinstance(adv, list)
    dev = next(model.parameters()).device
    adv_t = ([torch.as_tensor(a, dtype=torch.float32, device=dev) for a in adv] if per_token
             else torch.as_tensor(adv, dtype=torch.float32, device=dev))
    same = ref is old
    old = [x.to(dev) for x in old]
    ref = old if same else [x.to(dev) for x in ref]
    if plan is None:
        plan = rollout_plan(ro, cfg, rng, model)
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    norms: list[float] = []
    model.train()
    sharded = dist.is_sharded(model)
    for micro, n_tokens in plan:
        # the loss's mean over the whole mini-batch: each micro-batch's loss is weighted by its
        # share of the mini-batch's tokens (token-mean) or rows (seq-mean-*), the gradient of one pass
        n_units = batch_units(n_tokens, sum(len(m) for m in micro), agg)
        model.zero_grad(set_to_none=True)  # every weight: another worker group's must not linger
        for part, weight in dist.deal(micro, sharded):  # data parallel: this rank's micro-batches of the step
            for m in by_agent(part, ro, tuned):  # one forward per acting agent's weights
                logp, ent, mask = response_logprobs(model, [ro.prompt_ids[i] for i in m],
                                                    [ro.response_ids[i] for i in m], pad_id, temperature=temp,
                                                    allowed_ids=None if allowed is None else [allowed[i] for i in m],
                                                    eos_id=eos_id, shared_prefix=cfg.shared_prefix)
                width = logp.shape[1]
                a = pad_to([adv_t[i] for i in m], width) if per_token else adv_t[torch.as_tensor(m, device=dev)]
                loss, parts = loss_fn(logp, pad_to([old[i] for i in m], width), pad_to([ref[i] for i in m], width),
                                      ent, a, mask, loss_params)
                share = agg_units(mask, agg) / n_units
                (loss * (share * weight)).backward()
                parts["ratio_spike_frac"] = spike_fraction(logp.detach(), pad_to([old[i] for i in m], width), mask)
                for k, v in parts.items():  # NaN: undefined here (e.g. KPO's sign switches on-policy)
                    w = share * (weight > 0) if v == v else 0.0
                    sums[k] = sums.get(k, 0.0) + (v * w if w else 0.0)
                    weights[k] = weights.get(k, 0.0) + w
        dist.sync_grads(model)
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))
        optimizer.step()
    sums, weights = dist.all_reduce_sum(sums), dist.all_reduce_sum(weights)
    # each key's mean over the mini-batches (a micro-batch weighted by its share of its mini-batch)
    out = {f"train/{k}": v / weights[k] if weights[k] > 0 else float("nan") for k, v in sums.items()}
    if norms:  # the gradient norm before clipping, of every optimizer step
        out.update({"train/grad_norm": float(np.mean(norms)), "train/grad_norm_max": float(np.max(norms))})
    return out


#: a token's ratio π/π_old counts as a spike outside [1/2, 2]
SPIKE_LOG_RATIO = float(np.log(2.0))


def spike_fraction(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> float:
    """Share of valid tokens (mask [B, T]) whose ratio exp(logp − old_logp) leaves [1/2, 2]."""
    spikes = ((logp - old_logp).abs() > SPIKE_LOG_RATIO).float()
    return float((spikes * mask).sum() / mask.sum().clamp_min(1.0))


def worker_groups(tuned: Tuned, policy, fsdp: bool) -> list[tuple[tuple[int, ...] | None, list]]:
    """(agents, trainable parameters) of each worker group, each updated with its own optimizer:
    one group of every trainable weight, or ``tuned.worker_groups`` (e.g. one model per agent)."""
    if tuned.worker_groups is None:
        return [(None, [p for p in policy.parameters() if p.requires_grad])]
    if fsdp:
        raise ValueError("worker groups (one set of weights per agent) run with parallel: ddp, not fsdp")
    return [(agents, tuned.group_parameters(g)) for g, agents in enumerate(tuned.worker_groups)]


def update_groups(groups, optimizers, policy, ref_model, ro: Rollout, adv, cfg: TrainConfig, tok, rng, plan,
                  tuned: Tuned) -> dict[str, float]:
    """The policy update: one ``ppo_update`` over the whole batch, or, with worker groups, one per
    group over its agents' rows (Dr. MAS's Algorithm 1, step 4), each with its own optimizer and
    mini-batches; then each metric is the groups' mean and ``<metric>/wg<g>`` the group's own."""
    if len(groups) == 1:
        return ppo_update(policy, ref_model, optimizers[0], ro, adv, cfg, tok.pad_token_id, rng, plan,
                          eos_id=tok.eos_token_id, tuned=tuned)
    per: list[dict[str, float]] = []
    for g, ((agents, _), opt) in enumerate(zip(groups, optimizers)):
        rows = np.flatnonzero(np.isin(ro.batch.agent, agents))
        if rows.size == 0:
            continue
        sub = ro.take(rows)
        sub_adv = [adv[i] for i in rows] if isinstance(adv, list) else np.asarray(adv)[rows]
        parts = ppo_update(policy, ref_model, opt, sub, sub_adv, cfg, tok.pad_token_id, rng,
                           rollout_plan(sub, cfg, rng, policy), eos_id=tok.eos_token_id, tuned=tuned)
        per.append({**parts, **{f"{k}/wg{g}": v for k, v in parts.items()}})
    keys = {k for p in per for k in p if "/wg" not in k}
    return {**{k: float(np.mean([p[k] for p in per if k in p])) for k in keys},
            **{k: v for p in per for k, v in p.items() if "/wg" in k}}


def by_agent(rows, ro: Rollout, tuned: Tuned | None) -> Iterator[list[int]]:
    """``rows`` split by their acting agent (order kept within each part), that agent's weights
    selected as each part is handed out; all of ``rows`` at once for one set of weights."""
    rows = list(rows)
    if tuned is None or not tuned.per_agent:
        yield rows
        return
    agent = ro.batch.agent
    for k in sorted({int(agent[i]) for i in rows}):
        tuned.select(k)
        yield [i for i in rows if agent[i] == k]


def policy_loss(cfg: TrainConfig):
    """(the registered loss ``cfg.policy_loss``, its typed params from ``cfg.policy_loss_params``)."""
    return (registry.POLICY_LOSSES.get(cfg.policy_loss),
            item_params(registry.POLICY_LOSSES, cfg.policy_loss, cfg.policy_loss_params, "train.policy_loss_params"))


def rollout_plan(ro: Rollout, cfg: TrainConfig, rng: np.random.Generator, model):
    """The optimizer steps of the update on ``ro`` (``policy.update_plan``): micro-batches of rows
    close in length, or, with ``shared_prefix``, of whole prefix groups (sized by the ``model``'s
    attention span)."""
    split = None
    if cfg.shared_prefix:
        span = attention_span((model.model if isinstance(model, HeadAtResponses) else model).config)
        split = lambda rows, micro: shared_prefix_batches(ro.prompt_ids, ro.response_ids, rows, micro, span)  # noqa: E731
    return update_plan([len(r) for r in ro.response_ids],
                       [len(p) + len(r) for p, r in zip(ro.prompt_ids, ro.response_ids)],
                       cfg.mini_batch_rows, cfg.micro_batch_rows, cfg.ppo_epochs, rng, split)


def advantages(estimator, ro: Rollout, params: dict, critic: Critic | None, pad_id: int, batch_rows: int):
    """(advantages, returns, values): row scalars float[N] from a group estimator (returns and
    values None), or per-token lists from a value-based one (``estimator.needs_values``)."""
    if critic is None:
        return estimator(ro.batch, params), None, None
    values = critic.values(ro.prompt_ids, ro.response_ids, pad_id, batch_rows)
    adv, returns = estimator(ro.batch, params, values=values)
    return adv, returns, values


class _Log:
    """train_log.csv rows kept in memory, saved with each checkpoint and at the end."""

    def __init__(self, columns: list[str], rows: list[dict[str, Any]] | None = None) -> None:
        self.columns = columns
        self.rows = rows or []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in self.columns})
        return buf.getvalue()


def _save_state(work_dir: Path, model, policy, optimizers: list, iteration: int, log_rows: list,
                critic: Critic | None = None, tuned: Tuned | None = None) -> None:
    """The resumable state, written by rank 0; every rank calls this (FSDP gathers the shards)."""
    opt = [dist.optimizer_state(policy, o) for o in optimizers]
    state = {"model": dist.full_state_dict(model), "optimizer": opt[0] if len(opt) == 1 else opt,
             "iteration": iteration, "log": log_rows,
             "critic": critic.state_dict() if critic is not None else None,
             "tuned": tuned.state_dict() if tuned is not None else {}}
    if not dist.is_main():
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = work_dir / "state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, work_dir / "state.pt")
    log.info("checkpoint written at iteration %d (%s)", iteration, work_dir / "state.pt")


# --- train ---------------------------------------------------------------------------------------
def train(family, run: dict[str, Any], *, dataset_dir: Path, model_dir: Path, out_dir: Path,
          log_csv: Path, work_dir: Path, tracker) -> None:
    """``family`` (``repro.rl.family.AgenticRL``) types the run's config blocks."""
    dist.init_from_env()  # under torchrun: one process per GPU (repro.rl.distributed)
    cfg = family.train_config(run["train"], "train")
    estimator = registry.ESTIMATORS.get(run["impl"]) if run["impl"] else None
    iterations = cfg.iterations if estimator else 0
    est_params = family.estimator_params(run, cfg) if estimator else None
    diagnostics = family.diagnostics(cfg)
    seed = int(run["seed"])
    torch.manual_seed(seed)
    model, tok = _load(model_dir)
    loss_fn, loss_params = policy_loss(cfg)
    ref_model = (copy.deepcopy(model).eval() if estimator and loss_fn.uses_reference(loss_params)
                 else None)  # the base model
    tuned = _tuned(model, tok, cfg)
    model = tuned.module  # what is trained (the reference above is the base model)
    state_path = work_dir / "state.pt"
    state = torch.load(state_path, weights_only=False) if estimator and state_path.exists() else None
    if state is not None:
        model.load_state_dict(state["model"])  # whole weights, before any sharding
        tuned.load_state_dict(state.get("tuned", {}))
    # what the update runs: the model itself, or (fsdp, several ranks) its sharded forward
    fsdp = cfg.parallel == "fsdp" and dist.world_size() > 1
    policy = dist.shard_model(HeadAtResponses(model, "lm")) if fsdp else model
    if fsdp and ref_model is not None:
        ref_model = dist.shard_model(HeadAtResponses(ref_model, "lm"))
    if fsdp:
        log.info("parameters sharded over %d ranks (FSDP)", dist.world_size())
    groups = worker_groups(tuned, policy, fsdp)
    optimizers = [torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) for _, params in groups]
    critic = (Critic(model_dir, cfg.critic_lr, cfg.weight_decay, cfg.parallel,
                     state=state["critic"] if state is not None else None)
              if getattr(estimator, "needs_values", False) else None)
    columns = (LOG_COLUMNS + [c for _, _, cols in diagnostics for c in cols] + list(tuned.columns)
               + list(registry.POLICY_LOSSES.meta(cfg.policy_loss).get("columns", ())))  # the loss's own parts
    start, history = 0, _Log(columns)
    if state is not None:
        saved = state["optimizer"] if isinstance(state["optimizer"], list) else [state["optimizer"]]
        for o, st in zip(optimizers, saved, strict=True):
            dist.load_optimizer_state(policy, o, st)
        start, history = state["iteration"], _Log(columns, state["log"])
        log.info("resuming from checkpoint %s at iteration %d", state_path, start)
    backend = _backend(tuned, tok, cfg, model_dir)
    bench, env_params = benchmarks.get(run["benchmark"]), run.get("env", {})
    env = _env(bench, dataset_dir, bench.train_split, cfg, cfg.max_steps, seed,
               cfg.tasks_per_batch * cfg.group_size, env_params)
    val_env = (_env(bench, dataset_dir, bench.val_split, cfg, cfg.max_steps, seed, cfg.val_episodes, env_params)
               if cfg.val_every else None)
    try:
        train_games = env.list_games(bench.train_split)
        val_games = val_env.list_games(bench.val_split) if val_env else []
        log.info("training %s for %d iterations on %d train games (start %d)",
                 run["method"], iterations, len(train_games), start)
        if start == 0 and val_env is not None:  # validation before training (val_before_train)
            row = {"iteration": 0, **_validate(val_env, backend, val_games, cfg, seed, 0, bench, tuned)}
            history.add(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "iteration"}, step=0)
        for it in range(start + 1, iterations + 1):
            rng = np.random.default_rng([seed, it])
            # --- rollout ---
            t0 = time.perf_counter()
            games = _sample_games(train_games, cfg.tasks_per_batch, rng)
            # data parallel: each rank plays whole groups, every rank gets the whole batch
            ro = play(env, backend, dist.shard(games), cfg.group_size, cfg=cfg, max_steps=cfg.max_steps,
                      temperature=cfg.train_temperature, seed=seed * 10_007 + it + 104_729 * dist.rank(),
                      bench=bench, agents=tuned.agents(training=True))
            ro = Rollout.concat(dist.all_gather(ro))
            backend.release()  # e.g. vLLM's memory, for the update
            t_roll = time.perf_counter() - t0
            with precision(cfg):
                # --- advantage ---
                adv, returns, values = advantages(estimator, ro, est_params, critic, tok.pad_token_id,
                                                  cfg.mini_batch_rows)
                # --- update: the critic first, on the same mini-batches (as verl) ---
                t1 = time.perf_counter()
                plan = rollout_plan(ro, cfg, rng, policy)
                parts = ({} if critic is None else
                         critic.update(ro.prompt_ids, ro.response_ids, returns, values, plan, tok.pad_token_id,
                                       clip=cfg.critic_value_clip, grad_clip=cfg.grad_clip))
                parts.update(update_groups(groups, optimizers, policy, ref_model, ro, adv, cfg, tok, rng, plan, tuned))
                parts.update(tuned.after_update(ro, it))
            backend.sync_weights()  # the sampler follows the updated policy
            flat = np.concatenate(adv) if isinstance(adv, list) and adv else np.asarray(adv, dtype=float)
            measured = {k: v for hook, params, _ in diagnostics for k, v in hook(ro, params).items()}
            row = {"iteration": it, **ro.metrics("rollout"), **parts, **measured,
                   "train/advantage_abs_mean": float(np.abs(flat).mean()) if flat.size else 0.0,
                   "time/rollout_s": round(t_roll, 3), "time/update_s": round(time.perf_counter() - t1, 3),
                   **{f"time/{k}_s": round(v, 3) for k, v in ro.seconds.items()}}
            if val_env is not None and cfg.val_every and (it % cfg.val_every == 0 or it == iterations):
                row.update(_validate(val_env, backend, val_games, cfg, seed, it, bench, tuned))
            history.add(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "iteration"}, step=it)
            log.info("iter %d/%d  success %.3f  valid %.2f  rows %d  loss %.4f  kl %.4f  "
                     "(rollout %.1fs [env %.1fs, generate %.1fs] + update %.1fs)%s",
                     it, iterations, row["rollout/success_rate"], row["rollout/valid_action_ratio"],
                     len(ro.prompt_ids), row.get("train/policy_loss", 0.0), row.get("train/kl", 0.0),
                     t_roll, ro.seconds.get("env", 0.0), ro.seconds.get("generate", 0.0),
                     row["time/update_s"],
                     f"  val {row['eval/val/success_rate']:.3f}" if "eval/val/success_rate" in row else "")
            if it % cfg.checkpoint_every == 0 and it < iterations:  # every rank: gathers under FSDP
                _save_state(work_dir, model, policy, optimizers, it, history.rows, critic, tuned)
    finally:
        env.close()
        if val_env is not None:
            val_env.close()
    # --- final outputs, atomically (one writer) ---
    whole = {"state_dict": dist.full_state_dict(model)} if fsdp else {}  # every rank: a gather
    if not dist.is_main():
        dist.barrier()
        return
    with rio.atomic_dir(out_dir) as tmp:
        tuned.save(tmp, **whole)
        tok.save_pretrained(tmp)
        rio.write_json(tmp / "trainer_state.json", {"iteration": iterations, "method": run["method"],
                                                    "seed": seed,
                                                    "base_model": rio.manifest_record(model_dir)})
    rio.write_text(log_csv, history.to_csv())
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("wrote %s and %s", out_dir, log_csv)
    dist.barrier()

def _validate(env, backend, games: list, cfg: TrainConfig, seed: int, it: int, bench: Benchmark,
              tuned: Tuned) -> dict:
    """Train-time validation on ``val_episodes`` episodes of the benchmark's validation split
    (``eval/val/success_rate``; ALFWorld valid_seen, WebShop its test goals)."""
    rng = np.random.default_rng([seed, it, 1])
    picked = _sample_games(games, cfg.val_episodes, rng)
    ro = play(env, backend, dist.shard(picked), 1, cfg=cfg, max_steps=cfg.max_steps,
              temperature=cfg.val_temperature, seed=seed * 7919 + it + 1_000_000 + 104_729 * dist.rank(),
              bench=bench, agents=tuned.agents(training=False))
    return {"eval/val/success_rate": float(np.concatenate(dist.all_gather(ro.won)).mean())}

# --- evaluate ------------------------------------------------------------------------------------
def evaluate(family, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
    cfg = family.train_config(run["train"], "train")
    ecfg = family.eval_config(run["evaluate"], "evaluate")
    seed = int(run["seed"])
    model, tok = _load(checkpoint_dir)
    tuned = _tuned(model, tok, cfg, checkpoint=checkpoint_dir)
    backend = _backend(tuned, tok, dataclasses.replace(cfg, top_p=ecfg.top_p), checkpoint_dir)
    bench, env_params = benchmarks.get(run["benchmark"]), run.get("env", {})
    splits: dict[str, Any] = {}
    for split in ecfg.splits:
        if split not in bench.eval_splits:
            raise ValueError(f"evaluate.splits: {split!r} is not a {bench.name} split; allowed: "
                             f"{', '.join(bench.eval_splits)}")
        games = bench.list_games(dataset_dir, split, **env_params)
        env = _env(bench, dataset_dir, split, cfg, ecfg.max_steps, seed,
                   len(games) * ecfg.episodes_per_game, env_params)
        try:
            ro = play(env, backend, games, ecfg.episodes_per_game, cfg=cfg, max_steps=ecfg.max_steps,
                      temperature=ecfg.temperature, seed=seed * 104_729 + 17, bench=bench,
                      agents=tuned.agents(training=False))
        finally:
            env.close()
        k, usage = ecfg.episodes_per_game, tuned.usage(ro)
        # avg@k is success_rate; pass@k: a game counts when any of its k episodes won
        metrics = {**({"pass_at_k_pct": 100 * float(ro.won.reshape(len(games), k).any(axis=1).mean())}
                      if k > 1 else {}), **usage.pop("metrics", {})}
        splits[split] = {"success_rate": float(ro.won.mean()), "episodes": int(len(ro.won)),
                         **({"score": 100 * float(ro.scores.mean())} if bench.score_key else {}),
                         "games": len(games), "temperature": ecfg.temperature, "top_p": ecfg.top_p,
                         "per_task_type": ro.success_by_task_type(),
                         "valid_action_ratio": float(ro.batch.valid.mean()),
                         "mean_episode_length": float(ro.lengths.mean()), **usage,
                         **({"metrics": metrics} if metrics else {})}
        log.info("evaluated %s: success %.3f over %d episodes", split, splits[split]["success_rate"],
                 len(ro.won))
    return {"splits": splits}
