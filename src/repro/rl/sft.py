"""Supervised warm start on expert demonstrations (embedded scale).

Each demonstration step becomes one (prompt, response) pair built exactly like an RL step: the
same memory, prompt template and chat template; the response is ``<action> a </action>`` plus EOS.
The loss covers response tokens only.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from repro import io as rio
from repro.rl.policy import micro_batches, response_logprobs
from repro.rl.benchmarks import Benchmark
from repro.rl.prompts import Memory, format_response
from repro.rl.rollout import PromptOptions

log = logging.getLogger(__name__)


def demonstration_pairs(episodes: list[list[dict]], opts: PromptOptions,
                        targets: str = "expert", *, bench: Benchmark,
                        history_lengths: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """(user prompt, response) for the steps of every episode.

    ``targets="expert"`` labels every step with the expert's choice in that state, including the
    states a random action led to (so the policy learns to recover; steps where the expert had no
    choice are skipped); ``targets="taken"`` imitates the action actually executed, noise included.
    The history always holds the executed actions. ``history_lengths`` (optional) cycles the
    prompt's history depth K over the episodes (episode i uses ``history_lengths[i % n]``), so the
    model reads prompts of every K an RL run may use; default: ``opts.history_length`` throughout.
    """
    if targets not in ("expert", "taken"):
        raise ValueError(f"targets: {targets!r} not allowed; allowed: expert, taken")
    if history_lengths is not None and (not history_lengths or min(history_lengths) < 0):
        raise ValueError(f"history_lengths: {history_lengths!r} must be a non-empty list of K >= 0")
    key = "expert_action" if targets == "expert" else "action"
    depths = list(history_lengths) if history_lengths is not None else [opts.history_length]
    pairs = []
    for i, ep in enumerate(episodes):
        opts = replace(opts, history_length=depths[i % len(depths)])
        mem = Memory()
        task = bench.task_text(ep[0]["obs"]) if ep else ""
        for step in ep:
            if step.get(key):
                prompt = bench.prompt(step["obs"], step["admissible"], task, mem, opts)
                pairs.append((prompt, format_response(step[key], opts.require_think)))
            mem.add(step["obs"], step["action"])
    return pairs


def encode_pairs(tok, pairs: list[tuple[str, str]], max_prompt_tokens: int):
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p, _ in pairs]
    prompts = [ids[-max_prompt_tokens:] for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    responses = [ids + [tok.eos_token_id]
                 for ids in tok([r for _, r in pairs], add_special_tokens=False)["input_ids"]]
    return prompts, responses


def sft(model, tok, pairs: list[tuple[str, str]], *, epochs: int, lr: float, batch_size: int,
        seed: int, max_prompt_tokens: int, micro_batch_size: int | None = None) -> list[float]:
    """Train on response tokens with AdamW; returns the mean loss of each epoch.

    Each optimizer step takes the token-mean loss of a random batch of ``batch_size`` pairs; its
    gradient is accumulated over length-sorted micro-batches of ``micro_batch_size`` pairs
    (the same gradient, less padding).
    """
    prompts, responses = encode_pairs(tok, pairs, max_prompt_tokens)
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    micro = micro_batch_size or batch_size
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps_total = epochs * ((len(pairs) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps_total, 1))
    losses = []
    model.train()
    for ep in range(epochs):
        t0, total, count = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(pairs))
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            n_tokens = max(sum(len(responses[i]) for i in idx), 1)
            opt.zero_grad(set_to_none=True)
            batch_loss = 0.0
            for m in micro_batches(idx, lengths, micro):
                logp, _, mask = response_logprobs(model, [prompts[i] for i in m],
                                                  [responses[i] for i in m], tok.pad_token_id)
                loss = -(logp * mask).sum() / n_tokens
                loss.backward()
                batch_loss += loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += batch_loss * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
        log.info("sft epoch %d/%d  loss %.4f  (%.1fs, %d pairs)", ep + 1, epochs, losses[-1],
                 time.perf_counter() - t0, len(pairs))
    model.eval()
    return losses


def warm_start_tiny(out_dir, pairs: list[tuple[str, str]], texts: list[str], p: dict, manifest: dict) -> None:
    """A tiny Qwen2 SFT-trained on ``pairs``, written atomically to ``out_dir``: the tokenizer learns
    the pairs' words and ``texts`` (words a pretrained tokenizer would know: other splits, a
    corpus); ``p``: ``seed``, ``model`` (Qwen2Config overrides) and the ``sft_*`` /
    ``max_prompt_tokens`` settings; ``manifest``: the builder's record, completed with the base
    model's manifest, the SFT losses and time and the files' digests."""
    from repro.models.tiny import build_tiny_qwen2, load_model_and_tokenizer  # noqa: PLC0415

    corpus = [t for pair in pairs for t in pair] + list(texts)
    with rio.atomic_dir(Path(out_dir)) as tmp, tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        build_tiny_qwen2(base, {"seed": p["seed"], **p["model"]}, corpus)
        model, tok = load_model_and_tokenizer(base)
        t0 = time.perf_counter()
        losses = sft(model, tok, pairs, epochs=p["sft_epochs"], lr=p["sft_lr"], batch_size=p["sft_batch_size"],
                     micro_batch_size=p["sft_micro_batch_size"], seed=p["seed"],
                     max_prompt_tokens=p["max_prompt_tokens"])
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        base_manifest = rio.read_json(base / "MANIFEST.json") if (base / "MANIFEST.json").exists() else {}
        rio.write_json(tmp / "MANIFEST.json", {
            **manifest, "base": base_manifest, "sft_losses": losses,
            "sft_seconds": round(time.perf_counter() - t0, 1), "files": rio.sha256_tree(tmp)})
