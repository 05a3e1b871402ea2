"""Response log-probs from gathered hidden states equal those from the full logits."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from repro.rl import plugin  # noqa: F401  (registers the policy loss ppo_update uses)
from repro.rl.policy import batched_logprobs, response_logprobs


def test_response_logprobs_match_full_forward():
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=64)).eval()
    prompts = [[3, 4, 5, 6], [7, 8]]
    responses = [[9, 10], [11, 12, 13]]
    logp, ent, mask = response_logprobs(model, prompts, responses, pad_id=0)
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    for i, (p, r) in enumerate(zip(prompts, responses)):
        full = torch.log_softmax(model(input_ids=torch.tensor([p + r])).logits[0], -1)
        expected = torch.stack([full[len(p) - 1 + j, t] for j, t in enumerate(r)])
        assert torch.allclose(logp[i, : len(r)], expected, atol=1e-5)
        assert (ent[i, : len(r)] > 0).all()
    rows = batched_logprobs(model, prompts, responses, pad_id=0, batch_size=1)
    assert [len(x) for x in rows] == [2, 3]
    assert torch.allclose(rows[1], logp[1], atol=1e-5)


def test_logprobs_follow_the_sampling_temperature():
    """At temperature T the log-probs are those of softmax(logits / T), as the sampler used."""
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=64)).eval()
    p, r = [3, 4, 5], [9, 10]
    logits = model(input_ids=torch.tensor([p + r])).logits[0]
    for temp in (0.4, 1.0, 2.0):
        full = torch.log_softmax(logits / temp, -1)
        expected = torch.stack([full[len(p) - 1 + j, t] for j, t in enumerate(r)])
        logp, _, _ = response_logprobs(model, [p], [r], pad_id=0, temperature=temp)
        assert torch.allclose(logp[0], expected, atol=1e-5)
        rows = batched_logprobs(model, [p], [r], pad_id=0, batch_size=4, temperature=temp)
        assert torch.allclose(rows[0], expected, atol=1e-5)


def test_batched_logprobs_keep_input_order_across_batches():
    """Length-sorted batching returns each row's log-probs in the caller's order."""
    torch.manual_seed(2)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=64)).eval()
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(2, 50, (int(n),), generator=gen).tolist() for n in (9, 3, 14, 5, 7, 12, 4)]
    responses = [torch.randint(2, 50, (int(n),), generator=gen).tolist() for n in (2, 4, 1, 3, 2, 1, 5)]
    one = batched_logprobs(model, prompts, responses, pad_id=0, batch_size=1)
    for bs in (2, 3, 7):
        rows = batched_logprobs(model, prompts, responses, pad_id=0, batch_size=bs)
        assert [len(x) for x in rows] == [len(r) for r in responses]
        for a, b in zip(rows, one):
            assert torch.allclose(a, b, atol=1e-5)


def test_micro_batches_sort_by_length_and_cover_rows():
    from repro.rl.policy import micro_batches

    lengths = [9, 3, 14, 5, 7, 12, 4]
    chunks = micro_batches([0, 2, 3, 5, 6], lengths, 2)
    assert chunks == [[6, 3], [0, 5], [2]]


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_ppo_update_gradient_does_not_depend_on_micro_batch_size(agg):
    """Accumulating over micro-batches gives the same step as one pass over the mini-batch, for
    every aggregation mode (micro-batches weighted by their share of tokens, or of rows); a
    per-token advantage (GAE's form) constant over each row gives the step of the row scalar."""
    import numpy as np

    from repro.rl.config import TrainConfig
    from repro.rl.rollout import Rollout
    from repro.rl.trainer import ppo_update

    torch.manual_seed(3)
    base = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4,
                                        num_key_value_heads=2, max_position_embeddings=64))
    gen = torch.Generator().manual_seed(1)
    sizes = [(9, 2), (3, 4), (14, 1), (5, 3), (7, 2), (12, 1), (4, 5), (6, 2), (10, 3)]
    prompts = [torch.randint(2, 50, (p,), generator=gen).tolist() for p, _ in sizes]
    responses = [torch.randint(2, 50, (r,), generator=gen).tolist() for _, r in sizes]
    old = [(x - 0.1).tolist() for x in batched_logprobs(base, prompts, responses, 0, batch_size=4)]
    ro = Rollout(batch=None, prompt_ids=prompts, response_ids=responses, won=np.zeros(0, bool),
                 lengths=np.zeros(0, int), task_types=[], games=[], old_logprobs=old)
    adv = np.linspace(-1.5, 1.5, len(sizes))
    results = []
    per_token = [np.full(len(r), a) for r, a in zip(responses, adv)]
    for micro, a in ((8, adv), (3, adv), (1, adv), (3, per_token)):
        model = Qwen2ForCausalLM(base.config)
        model.load_state_dict(base.state_dict())
        cfg = TrainConfig(mini_batch_rows=8, micro_batch_rows=micro, grad_clip=1e9,
                          policy_loss_params={"kl_coef": 0.01, "loss_agg_mode": agg})
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        parts = ppo_update(model, base, opt, ro, a, cfg, pad_id=0, rng=np.random.default_rng(0))
        results.append((parts, [p.detach().clone() for p in model.parameters()]))
    for parts, params in results[1:]:
        assert parts.keys() == results[0][0].keys()
        for k in parts:
            assert abs(parts[k] - results[0][0][k]) < 1e-5, k
        for a, b in zip(params, results[0][1]):
            assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(results[0][1][0], base.model.embed_tokens.weight)


@pytest.mark.parametrize("constrained", [False, True])
def test_first_ppo_step_has_ratio_exactly_one_with_and_without_the_constraint(monkeypatch, constrained):
    """Old, new and reference log-probs come from one distribution: on the first optimizer step
    of the first epoch (the policy is the one that acted) every token's ratio is exactly 1 and the
    KL to the reference (the same weights) exactly 0. With ``constrain_to_admissible`` that is the
    distribution renormalised over the allowed tokens, which differs from the full one (checked:
    the constraint is not vacuous); an update that masked only some of the three would fail."""
    import numpy as np

    from repro.rl import trainer
    from repro.rl.config import TrainConfig
    from repro.rl.rollout import Rollout

    torch.manual_seed(3)
    base = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4,
                                        num_key_value_heads=2, max_position_embeddings=64))
    gen = torch.Generator().manual_seed(1)
    eos = 1
    # distinct lengths: every batching sorts the rows the same way, so the padding is the same
    sizes = [(9, 2), (3, 4), (14, 1), (5, 3), (7, 2), (12, 1)]
    prompts = [torch.randint(2, 50, (p,), generator=gen).tolist() for p, _ in sizes]
    responses = [torch.randint(2, 50, (r - 1,), generator=gen).tolist() + [eos] for _, r in sizes]
    # each row's allowed responses: its own and three others sharing its first token
    allowed = [[r[:-1]] + [r[:1] + torch.randint(2, 50, (k,), generator=gen).tolist() for k in (1, 2, 3)]
               for r in responses] if constrained else None
    ro = Rollout(batch=None, prompt_ids=prompts, response_ids=responses, won=np.zeros(0, bool),
                 lengths=np.zeros(0, int), task_types=[], games=[], allowed_ids=allowed)
    seen = []
    real_loss = trainer.policy_loss

    class Spy:  # the registered loss, recording what it is given
        def __init__(self, loss):
            self.loss, self.uses_reference, self.agg_mode = loss, loss.uses_reference, loss.agg_mode

        def __call__(self, logp, old_logp, ref_logp, entropy, adv, mask, params):
            seen.append((logp.detach().clone(), old_logp.clone(), ref_logp.clone(), mask.clone()))
            return self.loss(logp, old_logp, ref_logp, entropy, adv, mask, params)

    monkeypatch.setattr(trainer, "policy_loss", lambda cfg: (Spy(real_loss(cfg)[0]), real_loss(cfg)[1]))
    n = len(sizes)
    cfg = TrainConfig(mini_batch_rows=n, micro_batch_rows=n, policy_loss_params={"kl_coef": 0.01}, lr=1e-3)
    model = Qwen2ForCausalLM(base.config)
    model.load_state_dict(base.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    adv = np.linspace(-1.0, 1.0, n)
    parts = trainer.ppo_update(model, base, opt, ro, adv, cfg, pad_id=0, rng=np.random.default_rng(0), eos_id=eos)
    logp, old, ref, mask = seen[0]
    on = mask.bool()
    assert torch.equal(torch.exp(logp - old)[on], torch.ones(int(on.sum())))
    assert torch.equal(logp[on], ref[on]) and parts["train/kl"] == 0.0 and parts["train/clipfrac"] == 0.0
    free = batched_logprobs(base, prompts, responses, 0, batch_size=n)
    order = sorted(range(n), key=lambda i: len(prompts[i]) + len(responses[i]))  # the micro-batch's rows
    gap = [float((logp[j][on[j]] - free[i]).abs().max()) for j, i in enumerate(order)]
    assert all(d > 1e-3 for d in gap) if constrained else all(d < 1e-5 for d in gap)


def test_aggregation_modes_of_the_loss():
    """token-mean: over all valid tokens; seq-mean-token-sum: mean over rows of each row's sum;
    seq-mean-token-mean: mean over rows of each row's mean (verl's ``agg_loss``)."""
    from repro.rl.losses import agg_loss, agg_units

    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert agg_loss(x, mask, "token-mean").item() == 10.0 / 4
    assert agg_loss(x, mask, "seq-mean-token-sum").item() == (6.0 + 4.0) / 2
    assert agg_loss(x, mask, "seq-mean-token-mean").item() == (2.0 + 4.0) / 2
    assert agg_units(mask, "token-mean") == 4.0 and agg_units(mask, "seq-mean-token-mean") == 2.0
    with pytest.raises(ValueError, match="loss_agg_mode 'sum'"):
        agg_loss(x, mask, "sum")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_right_padded_rows_need_no_padding_mask(attn):
    """The head reads real positions only, and under causal attention right padding never reaches
    them: the unmasked forward ``HeadAtResponses`` runs gives the masked forward's outputs there
    bit for bit, and the same log-probs as each row run alone."""
    from repro.rl.policy import HeadAtResponses, pack  # noqa: PLC0415

    torch.manual_seed(3)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=64,
                                         attn_implementation=attn)).eval()
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(2, 50, (int(n),), generator=gen).tolist() for n in (17, 5, 11, 2)]
    responses = [torch.randint(2, 50, (int(n),), generator=gen).tolist() for n in (3, 6, 1, 4)]
    input_ids, attn_mask, _, mask, pos = pack(prompts, responses, pad_id=0)
    assert (attn_mask == 0).any()  # the batch is padded
    with torch.no_grad():
        masked = model.base_model(input_ids=input_ids, attention_mask=attn_mask).last_hidden_state
        picked = torch.gather(masked, 1, pos.unsqueeze(-1).expand(-1, -1, masked.shape[-1]))
        expected = model.get_output_embeddings()(picked)
        got = HeadAtResponses(model)(input_ids, pos)
    real = mask.bool()
    assert torch.equal(got[real], expected[real])
    logp, _, _ = response_logprobs(model, prompts, responses, pad_id=0)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        alone, _, _ = response_logprobs(model, [p], [r], pad_id=0)
        assert torch.allclose(logp[i, : len(r)], alone[0], atol=1e-6)
