"""Tiny Qwen2 policies for the embedded scale (DESIGN.md §1, §3).

``build_tiny_qwen2`` trains a word-granular tokenizer (``repro.models.tokenizer``) on benchmark
text, builds a small ``Qwen2ForCausalLM`` (the class of the papers' Qwen2.5 policies, only
smaller) initialised from a seed, and saves both in Hugging Face layout with a ``MANIFEST.json``::

    <out_dir>/config.json  generation_config.json  model.safetensors
              tokenizer.json  tokenizer_config.json  chat_template.jinja  MANIFEST.json

Nothing is registered here: the lead's ``MODELS`` entry chains this builder with the supervised
warm start on expert demonstrations.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any, Iterable

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from repro.io import atomic_dir, sha256_tree, write_json
from repro.models.tokenizer import ENDOFTEXT, IM_END, train_word_tokenizer

logger = logging.getLogger(__name__)

# Shape defaults of the embedded policy. Qwen2.5-1.5B-Instruct has hidden 1536, intermediate 8960,
# 28 layers, 12 query / 2 key-value heads, 32768 positions, tied embeddings, rope_theta 1e6; each
# is shrunk so that the embedded policy trains on a 2-core CPU.
DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,  # shrunk from 1536: ~0.3M parameters besides the (tied) embeddings
    "intermediate_size": 256,  # shrunk from 8960, keeping the MLP at 2x hidden
    "num_hidden_layers": 2,  # shrunk from 28
    "num_attention_heads": 4,  # shrunk from 12 (head dim 32)
    "num_key_value_heads": 2,  # GQA kept (2 KV heads, as in the 1.5B model)
    "max_position_embeddings": 1024,  # shrunk from 32768: bounds embedded prompt + response
    "tie_word_embeddings": True,  # as in Qwen2.5-1.5B
    "rope_theta": 10000.0,  # shrunk from 1e6: short contexts need no long-range rope base
    "seed": 0,
    "min_frequency": 1,  # tokenizer: every word the benchmark produces may become one token
    "max_vocab": 4096,  # tokenizer cap (shrunk from Qwen's 151,646): bytes + merges + specials
}


def build_tiny_qwen2(out_dir: Path, params: dict, corpus: Iterable[str]) -> None:
    """Train the tokenizer on ``corpus`` and save a freshly initialised tiny Qwen2 to ``out_dir``.

    Args:
        out_dir: final model folder; written atomically (``repro.io.atomic_dir``), so it either
            holds a complete model or is left as it was.
        params: overrides of ``DEFAULTS`` (shape keys of ``Qwen2Config``, ``seed``, tokenizer
            ``min_frequency``/``max_vocab``); other keys are ignored so a caller may pass its whole
            model section (e.g. warm-start settings).
        corpus: text the tokenizer is trained on; words absent from it are encoded as several
            sub-word or byte tokens.

    The weights depend only on ``params`` and the vocabulary size: ``torch.manual_seed(seed)``
    precedes construction, so two builds with equal inputs write byte-identical safetensors.
    """
    p = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
    # transformers accepts these silently (it truncates head_dim), so check them here
    if p["hidden_size"] % p["num_attention_heads"] or p["num_attention_heads"] % p["num_key_value_heads"]:
        raise ValueError(
            f"hidden_size ({p['hidden_size']}) must be divisible by num_attention_heads "
            f"({p['num_attention_heads']}), which must be divisible by num_key_value_heads ({p['num_key_value_heads']})"
        )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        tokenizer = train_word_tokenizer(corpus, min_frequency=p["min_frequency"], max_vocab=p["max_vocab"])
        tokenizer.model_max_length = p["max_position_embeddings"]
        pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
        im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=p["hidden_size"],
            intermediate_size=p["intermediate_size"],
            num_hidden_layers=p["num_hidden_layers"],
            num_attention_heads=p["num_attention_heads"],
            num_key_value_heads=p["num_key_value_heads"],
            max_position_embeddings=p["max_position_embeddings"],
            tie_word_embeddings=p["tie_word_embeddings"],
            rope_parameters={"rope_type": "default", "rope_theta": float(p["rope_theta"])},
            # Qwen2.5-Instruct's ids: bos = pad = <|endoftext|>, eos = <|im_end|>
            bos_token_id=pad_id,
            pad_token_id=pad_id,
            eos_token_id=im_end_id,
        )
        torch.manual_seed(int(p["seed"]))
        model = Qwen2ForCausalLM(config)
        # As in Qwen2.5-Instruct's generation_config.json: stop at the end of the assistant turn
        # or at <|endoftext|>. Sampling settings are left to the caller (rollout config).
        model.generation_config = GenerationConfig(
            bos_token_id=pad_id, pad_token_id=pad_id, eos_token_id=[im_end_id, pad_id]
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        n_params = count_parameters(model)
        write_json(
            tmp / "MANIFEST.json",
            {
                "kind": "tiny_qwen2",
                "files": sha256_tree(tmp),
                "config": config.to_dict(),
                "params": p,
                "num_parameters": n_params,
                "vocab_size": len(tokenizer),
                "versions": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "python": platform.python_version(),
                },
            },
        )
    logger.info("built tiny Qwen2 (%d parameters, vocab %d) at %s", n_params, len(tokenizer), out_dir)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied input/output embeddings counted once)."""
    return sum(t.numel() for t in model.parameters())


def load_model_and_tokenizer(
    path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    """Load any causal LM folder in HF layout (tiny or hub snapshot) in eval mode on ``device``."""
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer
