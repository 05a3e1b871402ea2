"""Response log-probs from gathered hidden states equal those from the full logits."""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

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
