"""Log-probabilities of response tokens under a causal LM, in padded mini-batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from repro.rl.generation import PrefixTrie
from repro.rl.losses import token_logprobs_and_entropy


def pack(prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int):
    """Right-padded ``input_ids``/``attention_mask`` [B, L] and, for the response, ``targets``,
    ``mask`` [B, R] plus the index of the logit that predicts each response token [B, R]."""
    b = len(prompt_ids)
    lens = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids)]
    width, rwidth = max(lens), max(max(len(r) for r in response_ids), 1)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    attn = torch.zeros((b, width), dtype=torch.long)
    targets = torch.full((b, rwidth), pad_id, dtype=torch.long)
    mask = torch.zeros((b, rwidth), dtype=torch.float32)
    pos = torch.zeros((b, rwidth), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        seq = p + r
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
        if r:
            targets[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1.0
            pos[i, : len(r)] = torch.arange(len(p) - 1, len(p) - 1 + len(r))
    return input_ids, attn, targets, mask, pos


def micro_batches(rows: Sequence[int], lengths: Sequence[int], size: int) -> list[list[int]]:
    """``rows`` (indices into ``lengths``) in chunks of at most ``size``, sorted by length.

    A mini-batch's gradient is accumulated over its micro-batches (verl's
    ``ppo_micro_batch_size_per_gpu``); sorting first makes each chunk pad only to lengths close
    to its own rows' (prompts of one rollout vary ~2x), which cuts the padded tokens ~15%.
    """
    ordered = sorted(rows, key=lambda i: lengths[i])
    return [ordered[lo:lo + size] for lo in range(0, len(ordered), size)]


def update_plan(response_lengths: Sequence[int], lengths: Sequence[int], mini: int, micro: int,
                epochs: int, rng) -> list[tuple[list[list[int]], int]]:
    """Optimizer steps of a PPO update: ``epochs`` random permutations of the rows cut into
    mini-batches of ``mini`` rows; each step is (its micro-batches, its response-token count).
    Steps without response tokens are dropped. ``lengths`` (prompt + response) sort micro-batches."""
    steps = []
    n = len(response_lengths)
    for _ in range(epochs):
        order = rng.permutation(n)
        for lo in range(0, n, mini):
            idx = order[lo:lo + mini]
            n_tokens = int(sum(response_lengths[i] for i in idx))
            if n_tokens:
                steps.append((micro_batches(idx, lengths, micro), n_tokens))
    return steps


def pad_to(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Stack 1-D tensors right-padded with zeros to ``width``: [B, width]."""
    return torch.stack([torch.nn.functional.pad(r, (0, width - len(r))) for r in rows])


class HeadAtResponses(torch.nn.Module):
    """Tokens -> the model's ``head`` at the positions that predict response tokens, as one
    ``forward``: [B, L] right-padded ids (``pack``), [B, R] positions -> [B, R, head outputs].

    The LM head only on those positions (prompts are ~10x longer than responses). Being one module
    call is what lets FSDP shard the model (its root hooks gather the embeddings, final norm and
    head around this forward); unsharded, the trainer calls it on the bare model the same way.
    ``head``: ``"lm"`` (the output embeddings) or ``"score"`` (a token-classification value head).

    No padding mask: the rows are right-padded, so under causal attention a real token only ever
    sees real tokens and the outputs at real positions are those of the masked forward (bit for bit
    on CPU, ``tests/rl/test_policy.py``). Only pad positions differ, and nothing reads them. SDPA's
    causal path skips building and reading the [B, 1, L, L] mask: 5-8% of a forward-backward at
    L ~ 300, 17-21% at L ~ 900 (``scripts/bench_causal_forward.py``, this 2-core machine, several runs).
    """

    def __init__(self, model: torch.nn.Module, head: str = "lm") -> None:
        super().__init__()
        if head not in ("lm", "score"):
            raise ValueError(f"head: {head!r}; allowed: lm, score")
        self.model, self.head = model, head

    def forward(self, input_ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        hidden = self.model.base_model(input_ids=input_ids).last_hidden_state
        picked = torch.gather(hidden, 1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        head = self.model.get_output_embeddings() if self.head == "lm" else self.model.score
        return head(picked)


def head_at_responses(model, prompt_ids, response_ids, pad_id: int, head: str = "lm",
                      device: str | torch.device | None = None):
    """(head outputs [B, R, ...], targets [B, R], mask [B, R]) on ``device`` (default: the
    model's). ``model``: a bare model, or a (possibly FSDP-sharded) ``HeadAtResponses``."""
    device = device or next(model.parameters()).device
    input_ids, _, targets, mask, pos = pack(prompt_ids, response_ids, pad_id)
    fwd = model if isinstance(model, HeadAtResponses) else HeadAtResponses(model, head)
    out = fwd(input_ids.to(device), pos.to(device))
    return out, targets.to(device), mask.to(device)


def allowed_token_mask(allowed_ids: Sequence[list[list[int]] | None], response_ids: Sequence[list[int]],
                       width: int, vocab: int, eos: int) -> torch.Tensor | None:
    """Bool [B, width, V]: at each response position, the tokens that continue one of the row's
    allowed responses (``generation.PrefixTrie``, what a constrained sampler lets through); every
    token for a row without constraint (None). None when no row is constrained."""
    if all(a is None for a in allowed_ids):
        return None
    out = torch.ones((len(response_ids), width, vocab), dtype=torch.bool)
    for i, (allowed, resp) in enumerate(zip(allowed_ids, response_ids)):
        if allowed is None:
            continue
        trie = PrefixTrie(allowed, eos)
        out[i, : len(resp)] = False
        for j in range(len(resp)):
            out[i, j, trie.allowed(tuple(resp[:j]))] = True
    return out


def response_logprobs(model, prompt_ids, response_ids, pad_id: int, device: str | None = None,
                      temperature: float = 1.0, allowed_ids: Sequence[list[list[int]] | None] | None = None,
                      eos_id: int | None = None):
    """(logp [B, R], entropy [B, R], mask [B, R]) of each response token; grads flow if enabled.

    Logits are divided by the sampling ``temperature`` first, so the log-probs are those of the
    distribution the rollout sampled from (verl's actor does the same). ``allowed_ids`` (one entry
    per row: the token ids of the responses it was restricted to, or None) renormalises each
    position over the tokens the constrained sampler allowed (needs ``eos_id``).
    """
    logits, targets, mask = head_at_responses(model, prompt_ids, response_ids, pad_id, "lm", device)
    if temperature != 1.0:
        logits = logits / temperature
    allowed = (None if allowed_ids is None else
               allowed_token_mask(allowed_ids, response_ids, logits.shape[1], logits.shape[-1], eos_id))
    logp, ent = token_logprobs_and_entropy(logits, targets, None if allowed is None else allowed.to(logits.device))
    return logp, ent, mask


@torch.no_grad()
def batched_logprobs(model, prompt_ids, response_ids, pad_id: int, batch_size: int,
                     device: str | None = None, temperature: float = 1.0,
                     allowed_ids: Sequence[list[list[int]] | None] | None = None,
                     eos_id: int | None = None) -> list[torch.Tensor]:
    """Per-row response log-probs (list of 1-D tensors) without gradients, e.g. old/ref policies
    (``allowed_ids``, ``eos_id``: as :func:`response_logprobs`).

    Rows are batched in order of length (results come back in input order), so each batch pads to
    a length close to its rows' own: prompts of one rollout vary ~2x in length.
    """
    was = model.training
    model.eval()
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]) + len(response_ids[i]))
    out: list[torch.Tensor | None] = [None] * len(prompt_ids)
    try:
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            p, r = [prompt_ids[i] for i in idx], [response_ids[i] for i in idx]
            allowed = None if allowed_ids is None else [allowed_ids[i] for i in idx]
            logp, _, _ = response_logprobs(model, p, r, pad_id, device, temperature, allowed, eos_id)
            for j, i in enumerate(idx):
                out[i] = logp[j, : len(r[j])].cpu()
    finally:
        model.train(was)
    return out  # type: ignore[return-value]
