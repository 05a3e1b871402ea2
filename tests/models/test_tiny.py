"""Tokenizer trainer and tiny Qwen2 builder (repro.models.tokenizer, repro.models.tiny)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

from repro.io import sha256_file, sha256_tree
from repro.models.tiny import build_tiny_qwen2, count_parameters, load_model_and_tokenizer
from repro.models.tokenizer import TAG_TOKENS, train_word_tokenizer
from repro.rl.prompts import Memory, build_prompt, parse_action

OBS = (
    "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around "
    "you, you see a bed 1, a desk 2, a desk 1, a drawer 12, a garbagecan 1, and a shelf 3.\n\n"
    "Your task is to: put some pencil on shelf."
)
ADMISSIBLE = ["go to bed 1", "go to desk 1", "go to desk 2", "go to drawer 12", "go to shelf 3", "look", "inventory"]
RESPONSE = "<action>go to desk 1</action>"


def corpus() -> list[str]:
    """Prompts and expert responses as the embedded pipeline produces them (a few repeats)."""
    mem = Memory()
    texts = [build_prompt(OBS, ADMISSIBLE, "put some pencil on shelf.", mem, 2, think=False), RESPONSE]
    mem.add(OBS, "go to desk 1")
    texts.append(build_prompt("You arrive at desk 1. On the desk 1, you see a pencil 1.", ADMISSIBLE,
                              "put some pencil on shelf.", mem, 2, think=False))
    texts += [f"<action>{a}</action>" for a in ADMISSIBLE]
    return texts * 3


def chat(prompt: str, response: str | None = None) -> list[dict]:
    msgs = [{"role": "user", "content": prompt}]
    return msgs + ([{"role": "assistant", "content": response}] if response is not None else [])


# --- tokenizer -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    train_word_tokenizer(corpus(), d)
    return d


def test_chat_template_renders_chatml_and_round_trips(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    prompt = corpus()[0]
    text = tok.apply_chat_template(chat(prompt, RESPONSE), tokenize=False)
    assert text == f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{RESPONSE}<|im_end|>\n"
    gen = tok.apply_chat_template(chat(prompt), tokenize=False, add_generation_prompt=True)
    assert gen.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: lossless, newlines and case included
    assert tok.decode(tok(gen)["input_ids"]) == gen


def test_special_tokens_follow_qwen25_instruct(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|im_start|>"]) == [0, 1, 2]
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<|endoftext|>", "<|im_end|>", None)
    ids = tok("<|im_start|>user\nhi<|im_end|>")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 1  # specials are single tokens, no bos prepended


def test_tags_are_atomic_and_survive_skip_special(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    for tag in TAG_TOKENS:
        assert len(tok(tag)["input_ids"]) == 1, tag
        assert len(tok(f"x{tag}y")["input_ids"]) == 3, tag  # matched inside running text too
    response = "<think>the pencil may be on a desk</think><action>go to desk 1</action>"
    ids = tok.apply_chat_template(chat(corpus()[0], response))["input_ids"]
    start = len(ids) - ids[::-1].index(tok.convert_tokens_to_ids("<|im_start|>"))  # the assistant turn
    decoded = tok.decode(ids[start:], skip_special_tokens=True)
    assert decoded == "assistant\n" + response + "\n"
    assert parse_action(decoded) == ("go to desk 1", True)


def test_corpus_words_are_single_tokens(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    for word in ["go", "desk", "pencil", "shelf", "garbagecan", "admissible"]:
        assert len(tok(" " + word)["input_ids"]) == 1, word
    for role in ["user", "assistant", "system"]:  # as rendered after <|im_start|>
        assert len(tok(role)["input_ids"]) == 1, role


def test_unknown_words_fall_back_to_pieces(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    text = "Zyxophone 42 über-fridge ✓"
    ids = tok(text)["input_ids"]
    assert len(ids) > 4 and max(ids) < len(tok)
    assert tok.decode(ids) == text and tok.unk_token is None


def test_training_is_deterministic_and_capped(tmp_path):
    a = train_word_tokenizer(corpus())
    b = train_word_tokenizer(corpus())
    assert a.get_vocab() == b.get_vocab()
    small = train_word_tokenizer(corpus(), max_vocab=300)
    assert len(small) <= 300 and len(small) < len(a)
    assert small.decode(small(corpus()[0])["input_ids"]) == corpus()[0]
    with pytest.raises(ValueError, match="max_vocab"):
        train_word_tokenizer(corpus(), max_vocab=100)


# --- tiny model ----------------------------------------------------------------------------------

PARAMS = {"seed": 7, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_qwen2(d, PARAMS, corpus())
    return d


def expected_param_count(c) -> int:
    h, i, layers, v = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    kv = c.num_key_value_heads * (h // c.num_attention_heads)
    attn = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with bias; o without
    mlp = 3 * h * i
    return v * h + layers * (attn + mlp + 2 * h) + h  # tied embeddings, 2 norms per layer, final norm


def test_saves_hf_layout_with_manifest(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "chat_template.jinja", "MANIFEST.json"} <= names
    assert not list(model_dir.parent.glob(".model.*"))  # no temp sibling left
    manifest = json.loads((model_dir / "MANIFEST.json").read_text())
    assert manifest["files"] == sha256_tree(model_dir)
    assert manifest["files"]["model.safetensors"] == sha256_file(model_dir / "model.safetensors")
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["config"]["hidden_size"] == 64


def test_loads_with_auto_classes_and_param_count(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert isinstance(model, Qwen2ForCausalLM)
    c = model.config
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers) == (64, 128, 2)
    assert (c.num_attention_heads, c.num_key_value_heads, c.max_position_embeddings) == (4, 2, 1024)
    assert c.tie_word_embeddings and c.rope_parameters["rope_theta"] == 10000.0
    assert c.vocab_size == len(tok) and c.pad_token_id == tok.pad_token_id and c.eos_token_id == tok.eos_token_id
    assert model.generation_config.eos_token_id == [tok.eos_token_id, tok.pad_token_id]
    n = count_parameters(model)
    assert n == expected_param_count(c) == json.loads((model_dir / "MANIFEST.json").read_text())["num_parameters"]
    # the tokenizer next to a qwen2 config loads as the one that was trained
    assert tok.backend_tokenizer.to_str() == train_word_tokenizer(corpus()).backend_tokenizer.to_str()
    assert tok.model_max_length == 1024


def test_build_is_deterministic(model_dir, tmp_path):
    build_tiny_qwen2(tmp_path / "again", PARAMS, corpus())
    build_tiny_qwen2(tmp_path / "other", {**PARAMS, "seed": 8}, corpus())
    weights = lambda d: sha256_file(d / "model.safetensors")  # noqa: E731
    assert weights(tmp_path / "again") == weights(model_dir)
    assert weights(tmp_path / "other") != weights(model_dir)
    assert sha256_file(tmp_path / "again" / "tokenizer.json") == sha256_file(model_dir / "tokenizer.json")


def test_generate_with_kv_cache_is_deterministic(model_dir):
    model, tok = load_model_and_tokenizer(model_dir)
    assert not model.training
    enc = tok.apply_chat_template(chat(corpus()[0]), add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def sample(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return model.generate(**enc, max_new_tokens=12, do_sample=True, use_cache=True)

    a, b = sample(0), sample(0)
    assert torch.equal(a, b) and a.shape[1] > enc["input_ids"].shape[1]
    assert isinstance(tok.decode(a[0, enc["input_ids"].shape[1]:]), str)
    # the KV cache changes nothing but rounding: greedy decoding with and without it agrees, or
    # first parts where the two best next tokens tie to within rounding (another summation order
    # may break a near-tie the other way on another CPU)
    greedy = dict(max_new_tokens=12, do_sample=False)
    with_cache = model.generate(**enc, use_cache=True, **greedy)[0]
    without = model.generate(**enc, use_cache=False, **greedy)[0]
    if not torch.equal(with_cache, without):
        j = int((with_cache[: len(without)] != without[: len(with_cache)]).nonzero()[0])
        with torch.no_grad():
            top2 = model(input_ids=with_cache[None, :j]).logits[0, -1].topk(2).values
        assert float(top2[0] - top2[1]) < 1e-4, (j, top2)


def test_failed_build_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="num_attention_heads"):
        build_tiny_qwen2(tmp_path / "bad", {"hidden_size": 64, "num_attention_heads": 5}, corpus())
    assert list(tmp_path.iterdir()) == []

    def broken_corpus():
        yield from corpus()
        raise RuntimeError("corpus generator failed")

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("previous build")
    with pytest.raises(RuntimeError, match="corpus generator failed"):
        build_tiny_qwen2(tmp_path / "model", PARAMS, broken_corpus())
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp sibling
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["keep.txt"]  # previous output intact


@pytest.mark.parametrize("temperature", [1.0, 0.4])
@pytest.mark.parametrize("constrained", [False, True])
def test_sampler_logprobs_equal_a_fresh_forward(model_dir, temperature, constrained):
    """The backend's per-token log-probs (used as PPO's old log-probs) equal a padded forward pass
    of the distribution it sampled from: renormalised over the allowed tokens when constrained."""
    from repro.rl.generation import TransformersBackend
    from repro.rl.policy import batched_logprobs

    model, tok = load_model_and_tokenizer(model_dir)
    backend = TransformersBackend(model, tok, max_new_tokens=12, max_prompt_tokens=256)
    mem = Memory()
    short = build_prompt(OBS, ADMISSIBLE, "put some pencil on shelf.", mem, 2, think=False)
    mem.add(OBS, "go to desk 1")
    long = build_prompt("You arrive at desk 1. On the desk 1, you see a pencil 1.", ADMISSIBLE,
                        "put some pencil on shelf.", mem, 2, think=False)
    prompts = [short, long, short]  # different lengths: left padding inside the batch
    allowed = [[f"<action>{a}</action>" for a in ADMISSIBLE]] * 3 if constrained else None
    gens = backend.generate(prompts, temperature=temperature, seed=3, allowed=allowed)
    rows = (model, [g.prompt_ids for g in gens], [g.response_ids for g in gens], tok.pad_token_id)
    ref = batched_logprobs(*rows, batch_size=2, temperature=temperature,
                           allowed_ids=[g.allowed_ids for g in gens], eos_id=tok.eos_token_id)
    for g, r in zip(gens, ref):
        assert len(g.logprobs) == len(g.response_ids) == len(r)
        assert torch.allclose(torch.tensor(g.logprobs), r, atol=1e-4)
    if constrained:
        assert all(g.text in allowed[0] for g in gens)
        assert all(len(g.allowed_ids) == len(ADMISSIBLE) for g in gens)
        # the full-vocabulary distribution is another one: the mask moves every response's log-prob
        free = batched_logprobs(*rows, batch_size=2, temperature=temperature)
        assert all(float((r - f).sum()) > 0.01 for r, f in zip(ref, free))
    else:
        assert all(g.allowed_ids is None for g in gens)


@pytest.mark.parametrize("constrained", [False, True])
def test_shared_prompts_run_once_and_sample_the_same(model_dir, constrained):
    """With ``shared_prefix`` the sampler runs each distinct prompt of a batch once (a prompt
    cache repeated to its rows) and samples what it samples without: same responses for the
    same seed, log-probs equal to rounding; a batch of distinct prompts builds no cache."""
    from repro.rl.generation import TransformersBackend, prompt_cache

    model, tok = load_model_and_tokenizer(model_dir)
    mem = Memory()
    short = build_prompt(OBS, ADMISSIBLE, "put some pencil on shelf.", mem, 2, think=False)
    mem.add(OBS, "go to desk 1")
    long = build_prompt("You arrive at desk 1. On the desk 1, you see a pencil 1.", ADMISSIBLE,
                        "put some pencil on shelf.", mem, 2, think=False)
    prompts = [short, long, short, short, long, short]
    allowed = [[f"<action>{a}</action>" for a in ADMISSIBLE]] * len(prompts) if constrained else None
    out = {}
    for shared in (False, True):
        backend = TransformersBackend(model, tok, max_new_tokens=12, max_prompt_tokens=256, shared_prefix=shared)
        out[shared] = backend.generate(prompts, temperature=1.0, seed=5, allowed=allowed)
    assert [g.response_ids for g in out[True]] == [g.response_ids for g in out[False]]
    assert len({tuple(g.response_ids) for g in out[True]}) > 1  # sampled, not one answer
    for a, b in zip(out[False], out[True]):
        assert a.prompt_ids == b.prompt_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)
    ids = torch.tensor([[3, 4, 5], [6, 7, 8]])
    assert prompt_cache(model, ids, torch.ones_like(ids), [(1,), (2,)], {}) is None
