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
                epochs: int, rng, split=None) -> list[tuple[list[list[int]], int]]:
    """Optimizer steps of a PPO update: ``epochs`` random permutations of the rows cut into
    mini-batches of ``mini`` rows; each step is (its micro-batches, its response-token count).
    Steps without response tokens are dropped. ``lengths`` (prompt + response) sort micro-batches;
    ``split(rows, micro)`` (optional) cuts a mini-batch into micro-batches instead (e.g.
    :func:`shared_prefix_batches`)."""
    steps = []
    n = len(response_lengths)
    for _ in range(epochs):
        order = rng.permutation(n)
        for lo in range(0, n, mini):
            idx = order[lo:lo + mini]
            n_tokens = int(sum(response_lengths[i] for i in idx))
            if n_tokens:
                steps.append((micro_batches(idx, lengths, micro) if split is None else split(idx, micro), n_tokens))
    return steps


def shared_prefix_batches(prompt_ids: Sequence[list[int]], response_ids: Sequence[list[int]], rows: Sequence[int],
                          micro: int, span: float) -> list[list[int]]:
    """``rows`` as micro-batches of whole :func:`prefix_groups` groups, in order of packed length,
    each padding to about the tokens ``micro`` plain rows of this mini-batch hold (``micro`` × their
    mean length): one forward runs as many tokens either way, over fewer, close-in-length sequences."""
    rows = list(rows)
    sizes = [len(prompt_ids[i]) + len(response_ids[i]) for i in rows]
    budget = micro * sum(sizes) / max(len(sizes), 1)
    packs = []
    for p, members in prefix_groups([prompt_ids[i] for i in rows], [response_ids[i] for i in rows], span):
        packs.append((p + sum(sizes[j] - p for j in members), [rows[j] for j in members]))
    packs.sort(key=lambda x: x[0])
    out: list[list[int]] = []
    count = width = 0
    for length, members in packs:
        if out and (count + 1) * max(width, length) <= budget:
            out[-1] += members
            count, width = count + 1, max(width, length)
        else:
            out.append(list(members))
            count, width = 1, length
    return out


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

    def forward(self, input_ids: torch.Tensor, pos: torch.Tensor, seq: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``seq`` [B] (optional): the row of ``input_ids`` [S, L] each output row reads (packed
        prefixes, :func:`pack_shared`, with their ``position_ids`` [S, L] and boolean
        ``attention_mask`` [S, 1, L, L]); default: output row i reads row i."""
        hidden = self.model.base_model(input_ids=input_ids, position_ids=position_ids,
                                       attention_mask=attention_mask).last_hidden_state
        if seq is None:
            picked = torch.gather(hidden, 1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        else:
            picked = hidden[seq.unsqueeze(-1), pos]
        head = self.model.get_output_embeddings() if self.head == "lm" else self.model.score
        return head(picked)


def head_at_responses(model, prompt_ids, response_ids, pad_id: int, head: str = "lm",
                      device: str | torch.device | None = None, shared_prefix: bool = False):
    """(head outputs [B, R, ...], targets [B, R], mask [B, R]) on ``device`` (default: the
    model's). ``model``: a bare model, or a (possibly FSDP-sharded) ``HeadAtResponses``.
    ``shared_prefix``: rows whose prompts start alike run as one packed sequence each
    (:func:`pack_shared`): the same outputs up to float rounding, fewer tokens."""
    device = device or next(model.parameters()).device
    fwd = model if isinstance(model, HeadAtResponses) else HeadAtResponses(model, head)
    if shared_prefix:
        groups = prefix_groups(prompt_ids, response_ids, attention_span(fwd.model.config))
        input_ids, position_ids, allow, seq, targets, mask, pos = pack_shared(prompt_ids, response_ids, pad_id, groups)
        out = fwd(input_ids.to(device), pos.to(device), seq.to(device), position_ids.to(device), allow.to(device))
    else:
        input_ids, _, targets, mask, pos = pack(prompt_ids, response_ids, pad_id)
        out = fwd(input_ids.to(device), pos.to(device))
    return out, targets.to(device), mask.to(device)


#: what an attended token's multiply-adds cost relative to the linear layers' on CPU (SDPA's flash
#: kernel with a dense mask, forward and backward). Measured with scripts/bench_shared_prefix.py's
#: update on this 2-core machine: the span by FLOP count scaled by 1/8, 1/4, 1/2, 1 and 2 saved
#: 39, 38-39, 34-36, 26 and 21 % of Dr. MAS's forward-backward (KPO's 6-8 % at each)
ATTENTION_COST = 4.0


def attention_span(config) -> float:
    """Tokens of context at which a token's attention costs as much as its linear layers: a
    decoder layer's weights over what one attended token costs (scores and values over every
    head, 2·heads·head_dim, times ``ATTENTION_COST``). Tiny Qwen2 (hidden 128): 144."""
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q = config.num_attention_heads * head_dim
    kv = config.num_key_value_heads * head_dim
    return (hidden * (2 * q + 2 * kv) + 3 * hidden * inter) / (2 * q * ATTENTION_COST)


def _common(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(limit, len(b))
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def prefix_groups(prompt_ids: Sequence[list[int]], response_ids: Sequence[list[int]],
                  span: float) -> list[tuple[int, list[int]]]:
    """Rows as (shared prefix length P, rows) groups, each to run as one packed sequence
    (:func:`pack_shared`): rows in order of their prompts, each joining the group before it where
    that lowers the estimated forward cost L·(1 + L/``span``) of the group and the row, L the
    tokens of a sequence (``attention_span``: attention grows with L, a masked packed sequence
    attends densely). P is the group's longest common prompt prefix: a whole prompt where the
    rows' prompts are equal (their first response tokens are then all predicted at P − 1)."""
    def cost(n: int) -> float:
        return n * (1.0 + n / span)

    order = sorted(range(len(prompt_ids)), key=lambda i: prompt_ids[i])
    groups: list[tuple[int, list[int]]] = []
    total = 0  # tokens of the current group
    for i in order:
        row = len(prompt_ids[i]) + len(response_ids[i])
        if groups:
            p, rows = groups[-1]
            shared = _common(prompt_ids[rows[0]], prompt_ids[i], p)
            # the group's tokens with its prefix cut to ``shared`` (each other row's branch grows by
            # what the prefix loses), plus the new row's branch
            joined = total + (len(rows) - 1) * (p - shared) + row - shared
            if shared and cost(joined) < cost(total) + cost(row):
                groups[-1] = (shared, rows + [i])
                total = joined
                continue
        groups.append((len(prompt_ids[i]), [i]))
        total = row
    return groups


def pack_shared(prompt_ids: Sequence[list[int]], response_ids: Sequence[list[int]], pad_id: int,
                groups: list[tuple[int, list[int]]]):
    """Packed sequences, one per group (P, rows) of :func:`prefix_groups`: the shared prefix
    (P prompt tokens), then each row's branch (the rest of its prompt and its response), each
    branch attending to the prefix and to itself, its positions continuing the prefix's.

    Returns ``input_ids``, ``position_ids`` [S, L] (right-padded), ``allow`` [S, 1, L, L] bool
    (query, key; a pad position sees itself), ``seq`` [B] (the packed row each input row is in)
    and, as :func:`pack` in input row order, ``targets``, ``mask`` [B, R] and ``pos`` [B, R]
    (the packed position whose output predicts each response token)."""
    b = len(prompt_ids)
    rwidth = max(max((len(r) for r in response_ids), default=0), 1)
    targets = torch.full((b, rwidth), pad_id, dtype=torch.long)
    mask = torch.zeros((b, rwidth), dtype=torch.float32)
    pos = torch.zeros((b, rwidth), dtype=torch.long)
    seq = torch.zeros(b, dtype=torch.long)
    ids, positions, segments = [], [], []
    for s, (p, rows) in enumerate(groups):
        tok = list(prompt_ids[rows[0]][:p])
        place, segment = list(range(p)), [0] * p
        for branch, i in enumerate(rows, start=1):
            tail, resp = prompt_ids[i][p:], response_ids[i]
            start = len(tok)
            tok += list(tail) + list(resp)
            place += range(p, p + len(tail) + len(resp))
            segment += [branch] * (len(tail) + len(resp))
            seq[i] = s
            if resp:
                targets[i, : len(resp)] = torch.tensor(resp)
                mask[i, : len(resp)] = 1.0
                # the token before response token t: the prompt's last (in the branch, or the
                # prefix's last when the whole prompt is shared), then the response's own
                first = start + len(tail) - 1 if tail else p - 1
                pos[i, : len(resp)] = torch.tensor([first] + list(range(start + len(tail), start + len(tail) + len(resp) - 1)))
        ids.append(tok)
        positions.append(place)
        segments.append(segment)
    width = max(map(len, ids))
    input_ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(groups), width), dtype=torch.long)
    seg = torch.full((len(groups), width), -1, dtype=torch.long)
    for s, (tok, place, segment) in enumerate(zip(ids, positions, segments)):
        input_ids[s, : len(tok)] = torch.tensor(tok)
        position_ids[s, : len(tok)] = torch.tensor(place)
        seg[s, : len(tok)] = torch.tensor(segment)
    q, k = seg.unsqueeze(2), seg.unsqueeze(1)  # [S, L, 1], [S, 1, L]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allow = causal & (q >= 0) & ((k == 0) | (k == q))
    allow |= torch.eye(width, dtype=torch.bool)
    return input_ids, position_ids, allow.unsqueeze(1), seq, targets, mask, pos


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
                      eos_id: int | None = None, shared_prefix: bool = False):
    """(logp [B, R], entropy [B, R], mask [B, R]) of each response token; grads flow if enabled.

    Logits are divided by the sampling ``temperature`` first, so the log-probs are those of the
    distribution the rollout sampled from (verl's actor does the same). ``allowed_ids`` (one entry
    per row: the token ids of the responses it was restricted to, or None) renormalises each
    position over the tokens the constrained sampler allowed (needs ``eos_id``). ``shared_prefix``:
    as :func:`head_at_responses`.
    """
    logits, targets, mask = head_at_responses(model, prompt_ids, response_ids, pad_id, "lm", device, shared_prefix)
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
