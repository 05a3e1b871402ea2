"""vLLM rollout backend: the ``GenerationBackend`` interface over a colocated ``vllm.LLM`` engine.

Written against vLLM 0.33.0 (the version ``envs/vllm.yaml`` pins; it needs its own environment:
vLLM pins ``torch==2.14.0`` and ``transformers<5.21``). One engine per trainer process, on that
process's GPU, tensor parallel 1: under ``torchrun`` every rank already plays its own shard of the
groups (``repro.rl.distributed``), so ranks sample data-parallel.
deviation: the HGPO scripts run vLLM with tensor parallel 2 (1.5B) / 4 (7B) across the ranks'
GPUs (agentic-rl.md §4.2). TP splits each matrix product over GPUs; the sampled distribution is the
same, only throughput differs.

The parts that need no GPU are plain functions tested on CPU:

* :func:`sampling_kwargs` / :func:`build_requests`: one ``TokensPrompt`` (``prompt_token_ids``)
  and one ``SamplingParams`` keyword set per prompt, each request with its own seed derived from
  (call seed, prompt index), so a response does not depend on how vLLM batches requests;
* :func:`parse_output`: a ``RequestOutput`` into our ``Generation`` (EOS kept, as the
  ``transformers`` backend keeps it; log-probs of the sampled tokens when requested);
* :func:`weight_buckets` and :class:`WeightSync`: the trainer's parameters in bf16 buckets of
  bounded size, each pushed once per optimizer update, with counts, bytes and seconds recorded.

What has not been executed anywhere: :class:`VLLMBackend` itself (engine start, generation, the
``load_weights`` push). No GPU with vLLM was available while it was written (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from repro.rl import distributed as dist
from repro.rl.generation import Generation, _cut_at_eos, encode_prompts

log = logging.getLogger(__name__)

#: engine keyword defaults (vllm.LLM / EngineArgs): the HGPO scripts' rollout settings, agentic-rl.md §4.2
ENGINE_DEFAULTS: dict[str, Any] = {
    "dtype": "bfloat16",
    "gpu_memory_utilization": 0.6,       # actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    "enforce_eager": False,              # rollout.enforce_eager=False: CUDA graphs on
    "enable_chunked_prefill": False,     # rollout.enable_chunked_prefill=False
    "enable_prefix_caching": True,       # group members share their first prompt (vLLM default)
    "enable_sleep_mode": False,          # rollout.free_cache_engine=False: the engine keeps its memory
    "logprobs_mode": "processed_logprobs",  # after temperature: the distribution sampled from
    "tensor_parallel_size": 1,           # deviation: see the module docstring
}
SEED_STRIDE = 1_000_003  # per-request seed = call seed * stride + prompt index (mod 2**31)


def request_seed(seed: int, index: int) -> int:
    return (int(seed) * SEED_STRIDE + int(index)) % 2**31


def sampling_kwargs(*, temperature: float, top_p: float, max_tokens: int, seed: int, eos_id: int,
                    logprobs: bool) -> dict[str, Any]:
    """Keyword arguments of one ``vllm.SamplingParams``.

    ``top_k=0`` and ``top_p=1`` leave the full vocabulary (vLLM 0.33: ``top_k`` 0 or -1 = off);
    ``temperature=0`` is greedy. ``logprobs=0`` returns the sampled token's log-prob only.
    ``stop_token_ids`` names our EOS even when the model's generation config names another.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return {"n": 1, "temperature": float(temperature), "top_p": float(top_p), "top_k": 0,
            "max_tokens": int(max_tokens), "seed": int(seed), "stop_token_ids": [int(eos_id)],
            "skip_special_tokens": True, "logprobs": 0 if logprobs else None}


def build_requests(prompt_ids: Sequence[list[int]], *, temperature: float, top_p: float, max_tokens: int,
                   seed: int, eos_id: int, logprobs: bool) -> tuple[list[dict], list[dict[str, Any]]]:
    """(prompts, sampling kwargs), one of each per prompt: ``{"prompt_token_ids": ids}`` is a
    ``vllm.inputs.TokensPrompt`` (a TypedDict)."""
    prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
    params = [sampling_kwargs(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                              seed=request_seed(seed, i), eos_id=eos_id, logprobs=logprobs)
              for i in range(len(prompt_ids))]
    return prompts, params


def parse_output(output: Any, prompt_ids: list[int], *, eos_id: int, pad_id: int,
                 decode: Callable[[list[int]], str]) -> Generation:
    """One ``vllm.RequestOutput`` (its first ``CompletionOutput``: ``token_ids``, ``logprobs`` as
    one ``{token_id: Logprob}`` per token, ``finish_reason``) as a ``Generation``.

    vLLM keeps the EOS that stopped a request in ``token_ids``; tokens after a first EOS (none in
    practice) are cut, as in the ``transformers`` backend. The text is decoded here from the kept
    ids (special tokens dropped), so both backends produce the same text for the same ids.
    """
    completion = output.outputs[0]
    ids = _cut_at_eos([int(t) for t in completion.token_ids], eos_id, pad_id)
    logprobs = None
    if completion.logprobs is not None:
        if len(completion.logprobs) < len(ids):
            raise ValueError(f"vLLM returned {len(completion.logprobs)} log-prob entries for "
                             f"{len(ids)} tokens (request {getattr(output, 'request_id', '?')})")
        logprobs = [float(step[t].logprob) for step, t in zip(completion.logprobs, ids)]
    return Generation(text=decode(ids), prompt_ids=list(prompt_ids), response_ids=ids, logprobs=logprobs)


# --- weight sync ----------------------------------------------------------------------------------
def weight_buckets(named: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int, *,
                   dtype: torch.dtype = torch.bfloat16,
                   skip: Callable[[str], bool] = lambda name: False) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """The parameters as lists of (HF name, detached ``dtype`` tensor), each list at most
    ``bucket_bytes`` unless a single tensor is larger (it then travels alone). vLLM's
    ``load_weights`` takes HF names and fuses q/k/v and gate/up itself."""
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, p in named:
        if skip(name):
            continue
        t = dist.full_tensor(p).detach().to(dtype)  # a shard's whole tensor under FSDP (every rank)
        nbytes = t.numel() * t.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, t))
        size += nbytes
    if bucket:
        yield bucket


def tied_lm_head(model) -> Callable[[str], bool]:
    """Skip ``lm_head.weight`` when it is the input embedding (Qwen2.5-0.5B/1.5B tie them)."""
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    return lambda name: tied and name == "lm_head.weight"


@dataclass
class WeightSync:
    """Pushes the trainer's weights to the engine once per model version.

    The trainer calls :meth:`mark_updated` after each optimizer update (``GenerationBackend.
    sync_weights``); :meth:`maybe_push` before generating pushes only if the version moved.
    ``load`` receives one bucket at a time (the engine side: ``model.load_weights(bucket)``).
    """

    bucket_bytes: int = 512 * 2**20
    version: int = 0          # trainer-side model version (optimizer updates seen)
    pushed_version: int = -1  # version the engine holds (-1: the engine's own base checkpoint)
    pushes: int = 0
    buckets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def mark_updated(self) -> None:
        self.version += 1

    def stale(self) -> bool:
        return self.pushed_version != self.version

    def maybe_push(self, model, load: Callable[[list[tuple[str, torch.Tensor]]], Any]) -> bool:
        if not self.stale():
            return False
        t0, n_buckets, n_bytes = time.perf_counter(), 0, 0
        for bucket in weight_buckets(model.named_parameters(), self.bucket_bytes, skip=tied_lm_head(model)):
            load(bucket)
            n_buckets += 1
            n_bytes += sum(t.numel() * t.element_size() for _, t in bucket)
        seconds = time.perf_counter() - t0
        self.pushes, self.buckets, self.bytes, self.seconds = (self.pushes + 1, self.buckets + n_buckets,
                                                              self.bytes + n_bytes, self.seconds + seconds)
        self.history.append({"version": self.version, "buckets": n_buckets, "bytes": n_bytes,
                             "seconds": round(seconds, 4)})
        self.pushed_version = self.version
        return True


# --- the engine ------------------------------------------------------------------------------------
class VLLMBackend:
    """Sampling with a colocated ``vllm.LLM`` (not executed here; see the module docstring).

    The engine loads the base checkpoint from ``model_dir``; the trainer's current weights (e.g.
    resumed from a checkpoint) are pushed before the first generation and after every update.
    With sleep mode on, the engine releases its weights and KV cache when the trainer ends a rollout
    (``release``: ``LLM.sleep(level=1)``) and wakes before the next generation (``LLM.wake_up()``),
    so the actor update has the GPU memory.
    """

    def __init__(self, model, tokenizer, *, model_dir: Path, max_new_tokens: int, max_prompt_tokens: int,
                 top_p: float = 1.0, logprobs: bool = False, engine: dict[str, Any] | None = None,
                 seed: int = 0, bucket_bytes: int = 512 * 2**20) -> None:
        # in-process engine: LLM.apply_model then runs our function on the model directly
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM  # the GPU environment only (envs/vllm.yaml)

        self.model, self.tok = model, tokenizer
        self.max_new_tokens, self.max_prompt_tokens, self.top_p = max_new_tokens, max_prompt_tokens, top_p
        self.logprobs = logprobs
        args = {**ENGINE_DEFAULTS, **(engine or {})}
        self.sleep_mode = bool(args["enable_sleep_mode"])
        args.setdefault("max_model_len", max_prompt_tokens + max_new_tokens)
        self.llm = LLM(model=str(model_dir), seed=seed, **args)
        self.sync = WeightSync(bucket_bytes=bucket_bytes)
        self.asleep = False
        if dist.is_sharded(model):  # every rank gathers together, whether or not it has prompts
            self._push()

    def sync_weights(self) -> None:
        """Called by the trainer after each optimizer update: the next generation pushes; a
        sharded (FSDP) policy pushes now, since gathering its weights needs every rank at once."""
        self.sync.mark_updated()
        if dist.is_sharded(self.model):
            self._push()

    def _push(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False
        if self.sync.maybe_push(self.model, self._load):
            self.llm.reset_prefix_cache()  # cached prefixes hold the old weights' keys/values
            log.info("pushed weights v%d to vLLM (%s)", self.sync.version, self.sync.history[-1])

    def release(self) -> None:
        """Called by the trainer when a rollout ends: with sleep mode, free the engine's GPU memory
        (weights offloaded, KV cache dropped) for the update; the next generation wakes it."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def _load(self, bucket: list[tuple[str, torch.Tensor]]) -> None:
        self.llm.apply_model(lambda m: m.load_weights(weights=bucket))

    @torch.no_grad()
    def generate(self, prompts: list[str], *, temperature: float, seed: int,
                 allowed: list[list[str]] | None = None) -> list[Generation]:
        if allowed is not None:
            raise ValueError("constrain_to_admissible is an embedded-scale option of the transformers "
                             "backend; the vLLM backend samples freely, as the papers do")
        if not prompts:
            return []
        from vllm import SamplingParams

        self._push()
        ids = encode_prompts(self.tok, prompts, self.max_prompt_tokens)
        requests, params = build_requests(ids, temperature=temperature, top_p=self.top_p,
                                          max_tokens=self.max_new_tokens, seed=seed,
                                          eos_id=self.tok.eos_token_id, logprobs=self.logprobs)
        outputs = self.llm.generate(requests, [SamplingParams(**p) for p in params], use_tqdm=False)
        decode = lambda x: self.tok.decode(x, skip_special_tokens=True)  # noqa: E731
        return [parse_output(o, p, eos_id=self.tok.eos_token_id, pad_id=self.tok.pad_token_id, decode=decode)
                for o, p in zip(outputs, ids)]


def vllm_backend(model, tok, cfg, model_dir, device) -> VLLMBackend:
    """A colocated engine on this process's GPU (``cfg``: a ``TrainConfig``). It returns the
    sampler's log-probs only when the trainer uses them (``old_logprobs: sampler``)."""
    if not str(device).startswith("cuda"):
        raise RuntimeError(f"rollout_backend 'vllm' needs a CUDA device; this process has {device!r}")
    return VLLMBackend(model, tok, model_dir=Path(model_dir), max_new_tokens=cfg.max_response_tokens,
                       max_prompt_tokens=cfg.max_prompt_tokens, top_p=cfg.top_p,
                       logprobs=cfg.old_logprobs == "sampler",
                       engine=cfg.rollout_engine)
