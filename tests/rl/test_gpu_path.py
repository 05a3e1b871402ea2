"""The paper-scale GPU path, as far as a CPU can check it (issue 4, items 6-8): the vLLM rollout
backend's request building, output parsing, weight buckets and sync bookkeeping; how the trainer
selects a backend; recomputed old log-probs; bf16 mixed precision.

vLLM itself is not installed here (it pins a CUDA torch; envs/vllm.yaml): outputs are given as
objects with the fields of vLLM 0.33's ``RequestOutput`` / ``CompletionOutput`` / ``Logprob``.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from repro import registry
from repro.config import ConfigError
from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer
from repro.rl import plugin  # noqa: F401  (registers the samplers)
from repro.rl.generation import TransformersBackend, encode_prompts
from repro.rl.vllm_backend import (ENGINE_DEFAULTS, WeightSync, build_requests, parse_output, request_seed,
                                   sampling_kwargs, weight_buckets)

CORPUS = ["go to desk 1", "take pencil 1 from desk 1", "You arrive at desk 1. On the desk 1, you see a pencil 1."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm") / "model"
    build_tiny_qwen2(d, {"seed": 0, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "num_key_value_heads": 1}, CORPUS * 5)
    model, tok = load_model_and_tokenizer(d)
    return d, model, tok


def completion(token_ids, logprobs=None, finish_reason="stop"):
    """A vLLM ``RequestOutput`` with one ``CompletionOutput`` (logprobs: {token_id: Logprob})."""
    lp = None if logprobs is None else [{t: SimpleNamespace(logprob=v, rank=1)} for t, v in zip(token_ids, logprobs)]
    return SimpleNamespace(request_id="0", outputs=[SimpleNamespace(
        index=0, text="(vLLM's own detokenization)", token_ids=list(token_ids), logprobs=lp,
        finish_reason=finish_reason, stop_reason=None)])


# --- requests --------------------------------------------------------------------------------------
def test_requests_carry_the_same_prompt_ids_as_the_transformers_backend(tiny):
    _, model, tok = tiny
    prompts = [CORPUS[2] * 20, CORPUS[0]]  # the first is over the limit: left truncation
    ids = encode_prompts(tok, prompts, 40)
    assert ids == TransformersBackend(model, tok, max_new_tokens=4, max_prompt_tokens=40).encode_prompts(prompts)
    assert len(ids[0]) == 40 and len(ids[1]) < 40
    assert tok.decode(ids[0]).endswith("<|im_start|>assistant\n")  # the generation prompt survives
    reqs, params = build_requests(ids, temperature=1.0, top_p=1.0, max_tokens=8, seed=5,
                                  eos_id=tok.eos_token_id, logprobs=True)
    assert [r["prompt_token_ids"] for r in reqs] == ids
    assert [p["seed"] for p in params] == [request_seed(5, 0), request_seed(5, 1)]
    assert all(p["stop_token_ids"] == [tok.eos_token_id] and p["logprobs"] == 0 and p["top_k"] == 0
               and p["max_tokens"] == 8 and p["n"] == 1 for p in params)


def test_request_seeds_depend_on_call_seed_and_index_only():
    """A response must not depend on how the engine batches: each request has its own seed."""
    seeds = {request_seed(s, i) for s in range(50) for i in range(128)}
    assert len(seeds) == 50 * 128  # distinct over a run's calls and rows
    _, a = build_requests([[1, 2]] * 3, temperature=1.0, top_p=1.0, max_tokens=4, seed=9, eos_id=1, logprobs=False)
    _, b = build_requests([[7]] * 5, temperature=0.4, top_p=0.7, max_tokens=4, seed=9, eos_id=1, logprobs=False)
    assert [p["seed"] for p in a] == [p["seed"] for p in b[:3]]
    assert all(p["logprobs"] is None for p in a)
    assert all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize("bad, match", [({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"),
                                        ({"top_p": 1.5}, "top_p")])
def test_sampling_kwargs_refuse_bad_values(bad, match):
    kw = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 4, "seed": 0, "eos_id": 1, "logprobs": False, **bad}
    with pytest.raises(ValueError, match=match):
        sampling_kwargs(**kw)


# --- outputs ---------------------------------------------------------------------------------------
def test_parse_keeps_eos_cuts_after_it_and_decodes_the_kept_ids(tiny):
    _, _, tok = tiny
    words = tok("go to desk 1", add_special_tokens=False)["input_ids"]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    out = completion(words + [eos] + words, logprobs=[-0.5] * (2 * len(words) + 1))
    g = parse_output(out, [3, 4], eos_id=eos, pad_id=pad, decode=lambda x: tok.decode(x, skip_special_tokens=True))
    assert g.response_ids == words + [eos]
    assert g.text == "go to desk 1"
    assert g.prompt_ids == [3, 4] and g.logprobs == [-0.5] * (len(words) + 1)


def test_parse_length_capped_output_and_sampled_token_logprobs(tiny):
    _, _, tok = tiny
    ids = tok("take pencil 1", add_special_tokens=False)["input_ids"]
    lps = list(np.linspace(-3.0, -0.1, len(ids)))
    out = completion(ids, lps, finish_reason="length")
    # vLLM may return more than the sampled token per step (logprobs=k): pick the sampled one
    for step, t in zip(out.outputs[0].logprobs, ids):
        step[t + 1] = SimpleNamespace(logprob=-9.0, rank=2)
    g = parse_output(out, [1], eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, decode=tok.decode)
    assert g.response_ids == ids and g.logprobs == pytest.approx(lps)
    g = parse_output(completion(ids), [1], eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, decode=tok.decode)
    assert g.logprobs is None


def test_parse_refuses_missing_logprob_entries():
    out = completion([5, 6, 7], logprobs=[-1.0, -1.0, -1.0])
    out.outputs[0].logprobs = out.outputs[0].logprobs[:2]
    with pytest.raises(ValueError, match="2 log-prob entries for 3 tokens"):
        parse_output(out, [1], eos_id=1, pad_id=0, decode=str)


# --- weight sync -----------------------------------------------------------------------------------
def test_buckets_hold_every_weight_once_in_bf16_and_respect_the_size(tiny):
    _, model, _ = tiny
    params = dict(model.named_parameters())
    sizes = sorted(p.numel() * 2 for p in params.values())
    limit = sizes[-1] + sizes[0]  # room for the largest tensor plus a little
    buckets = list(weight_buckets(model.named_parameters(), limit))
    names = [n for b in buckets for n, _ in b]
    assert sorted(names) == sorted(params) and len(names) == len(set(names))
    assert all(t.dtype == torch.bfloat16 for b in buckets for _, t in b)
    assert all(sum(t.numel() * 2 for _, t in b) <= limit for b in buckets)
    assert len(buckets) > 1
    # a tensor over the limit travels alone
    alone = list(weight_buckets(model.named_parameters(), 1))
    assert all(len(b) == 1 for b in alone) and len(alone) == len(params)


def test_sync_pushes_once_per_version_and_the_engine_side_ends_equal(tiny):
    """``load`` plays the engine's ``load_weights``: copy each bucket into a second real model."""
    _, model, _ = tiny
    model = copy.deepcopy(model)
    engine = copy.deepcopy(model).to(torch.bfloat16)
    engine_params = dict(engine.named_parameters())
    loaded: list[list[str]] = []

    def load(bucket):
        loaded.append([n for n, _ in bucket])
        for name, t in bucket:
            engine_params[name].data.copy_(t)

    sync = WeightSync(bucket_bytes=4096)
    assert sync.maybe_push(model, load) and sync.pushes == 1  # the first generation pushes
    assert not sync.maybe_push(model, load)  # nothing changed: no second push
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    sync.mark_updated()
    assert sync.stale() and sync.maybe_push(model, load)
    assert (sync.pushes, sync.version, sync.pushed_version) == (2, 1, 1)
    assert sync.buckets == len(loaded) and len(sync.history) == 2
    assert sync.bytes == 2 * sum(p.numel() * 2 for p in model.parameters())
    for name, p in model.named_parameters():
        assert torch.equal(engine_params[name], p.detach().to(torch.bfloat16)), name


def test_tied_lm_head_is_not_pushed_twice(tiny):
    _, model, _ = tiny
    assert model.config.tie_word_embeddings
    names = []
    WeightSync().maybe_push(model, lambda b: names.extend(n for n, _ in b))
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names


# --- the trainer's side ----------------------------------------------------------------------------
def test_backends_are_registered_and_the_config_names_the_allowed_ones():
    from repro.rl.family import AgenticRL

    assert {"transformers", "vllm"} <= set(registry.ROLLOUT_BACKENDS.names())
    with pytest.raises(ConfigError, match=r"train.rollout_backend: 'sglang' .*allowed: transformers, vllm"):
        AgenticRL().train_config({"rollout_backend": "sglang"}, "train")
    with pytest.raises(ConfigError, match="old_logprobs"):
        AgenticRL().train_config({"old_logprobs": "engine"}, "train")
    cfg = AgenticRL().train_config({"rollout_backend": "vllm", "rollout_engine": {"gpu_memory_utilization": 0.5}},
                                   "train")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        registry.ROLLOUT_BACKENDS.get("vllm")(None, None, cfg, "model", "cpu")
    assert ENGINE_DEFAULTS["gpu_memory_utilization"] == 0.6 and not ENGINE_DEFAULTS["enable_sleep_mode"]


def sampled_rollout(model, tok, seed: int, old_logprobs=None):
    """(generations, Rollout): one response per prompt from the tiny policy, groups of 2, one step."""
    from repro.rl.batch import StepBatch
    from repro.rl.rollout import Rollout

    gens = TransformersBackend(model, tok, max_new_tokens=6, max_prompt_tokens=64).generate(
        CORPUS * 2, temperature=1.0, seed=seed)
    n = len(gens)
    batch = StepBatch.from_anchor_strings(group=np.arange(n) // 2, traj=np.arange(n), step=np.zeros(n, int),
                                          anchor_obs=["o"] * n, reward=np.arange(n) % 2,
                                          episode_reward=np.arange(n) % 2, valid=np.ones(n, bool))
    ro = Rollout(batch=batch, prompt_ids=[g.prompt_ids for g in gens], response_ids=[g.response_ids for g in gens],
                 won=np.zeros(n, bool), lengths=np.ones(n, int), task_types=["t"] * n, games=["g"] * n,
                 old_logprobs=old_logprobs, scores=np.zeros(n), anchor_obs=["o"] * n)
    return gens, ro


def test_ppo_update_recomputes_old_logprobs_unless_told_to_use_the_samplers(tiny):
    """``old_logprobs: recompute`` ignores the sampler's numbers (verl); ``sampler`` uses them."""
    from dataclasses import replace

    from repro.rl.config import TrainConfig
    from repro.rl.trainer import ppo_update

    _, base, tok = tiny
    gens, ro0 = sampled_rollout(base, tok, seed=0)
    n = len(gens)

    def update(mode, logprobs):
        model = copy.deepcopy(base)
        ro = replace(ro0, old_logprobs=logprobs)
        cfg = TrainConfig(mini_batch_rows=n, micro_batch_rows=2, policy_loss_params={"kl_coef": 0.0}, lr=1e-2,
                          old_logprobs=mode)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)  # Adam would amplify rounding-level differences
        parts = ppo_update(model, None, opt, ro, np.linspace(-1, 1, n), cfg, tok.pad_token_id,
                           np.random.default_rng(0))
        return parts, torch.cat([p.detach().flatten() for p in model.parameters()])

    true = [g.logprobs for g in gens]
    wrong = [[x - 0.5 for x in lp] for lp in true]
    recomputed, w_recomputed = update("recompute", wrong)
    sampler, w_sampler = update("sampler", true)
    misled, w_misled = update("sampler", wrong)
    assert recomputed["train/policy_loss"] == pytest.approx(sampler["train/policy_loss"], abs=1e-5)
    assert torch.allclose(w_recomputed, w_sampler, atol=1e-6)
    assert misled["train/clipfrac"] >= 0.4 and not torch.allclose(w_misled, w_sampler, atol=1e-6)


def test_bf16_mixed_precision_keeps_fp32_weights_and_tracks_the_fp32_update(tiny):
    """``precision: bf16-mixed`` autocasts the forward passes only: parameters, gradients and
    optimizer state stay fp32, and one update lands within bf16 rounding of the fp32 one."""
    from repro.rl.config import TrainConfig
    from repro.rl.trainer import ppo_update, precision

    _, base, tok = tiny
    gens, ro = sampled_rollout(base, tok, seed=1)
    n = len(gens)
    out = {}
    for mode in ("float32", "bf16-mixed"):
        model = copy.deepcopy(base)
        cfg = TrainConfig(mini_batch_rows=n, micro_batch_rows=3, policy_loss_params={"kl_coef": 0.01}, lr=1e-2,
                          precision=mode)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        before = torch.cat([p.detach().flatten() for p in model.parameters()])
        with precision(cfg):
            parts = ppo_update(model, copy.deepcopy(base), opt, ro, np.linspace(-1, 1, n), cfg,
                               tok.pad_token_id, np.random.default_rng(0))
        assert all(p.dtype == torch.float32 for p in model.parameters())
        out[mode] = parts, torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    (p32, d32), (p16, d16) = out["float32"], out["bf16-mixed"]
    assert np.isfinite(p16["train/policy_loss"]) and p16["train/entropy"] == pytest.approx(p32["train/entropy"], rel=2e-2)
    assert float((d16 - d32).norm() / d32.norm()) < 5e-2  # same step up to bf16 rounding
    assert not torch.equal(d16, d32)  # autocast did act
