"""The GPU check of the agentic-RL trainer (issue 4, item 8): rollout and update throughput of a
Qwen2.5-1.5B-shaped, randomly initialised policy in bf16 on one GPU, each beside a plain baseline
measured in the same process.

What runs (the trainer's own code, not a re-implementation):

* **trainer iterations**: ``TransformersBackend.generate`` samples one response per prompt (the
  rollout; it also returns the sampler's log-probs), the registered ``hgpo`` estimator turns
  synthetic rewards of 16 groups x 8 into advantages, and ``trainer.ppo_update`` runs the PPO
  update (reference-model log-probs for the KL term, mini-batches, micro-batches with gradient
  accumulation, AdamW).
* **baselines**: plain ``model.generate`` on the same prompt ids (default dynamic KV cache, no
  log-probs), and a plain causal-LM step (forward over every position, cross-entropy,
  backward, AdamW) over the same rows and micro-batch size.
* **compiled decoding** (when time is left): ``model.generate`` with a static KV cache and
  ``torch.compile`` (mode ``reduce-overhead``: CUDA graphs), the change the issue points at.

Shapes follow the issue's reference: 128 prompts of 1024 tokens, 128 new tokens (no stop: a random
model rarely samples EOS). Model FLOPs count the matrix products of the weights (the LM head only
where logits are computed) and causal attention; recomputation from gradient checkpointing is not
counted (MFU convention). The decoding floor is the bytes one step must read (weights + the KV
cache) over the measured device-to-device bandwidth.

    python scripts/bench_gpu.py --out $OUT                    # on the GPU machine
    python scripts/bench_gpu.py --shape tiny --device cpu     # a minute on a CPU: the code path

Prints a markdown table last and writes ``bench_gpu.json`` / ``bench_gpu.md`` under ``--out``
(after every stage, so a run stopped at its limit keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# Qwen/Qwen2.5-1.5B-Instruct config.json (the HGPO paper's 1.5B policy)
SHAPES = {
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=8192, max_position_embeddings=2048,
                 rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
}
H100_BF16_DENSE_TFLOPS = 989.4  # NVIDIA H100 SXM datasheet, dense bf16 tensor-core peak
H200_BF16_DENSE_TFLOPS = 989.4  # same GH100 chip and clocks


class Report:
    """Rows of (stage, metric, value, baseline, note), written after every stage."""

    def __init__(self, out: Path | None, meta: dict) -> None:
        self.out, self.meta, self.rows = out, meta, []

    def add(self, stage: str, **values) -> None:
        self.rows.append({"stage": stage, **values})
        print(f"[{time.strftime('%H:%M:%S')}] {stage}: {json.dumps(values, default=float)}", flush=True)
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "bench_gpu.json").write_text(json.dumps({"meta": self.meta, "rows": self.rows},
                                                                indent=1, default=float))
            (self.out / "bench_gpu.md").write_text(self.markdown())

    def markdown(self) -> str:
        lines = ["| stage | " + " | ".join(["value", "detail"]) + " |", "|---|---|---|"]
        for r in self.rows:
            rest = {k: v for k, v in r.items() if k != "stage"}
            lines.append(f"| {r['stage']} | " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rest.items()) + " | |")
        return "\n".join(lines) + "\n"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


# --- model FLOPs ---------------------------------------------------------------------------------
def body_params(cfg) -> int:
    """Weights used in matrix products per token, excluding the embedding lookup and LM head."""
    d, f, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * (d // cfg.num_attention_heads)
    return L * (d * d + 2 * d * kv + d * d + 3 * d * f)  # q, k, v, o, gate/up/down


def forward_flops(cfg, seq_lens, head_positions: int) -> float:
    """Forward FLOPs of full sequences: 2·N_body per token, causal attention (QK^T and AV,
    2·2·d·S²/2 per layer and sequence), the LM head on ``head_positions`` positions."""
    toks = sum(seq_lens)
    attn = sum(2 * cfg.hidden_size * s * s for s in seq_lens) * cfg.num_hidden_layers
    return 2 * body_params(cfg) * toks + attn + 2 * cfg.hidden_size * cfg.vocab_size * head_positions


def decode_flops(cfg, prompt_len: int, new_tokens: int, batch: int) -> float:
    """Prefill plus ``new_tokens`` decode steps, each attending to the cache so far."""
    prefill = forward_flops(cfg, [prompt_len] * batch, batch)
    per_row = sum(2 * body_params(cfg) + 4 * cfg.hidden_size * (prompt_len + t) * cfg.num_hidden_layers
                  + 2 * cfg.hidden_size * cfg.vocab_size for t in range(1, new_tokens))
    return prefill + batch * per_row


def decode_floor_s(cfg, n_params: int, prompt_len: int, new_tokens: int, batch: int, bytes_per_s: float) -> float:
    """Bytes each decode step must read (bf16 weights, the KV cache so far) over the bandwidth."""
    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 2
    total = sum(2 * n_params + batch * (prompt_len + t) * kv_per_token for t in range(new_tokens))
    return total / bytes_per_s


# --- inputs ----------------------------------------------------------------------------------------
def build_tokenizer(n_words: int):
    from repro.models.tokenizer import train_word_tokenizer

    words = [f"w{i}" for i in range(n_words)]
    return train_word_tokenizer([" ".join(words)] * 2, max_vocab=n_words + 600), words


def make_prompts(words: list[str], n: int, n_words: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=n_words)) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=3, help="trainer iterations (the first is cold)")
    ap.add_argument("--mini", type=int, default=64, help="PPO mini-batch rows")
    ap.add_argument("--micro", type=int, default=8, help="rows per forward/backward")
    ap.add_argument("--no-grad-ckpt", action="store_true", help="disable gradient checkpointing")
    ap.add_argument("--budget-s", type=float, default=330.0, help="skip compiled decoding past this")
    ap.add_argument("--decode-study", action="store_true",
                    help="only decoding: variants (mask, greedy, logits, batch) and a kernel profile")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()

    import transformers
    from transformers import AutoModelForCausalLM, Qwen2Config

    import repro.rl.advantages  # noqa: F401  (registers the estimators)
    from repro.registry import ESTIMATORS
    from repro.rl.batch import StepBatch
    from repro.rl.config import TrainConfig
    from repro.rl.generation import TransformersBackend
    from repro.rl.policy import batched_logprobs
    from repro.rl.rollout import Rollout
    from repro.rl import plugin  # noqa: F401  (registers the policy loss)
    from repro.rl.trainer import ppo_update

    dev = args.device
    cuda = dev.startswith("cuda")
    gpu = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    meta = {"gpu": gpu, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": sys.version.split()[0], "shape": args.shape, "batch": args.batch,
            "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "micro": args.micro,
            "mini": args.mini, "grad_ckpt": not args.no_grad_ckpt, "command": " ".join(sys.argv)}
    rep = Report(args.out, meta)
    print(json.dumps(meta), flush=True)
    peak_tflops = H100_BF16_DENSE_TFLOPS if "H100" in gpu else H200_BF16_DENSE_TFLOPS if "H200" in gpu else float("nan")

    # --- ceilings measured on this card ---
    bytes_per_s = 3.0e12
    if cuda:
        a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
        b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        _, s = timed(lambda: [a @ b for _ in range(10)], dev)
        mm = 10 * 2 * 8192**3 / s / 1e12
        x = torch.empty(2**30, dtype=torch.uint8, device=dev)
        y = torch.empty_like(x)
        y.copy_(x)
        _, s = timed(lambda: [y.copy_(x) for _ in range(10)], dev)
        bytes_per_s = 10 * 2 * x.numel() / s
        del a, b, x, y
        rep.add("ceiling", matmul_tflops=mm, copy_tb_s=bytes_per_s / 1e12, spec_tflops=peak_tflops)

    # --- model, tokenizer, prompts ---
    torch.manual_seed(0)
    tok, words = build_tokenizer(2000)
    cfg = Qwen2Config(**SHAPES[args.shape], bos_token_id=0, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    dtype = torch.bfloat16 if cuda else torch.float32
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        ref_model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    ref_model.load_state_dict(model.state_dict())
    ref_model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    rep.add("model", params_b=n_params / 1e9, body_params_b=body_params(cfg) / 1e9, dtype=str(dtype),
            attn=str(model.config._attn_implementation))
    backend = TransformersBackend(model, tok, max_new_tokens=args.new_tokens,
                                  max_prompt_tokens=args.prompt_tokens, batch_size=args.batch, device=dev)
    prompts = make_prompts(words, args.batch, int(args.prompt_tokens * 1.1), seed=1)
    ids = backend.encode_prompts(prompts)
    assert all(len(x) == args.prompt_tokens for x in ids), sorted({len(x) for x in ids})
    input_ids = torch.tensor(ids, device=dev)
    attn = torch.ones_like(input_ids)
    gen_flops = decode_flops(cfg, args.prompt_tokens, args.new_tokens, args.batch)
    floor = decode_floor_s(cfg, n_params, args.prompt_tokens, args.new_tokens, args.batch, bytes_per_s)

    def rollout_row(stage: str, seconds: float, tokens: int, **extra) -> None:
        rep.add(stage, seconds=seconds, tokens=tokens, tokens_per_s=tokens / seconds,
                mfu=gen_flops * tokens / (args.batch * args.new_tokens) / seconds / 1e12 / peak_tflops,
                floor_tokens_per_s=args.batch * args.new_tokens / floor, peak_gib=peak_gib(dev), **extra)

    # --- baseline: plain generate (dynamic cache) ---
    def plain_generate(**kw):
        torch.manual_seed(0)
        call = dict(input_ids=input_ids, attention_mask=attn, max_new_tokens=args.new_tokens,
                    do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out = model.generate(**{**call, **kw})
        out = getattr(out, "sequences", out)
        return int((out.shape[1] - input_ids.shape[1]) * out.shape[0])

    model.eval()
    if args.decode_study:
        decode_study(rep, model, tok, backend, prompts, input_ids, plain_generate, rollout_row, dev)
        rep.add("done", wall_s=time.perf_counter() - t_start)
        print(rep.markdown())
        return
    for i in range(3):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        n, s = timed(plain_generate, dev)
        rollout_row("plain_generate" + ("_cold" if i == 0 else ""), s, n)

    # --- trainer iterations: backend.generate -> hgpo advantages -> ppo_update ---
    if not args.no_grad_ckpt:
        model.gradient_checkpointing_enable()
        model.config.use_cache = True  # generate still uses the KV cache
    tcfg = TrainConfig(mini_batch_rows=args.mini, micro_batch_rows=args.micro,
                       policy_loss_params={"kl_coef": 0.01, "entropy_coeff": 0.001}, lr=1e-6, max_prompt_tokens=args.prompt_tokens,
                       max_response_tokens=args.new_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    group = 8
    n_rows = args.batch
    for it in range(1, args.iterations + 1):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        gens, s = timed(lambda: backend.generate(prompts, temperature=1.0, seed=it), dev)
        n_tok = sum(len(g.response_ids) for g in gens)
        rollout_row(f"trainer_rollout_it{it}", s, n_tok)
        if it == 1:  # the sampler's log-probs vs a forward pass over the same tokens (same weights)
            k = min(16, n_rows)
            recomputed = batched_logprobs(model, [g.prompt_ids for g in gens[:k]],
                                          [g.response_ids for g in gens[:k]], tok.pad_token_id, k)
            diff = torch.cat([r - torch.tensor(g.logprobs) for r, g in zip(recomputed, gens[:k])]).abs()
            rep.add("sampler_vs_forward_logprobs", rows=k, mean_abs=float(diff.mean()), max_abs=float(diff.max()))
        rng = np.random.default_rng(it)
        won = rng.random(n_rows) < 0.4
        batch = StepBatch.from_anchor_strings(
            group=np.arange(n_rows) // group, traj=np.arange(n_rows), step=np.zeros(n_rows, int),
            anchor_obs=[f"obs{i // group}" for i in range(n_rows)], reward=10.0 * won,
            episode_reward=10.0 * won, valid=np.ones(n_rows, bool))
        ro = Rollout(batch=batch, prompt_ids=[g.prompt_ids for g in gens],
                     response_ids=[g.response_ids for g in gens], won=won, lengths=np.ones(n_rows, int),
                     task_types=["bench"] * n_rows, games=[f"g{i // group}" for i in range(n_rows)],
                     old_logprobs=[g.logprobs for g in gens], scores=won.astype(float),
                     anchor_obs=[f"obs{i // group}" for i in range(n_rows)])
        adv = ESTIMATORS.get("hgpo")(ro.batch, {"history_length": 2, "gamma": 0.95, "invalid_penalty": 0.1})
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        parts, s = timed(lambda: ppo_update(model, ref_model, optimizer, ro, adv, tcfg, tok.pad_token_id, rng), dev)
        lens = [len(p) + len(r) for p, r in zip(ro.prompt_ids, ro.response_ids)]
        n_resp = sum(len(r) for r in ro.response_ids)
        # actor fwd+bwd (3x forward) plus the reference forward, LM head on response positions only
        flops = 4 * forward_flops(cfg, lens, n_resp)
        rep.add(f"trainer_update_it{it}", seconds=s, tokens=sum(lens), tokens_per_s=sum(lens) / s,
                mfu=flops / s / 1e12 / peak_tflops, peak_gib=peak_gib(dev),
                kl=parts.get("train/kl"), clipfrac=parts.get("train/clipfrac"))
    rows_ids = [p + r for p, r in zip(ro.prompt_ids, ro.response_ids)]

    # --- baseline: plain fwd + bwd + AdamW over the same rows, same micro-batches ---
    plain_opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()

    def plain_update():
        n = 0
        for lo in range(0, len(rows_ids), args.mini):
            plain_opt.zero_grad(set_to_none=True)
            mb = rows_ids[lo:lo + args.mini]
            for m in range(0, len(mb), args.micro):
                chunk = mb[m:m + args.micro]
                w = max(map(len, chunk))
                x = torch.full((len(chunk), w), tok.pad_token_id, device=dev)
                for i, r in enumerate(chunk):
                    x[i, :len(r)] = torch.tensor(r, device=dev)
                loss = model(input_ids=x, labels=x).loss
                loss.backward()
                n += x.numel()
            plain_opt.step()
        return n

    for i in range(2):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        n, s = timed(plain_update, dev)
        lens = [len(r) for r in rows_ids]
        flops = 3 * forward_flops(cfg, lens, sum(lens))
        rep.add("plain_update" + ("_cold" if i == 0 else ""), seconds=s, tokens=n, tokens_per_s=n / s,
                mfu=flops / s / 1e12 / peak_tflops, peak_gib=peak_gib(dev))
    del plain_opt, optimizer
    model.gradient_checkpointing_disable()
    model.eval()
    if cuda:
        torch.cuda.empty_cache()

    # --- compiled decoding: static cache + torch.compile (CUDA graphs) ---
    elapsed = time.perf_counter() - t_start
    if not cuda:
        rep.add("compiled_generate", skipped="cpu")
    elif elapsed > args.budget_s:
        rep.add("compiled_generate", skipped=f"{elapsed:.0f}s elapsed > budget {args.budget_s:.0f}s")
    else:
        from transformers import CompileConfig

        kw = dict(cache_implementation="static", compile_config=CompileConfig(mode="reduce-overhead"))
        try:
            for i in range(3):
                torch.cuda.reset_peak_memory_stats()
                n, s = timed(lambda: plain_generate(**kw), dev)
                rollout_row("compiled_generate" + ("_cold" if i == 0 else ""), s, n)
                if time.perf_counter() - t_start > args.budget_s + 120:
                    break
        except Exception as e:  # record why, keep the rest of the report
            rep.add("compiled_generate", error=f"{type(e).__name__}: {str(e)[:300]}")
    rep.add("done", wall_s=time.perf_counter() - t_start)
    print(rep.markdown())


def decode_study(rep, model, tok, backend, prompts, input_ids, plain_generate, rollout_row, dev) -> None:
    """Where decoding time goes: the same generate call with one thing changed at a time, then a
    kernel profile of the plain call (GPU busy time vs wall time)."""
    plain_generate()  # cold call: CUDA context, cuBLAS handles, allocator
    variants = {
        "plain": {},
        "plain_no_attention_mask": {"attention_mask": None},
        "greedy": {"do_sample": False},
        "plain_output_logits": {"return_dict_in_generate": True, "output_logits": True},
    }
    for name, kw in variants.items():
        for _ in range(2):
            n, s = timed(lambda: plain_generate(**kw), dev)
            rollout_row(f"decode_{name}", s, n)
    for _ in range(2):
        gens, s = timed(lambda: backend.generate(prompts, temperature=1.0, seed=0), dev)
        rollout_row("decode_trainer_backend", s, sum(len(g.response_ids) for g in gens))
    full = input_ids
    for b in (32, 256):
        rows = full[:b] if b <= len(full) else full.repeat(-(-b // len(full)), 1)[:b]
        for _ in range(2):
            n, s = timed(lambda: plain_generate(input_ids=rows, attention_mask=torch.ones_like(rows)), dev)
            rep.add(f"decode_batch{b}", seconds=s, tokens=n, tokens_per_s=n / s,
                    ms_per_step=1e3 * s / (n / b))
    if dev.startswith("cuda"):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            n, s = timed(plain_generate, dev)
        # kernels only: CPU-side ops also report the device time of the kernels they launched
        events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
        busy = sum(e.self_device_time_total for e in events) / 1e6
        top = sorted(prof.key_averages(), key=lambda e: -getattr(e, "self_device_time_total", 0.0))[:8]
        rep.add("decode_profile", wall_s=s, gpu_busy_s=busy, busy_frac=busy / s, kernels=len(events),
                top=[(e.key[:60], round(e.self_device_time_total / 1e3, 1), e.count) for e in top])


if __name__ == "__main__":
    main()
