"""A reasoning LM's prompts with CoT on or off, its fine-tuning with an optional latent safety
head, greedy generation and the refusal detector (other-papers.md §7.2).

- **CoT on**: the user turn through the chat template with the generation prompt; the model is free
  to open ``<think>``.
- **CoT off**: the same plus an empty think block prefilled in the assistant turn (``nocot_prefill``,
  §7.2: "prompt the LRM with an empty think block").
- **Safety-Head**: a linear map of the last layer's hidden state at the last prompt token (the state
  before any CoT token is generated, §7.4's figure) to one logit, "unsafe".
- **Fine-tuning loss** (§7.2, §7.4): ``L = L_task + lambda * L_align``: ``L_task`` the token-mean NLL of
  the responses, ``L_align`` the mean BCE of the head's logit against the judge's label (rows
  without a label are left out).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from repro.rl.policy import micro_batches, pack
from repro.safety.family import GENERATION_BACKENDS

log = logging.getLogger(__name__)

NOCOT_PREFILL = "<think>\n\n</think>\n\n"  # DeepSeek-R1's way to skip reasoning


@dataclass
class Example:
    """One training row: token ids of the prompt (chat + any prefill) and of the response (EOS
    included), and the head's target (1 unsafe, 0 safe, nan: no head loss on this row)."""

    prompt_ids: list[int]
    response_ids: list[int]
    label: float = float("nan")


def chat_text(tok, prompt: str, cot: bool = True, prefill: str = NOCOT_PREFILL) -> str:
    """The generation prompt of a user message; with ``cot=False`` the empty think block follows."""
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return text if cot else text + prefill


def encode_prompts(tok, prompts: Sequence[str], cot: bool, max_prompt_tokens: int,
                   prefill: str = NOCOT_PREFILL) -> list[list[int]]:
    """Token ids of each prompt (left-truncated to ``max_prompt_tokens``)."""
    texts = [chat_text(tok, p, cot, prefill) for p in prompts]
    return [ids[-max_prompt_tokens:] for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def examples(tok, prompts: Sequence[str], responses: Sequence[str], *, cot: bool | Sequence[bool] = True,
             labels: Sequence[float] | None = None, max_prompt_tokens: int = 256,
             prefill: str = NOCOT_PREFILL) -> list[Example]:
    """Training rows of (prompt, response) pairs; ``cot`` per row or for all (False: the response
    follows the empty think block, which is part of the prompt and carries no loss)."""
    cots = [cot] * len(prompts) if isinstance(cot, bool) else list(cot)
    texts = [chat_text(tok, p, c, prefill) for p, c in zip(prompts, cots)]
    p_ids = [ids[-max_prompt_tokens:] for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    r_ids = [ids + [tok.eos_token_id] for ids in tok(list(responses), add_special_tokens=False)["input_ids"]]
    labels = [float("nan")] * len(prompts) if labels is None else list(labels)
    return [Example(p, r, float(y)) for p, r, y in zip(p_ids, r_ids, labels)]


class SafetyHead(torch.nn.Module):
    """hidden [B, H] -> logit [B] of "unsafe" (§7.4: an auxiliary linear head)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden).squeeze(-1)


def prompt_state(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, last: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [B, L, V], the last layer's hidden state at position ``last`` [B] -> [B, H]). The
    last entry of ``hidden_states`` is after the final norm (what the LM head reads)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden = out.hidden_states[-1]
    return out.logits, hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def losses(model, head: SafetyHead | None, rows: Sequence[Example], pad_id: int, n_tokens: int, n_labels: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_task summed over the rows' response tokens / ``n_tokens``, L_align summed over the labelled
    rows / ``n_labels``): one micro-batch's share of the batch means."""
    device = next(model.parameters()).device
    input_ids, attn, targets, mask, pos = pack([r.prompt_ids for r in rows], [r.response_ids for r in rows], pad_id)
    last = torch.tensor([len(r.prompt_ids) - 1 for r in rows], device=device)
    logits, h = prompt_state(model, input_ids.to(device), attn.to(device), last)
    picked = torch.gather(logits, 1, pos.to(device).unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    logp = torch.log_softmax(picked.float(), -1).gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
    task = -(logp * mask.to(device)).sum() / max(n_tokens, 1)
    align = torch.zeros((), device=device)
    y = torch.tensor([r.label for r in rows], device=device)
    keep = ~torch.isnan(y)
    if head is not None and keep.any():
        z = head(h.float())
        align = torch.nn.functional.binary_cross_entropy_with_logits(z[keep], y[keep], reduction="sum") / max(n_labels, 1)
    return task, align


def tune(model, rows: Sequence[Example], *, pad_id: int, epochs: int, lr: float, batch_size: int, seed: int,
         head: SafetyHead | None = None, align_weight: float = 0.0, micro_batch_size: int | None = None,
         params: Sequence[torch.nn.Parameter] | None = None, log_row: Callable[[dict], None] | None = None
         ) -> list[dict[str, float]]:
    """AdamW (linear decay) on ``L_task + align_weight * L_align`` over shuffled batches of ``rows``;
    ``params``: what is trained (default: the model's, plus the head's). Returns one row per epoch
    (mean ``task`` and ``align`` losses, ``seconds``)."""
    trained = list(params if params is not None else model.parameters()) + (list(head.parameters()) if head else [])
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.01)
    steps_total = epochs * math.ceil(len(rows) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps_total, 1))
    rng = np.random.default_rng(seed)
    lengths = [len(r.prompt_ids) + len(r.response_ids) for r in rows]
    out = []
    model.train()
    for ep in range(epochs):
        t0, tot_task, tot_align, n_batches = time.perf_counter(), 0.0, 0.0, 0
        order = rng.permutation(len(rows))
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            n_tokens = sum(len(rows[i].response_ids) for i in idx)
            n_labels = sum(not math.isnan(rows[i].label) for i in idx)
            opt.zero_grad(set_to_none=True)
            bt, ba = 0.0, 0.0
            for m in micro_batches(idx, lengths, micro_batch_size or batch_size):
                task, align = losses(model, head, [rows[i] for i in m], pad_id, n_tokens, n_labels)
                (task + align_weight * align).backward()
                bt, ba = bt + task.item(), ba + align.item()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            opt.step()
            sched.step()
            tot_task, tot_align, n_batches = tot_task + bt, tot_align + ba, n_batches + 1
        row = {"task_loss": tot_task / max(n_batches, 1), "align_loss": tot_align / max(n_batches, 1),
               "seconds": time.perf_counter() - t0}
        out.append(row)
        if log_row is not None:
            log_row(row)
    model.eval()
    return out


@torch.no_grad()
def head_scores(model, head: SafetyHead, prompt_ids: Sequence[list[int]], pad_id: int, batch_size: int = 64
                ) -> np.ndarray:
    """P(unsafe) of each prompt [N] from the head on its last prompt token's hidden state."""
    device = next(model.parameters()).device
    out = np.zeros(len(prompt_ids))
    for lo in range(0, len(prompt_ids), batch_size):
        chunk = list(prompt_ids[lo:lo + batch_size])
        input_ids, attn, *_ = pack(chunk, [[] for _ in chunk], pad_id)
        last = torch.tensor([len(p) - 1 for p in chunk], device=device)
        _, h = prompt_state(model, input_ids.to(device), attn.to(device), last)
        out[lo:lo + len(chunk)] = torch.sigmoid(head(h.float())).cpu().numpy()
    return out


@torch.no_grad()
def generate(model, tok, prompt_ids: Sequence[list[int]], *, max_new_tokens: int, batch_size: int = 64
             ) -> list[str]:
    """Greedy continuations of token-id prompts (left-padded batches, sorted by length); the text
    keeps ``<think>`` tags (added tokens, not special) and drops EOS / padding."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    out: list[str] = [""] * len(prompt_ids)
    for lo in range(0, len(order), batch_size):
        idx = order[lo:lo + batch_size]
        width = max(len(prompt_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for j, i in enumerate(idx):
            p = prompt_ids[i]
            ids[j, width - len(p):] = torch.tensor(p)
            attn[j, width - len(p):] = 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
        for j, i in enumerate(idx):
            out[i] = tok.decode(gen[j, width:], skip_special_tokens=True).strip()
    return out


def generate_vllm(model_path, tok, prompt_ids: Sequence[list[int]], *, max_new_tokens: int,
                  engine: dict | None = None) -> list[str]:
    """Greedy continuations from a ``vllm.LLM`` on the model folder ``model_path`` (the paper
    scale's long CoT; a GPU environment with vLLM, not executed here). The engine is released
    after the call so a trainer in the same process gets the memory back."""
    import gc  # noqa: PLC0415
    import os  # noqa: PLC0415

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM, SamplingParams  # noqa: PLC0415  (envs/vllm.yaml)

    from repro.rl.vllm_backend import ENGINE_DEFAULTS, build_requests  # noqa: PLC0415

    llm = LLM(model=str(model_path), seed=0, **{**ENGINE_DEFAULTS, **(engine or {})})
    requests, params = build_requests(prompt_ids, temperature=0.0, top_p=1.0, max_tokens=max_new_tokens, seed=0,
                                      eos_id=tok.eos_token_id, logprobs=False)
    outs = llm.generate(requests, [SamplingParams(**p) for p in params], use_tqdm=False)
    texts = [tok.decode(o.outputs[0].token_ids, skip_special_tokens=True).strip() for o in outs]
    del llm
    gc.collect()
    torch.cuda.empty_cache()
    return texts


def generate_with(backend: str, model, tok, model_path, prompt_ids: Sequence[list[int]], *, max_new_tokens: int,
                  batch_size: int = 64, engine: dict | None = None) -> list[str]:
    """Greedy continuations through ``backend``: ``transformers`` (``model`` in this process) or
    ``vllm`` (an engine on the folder ``model_path``, which must hold the weights ``model`` has)."""
    if backend not in GENERATION_BACKENDS:
        raise ValueError(f"generation backend {backend!r}; allowed: {', '.join(GENERATION_BACKENDS)}")
    if backend == "vllm":
        return generate_vllm(model_path, tok, prompt_ids, max_new_tokens=max_new_tokens, engine=engine)
    return generate(model, tok, prompt_ids, max_new_tokens=max_new_tokens, batch_size=batch_size)



def refused(text: str, markers: Sequence[str]) -> bool:
    """The refusal detector (§7.2: keyword matching): any marker in the response's answer, i.e.
    after its think block when it has one."""
    answer = text.rsplit("</think>", 1)[-1]
    return any(m.lower() in answer.lower() for m in markers)


def started_cot(text: str) -> bool:
    """Whether the response opens a non-empty think block (a CoT token was generated)."""
    t = text.strip()
    return t.startswith("<think>") and bool(t[len("<think>"):].split("</think>", 1)[0].strip())
