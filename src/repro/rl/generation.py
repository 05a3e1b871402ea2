"""Generation backends: the interface the rollout uses to sample responses.

``TransformersBackend`` batches prompts (left padding), samples with ``model.generate`` (KV cache
on) at the temperature of the phase, and returns the response token ids together with their
log-probs under the distribution it sampled from (logits / temperature; with ``allowed``
responses, renormalised over the tokens that continue one of them). The PPO update uses these as
the old log-probs; a backend that cannot report them returns ``None`` and the trainer recomputes
them with a forward pass (as verl does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from repro.rl import distributed as dist


@dataclass
class Generation:
    """One sampled response: its text (special tokens dropped) and token ids (prompt excluded)."""

    text: str
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float] | None = None  # per response token, at the sampling temperature
    #: the token ids of the responses it was restricted to (``allowed``), else None
    allowed_ids: list[list[int]] | None = None


class GenerationBackend(Protocol):
    """What the rollout and the trainer need from a sampler (``repro.registry.ROLLOUT_BACKENDS``)."""

    def generate(self, prompts: list[str], *, temperature: float, seed: int,
                 allowed: list[list[str]] | None = None, agents: list[int] | None = None) -> list[Generation]: ...

    def release(self) -> None:
        """The rollout is over: memory the sampler holds may be freed for the update."""

    def sync_weights(self) -> None:
        """The trainer's weights changed (one optimizer update): sample from the new ones."""


def encode_prompts(tok, prompts: list[str], max_prompt_tokens: int) -> list[list[int]]:
    """Each user message through the chat template with the generation prompt, as token ids,
    keeping the *last* ``max_prompt_tokens`` (left truncation, as the HGPO scripts configure)."""
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    return [x[-max_prompt_tokens:] for x in tok(texts, add_special_tokens=False)["input_ids"]]


class PrefixTrie:
    """Allowed next tokens given the tokens generated so far, for a set of allowed responses
    (each followed by EOS; past the end of every one, only EOS)."""

    def __init__(self, sequences: list[list[int]], eos: int) -> None:
        self.next: dict[tuple[int, ...], set[int]] = {}
        for seq in sequences:
            seq = list(seq) + [eos]
            for k in range(len(seq)):
                self.next.setdefault(tuple(seq[:k]), set()).add(seq[k])
        self.eos = eos

    def allowed(self, prefix: tuple[int, ...]) -> list[int]:
        return sorted(self.next.get(prefix, {self.eos}))


class TransformersBackend:
    """Batched sampling with ``transformers`` ``generate``.

    ``prompts`` are user messages; each is rendered through the tokenizer's chat template with the
    generation prompt added. ``max_prompt_tokens`` keeps the *last* tokens of an over-long prompt
    (left truncation, as the HGPO scripts configure).
    """

    def __init__(self, model, tokenizer, *, max_new_tokens: int, max_prompt_tokens: int,
                 batch_size: int = 64, device: str = "cpu", top_p: float = 1.0, agent_kwargs=None,
                 shared_prefix: bool = False) -> None:
        # a sharded (FSDP) policy cannot sample: each rank plays its own games, so ranks would run
        # different numbers of forward passes through collectives. It samples from a whole replica.
        self.source = model if dist.is_sharded(model) else None
        self.model, self.tok = (_replica(model) if self.source is not None else model), tokenizer
        self.max_new_tokens, self.max_prompt_tokens = max_new_tokens, max_prompt_tokens
        self.batch_size, self.device, self.top_p = batch_size, device, top_p
        #: ``generate`` kwargs that make each row's response its agent's (``Tuned.agent_kwargs``)
        self.agent_kwargs = agent_kwargs
        #: equal prompts of a batch (a group's rollouts) run their prompt once (``prompt_cache``)
        self.shared_prefix = shared_prefix

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        return encode_prompts(self.tok, prompts, self.max_prompt_tokens)

    def release(self) -> None:  # the policy (or its replica) stays: nothing to free
        pass

    def sync_weights(self) -> None:
        """The replica of a sharded policy takes its updated weights (every rank calls this);
        an unsharded policy samples itself: nothing to do."""
        if self.source is not None:
            self.model.load_state_dict(dist.full_state_dict(self.source))

    @torch.no_grad()
    def generate(self, prompts: list[str], *, temperature: float, seed: int,
                 allowed: list[list[str]] | None = None, agents: list[int] | None = None) -> list[Generation]:
        """Sample one response per prompt.

        ``allowed`` (optional, one list per prompt) restricts each response to one of the given
        texts by masking, token by token, everything that does not continue one of them
        (embedded-scale option ``constrain_to_admissible``). ``agents`` (one per prompt) names
        the weights that write each response, through ``agent_kwargs`` (one ``generate`` call).
        """
        if agents is not None and self.agent_kwargs is None:
            raise ValueError("TransformersBackend.generate: agents given but the policy has one set of weights")
        if not prompts:
            return []
        encoded = self.encode_prompts(prompts)
        tries = allowed_ids = None
        if allowed is not None:
            allowed_ids = [self.tok(texts, add_special_tokens=False)["input_ids"] if texts else [] for texts in allowed]
            tries = [PrefixTrie(ids, self.tok.eos_token_id) for ids in allowed_ids]
        out: list[Generation] = []
        was_training = self.model.training
        self.model.eval()
        gen = torch.Generator().manual_seed(seed)
        pad = self.tok.pad_token_id
        try:
            for lo in range(0, len(encoded), self.batch_size):
                chunk = encoded[lo:lo + self.batch_size]
                width = max(map(len, chunk))
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                attn = torch.zeros((len(chunk), width), dtype=torch.long)
                for i, ids in enumerate(chunk):  # left padding
                    input_ids[i, width - len(ids):] = torch.tensor(ids)
                    attn[i, width - len(ids):] = 1
                # generate() draws from torch's global RNG: seed it per batch for reproducibility
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                constrain = None
                if tries is not None:
                    chunk_tries = tries[lo:lo + self.batch_size]

                    def constrain(batch_id: int, ids: torch.Tensor, _t=chunk_tries, _w=width) -> list[int]:
                        return _t[batch_id].allowed(tuple(ids[_w:].tolist()))
                per_row = {} if agents is None else self.agent_kwargs(agents[lo:lo + self.batch_size])
                cache = None
                if self.shared_prefix:
                    who = [None] * len(chunk) if agents is None else agents[lo:lo + self.batch_size]
                    cache = prompt_cache(self.model, input_ids.to(self.device), attn.to(self.device),
                                         [(tuple(ids), a) for ids, a in zip(chunk, who)], per_row)
                seqs = self.model.generate(
                    **per_row, prefix_allowed_tokens_fn=constrain, past_key_values=cache,
                    input_ids=input_ids.to(self.device), attention_mask=attn.to(self.device),
                    max_new_tokens=self.max_new_tokens, do_sample=temperature > 0,
                    temperature=max(temperature, 1e-5), top_p=self.top_p, top_k=0,
                    pad_token_id=pad, eos_token_id=self.tok.eos_token_id, use_cache=True,
                    return_dict_in_generate=True, output_scores=True,
                )
                tokens = seqs.sequences[:, width:]
                logp = _sampled_logprobs(seqs.scores, tokens) if temperature > 0 else None
                for i, ids in enumerate(chunk):
                    resp = _cut_at_eos(tokens[i].tolist(), self.tok.eos_token_id, pad)
                    out.append(Generation(
                        text=self.tok.decode(resp, skip_special_tokens=True),
                        prompt_ids=ids, response_ids=resp,
                        logprobs=logp[i, : len(resp)].tolist() if logp is not None else None,
                        allowed_ids=allowed_ids[lo + i] if allowed_ids is not None else None,
                    ))
        finally:
            self.model.train(was_training)
        return out


def prompt_cache(model, input_ids: torch.Tensor, attn: torch.Tensor, keys: list, per_row: dict):
    """The KV cache of every row's prompt but its last token, computed once per distinct ``keys``
    entry (a row's prompt and agent) and repeated to the rows: ``generate`` then runs only each
    prompt's last token in its prefill. None when every row is distinct. ``input_ids``, ``attn``
    [B, L] left-padded; positions counted from each row's first real token, as ``generate`` does;
    ``per_row``: ``generate``'s per-row kwargs (lists of B entries, taken for the distinct rows)."""
    firsts: dict = {}
    inverse = [firsts.setdefault(k, len(firsts)) for k in keys]
    if len(firsts) == len(keys) or input_ids.shape[1] < 2:
        return None
    rows = [0] * len(firsts)
    for i, u in reversed(list(enumerate(inverse))):
        rows[u] = i
    idx = torch.tensor(rows, device=input_ids.device)
    mask = attn[idx, :-1]
    kwargs = {k: [v[i] for i in rows] if isinstance(v, list) and len(v) == len(keys) else v
              for k, v in per_row.items()}
    out = model(input_ids=input_ids[idx, :-1], attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                use_cache=True, **kwargs)
    cache = out.past_key_values
    cache.reorder_cache(torch.tensor(inverse, device=input_ids.device))
    return cache


def _replica(model):
    """A whole, unsharded copy of a sharded model on this rank's device (a gather: every rank)."""
    whole = dist.full_state_dict(model)
    replica = type(model)(model.config).to(dist.device())
    replica.load_state_dict(whole)
    replica.generation_config = model.generation_config
    return replica.eval()


def transformers_backend(model, tok, cfg, model_dir, device, agent_kwargs=None) -> TransformersBackend:
    """The policy module samples itself (``cfg``: a ``TrainConfig``; ``model_dir`` unused;
    ``agent_kwargs``: ``Tuned.agent_kwargs`` where rows have their own weights)."""
    return TransformersBackend(model, tok, max_new_tokens=cfg.max_response_tokens, top_p=cfg.top_p,
                               max_prompt_tokens=cfg.max_prompt_tokens, device=device, agent_kwargs=agent_kwargs,
                               shared_prefix=cfg.shared_prefix)


def _sampled_logprobs(step_scores: tuple[torch.Tensor, ...], tokens: torch.Tensor) -> torch.Tensor:
    """Log-probs [B, T] of the sampled ``tokens`` [B, T] from generate's processed scores (T
    tensors [B, V]: logits / temperature, −inf where ``allowed`` masks a token, exactly what it
    sampled from), one step at a time: stacking first would hold 2-3 more copies of B·T·V floats
    (~10 GB each for 128 x 128 tokens over Qwen2.5's 152k vocabulary)."""
    return torch.stack([torch.log_softmax(step.float(), -1).gather(-1, tokens[:, j, None])[:, 0]
                        for j, step in enumerate(step_scores)], dim=1)


def _cut_at_eos(ids: list[int], eos: int, pad: int) -> list[int]:
    """Keep tokens up to and including the first EOS; drop trailing padding."""
    for j, t in enumerate(ids):
        if t == eos:
            return ids[: j + 1]
    while ids and ids[-1] == pad:
        ids = ids[:-1]
    return ids
