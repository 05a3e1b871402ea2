"""Tokenizer for the embedded-scale tiny models (DESIGN.md §1).

At embedded scale the policy is a tiny ``Qwen2ForCausalLM`` whose vocabulary is trained here with
the ``tokenizers`` library on text the benchmark itself produces (observations, admissible
actions, prompts, expert responses).

Word granularity inside Qwen2's own tokenization pipeline
---------------------------------------------------------
The vocabulary is word-granular: byte-level BPE is trained with a vocabulary budget large enough
that (almost) every corpus word becomes one token (``Ġdesk``, ``Ġfridge``), so a tiny model only
has to pick words, not spell them. The pipeline around it is exactly Qwen2's (NFC normaliser,
Qwen2's split regex, byte-level pre-tokeniser and decoder, BPE model), and the object is a
``transformers`` ``Qwen2Tokenizer``.

deviation: the brief asked for a WordLevel model with a lowercase normaliser and ``<unk>``. In
transformers 5.2x, ``AutoTokenizer.from_pretrained`` on a folder whose ``config.json`` says
``model_type: qwen2`` always builds ``Qwen2Tokenizer``, which rebuilds Qwen2's byte-level BPE
pipeline from the vocabulary and ignores any other pipeline stored in ``tokenizer.json`` (``qwen2``
is in ``MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS``). A WordLevel tokenizer saved next to a Qwen2
model therefore loads silently broken (no spaces, most words unknown). Training inside Qwen2's
pipeline makes ``AutoTokenizer.from_pretrained(model_dir)`` load the tokenizer identically, and
the embedded and paper scales run the same tokenizer code. Consequences: unknown words are never
``<unk>`` but fall apart into sub-word or byte tokens (byte-level BPE covers every string);
case is kept; decoding is lossless (``decode(encode(x)) == x``).

Special tokens, as in ``Qwen/Qwen2.5-1.5B-Instruct`` (ids fixed, so configs can rely on them)::

    0 <|endoftext|>   pad (and the model config's bos)
    1 <|im_end|>      eos: the chat template closes every turn with it
    2 <|im_start|>    ChatML turn start
    3 .. 258          the 256 byte-level symbols
    ...               merges, most frequent first
    V-4 .. V-1        <think> </think> <action> </action>: added tokens, always one token each and
                      *not* special, so they survive ``decode(..., skip_special_tokens=True)``
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import AddedToken
from tokenizers.pre_tokenizers import ByteLevel
from transformers import PreTrainedTokenizerFast, Qwen2Tokenizer

logger = logging.getLogger(__name__)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_END, IM_START)
TAG_TOKENS = ("<think>", "</think>", "<action>", "</action>")
ROLES = ("system", "user", "assistant")

# ChatML as used by Qwen2 / Qwen2.5-Instruct: "<|im_start|>{role}\n{content}<|im_end|>\n" per turn,
# and "<|im_start|>assistant\n" as the generation prompt.
# deviation: Qwen's own template inserts a default system turn ("You are a helpful assistant.")
# when none is given; this one does not: at embedded scale every prompt token costs context in a
# 1024-position model and the default turn carries no information.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def _training_texts(texts: Iterable[str], min_frequency: int) -> Iterator[str]:
    """The corpus with tag strings blanked (they are added tokens, merges for them are wasted),
    plus each role name as it appears after ``<|im_start|>``, often enough to become one token."""
    for text in texts:
        for tag in TAG_TOKENS:
            text = text.replace(tag, " ")
        yield text
    for _ in range(max(1, min_frequency)):
        yield from ROLES


def train_word_tokenizer(
    texts: Iterable[str],
    out_dir: Path | None = None,
    *,
    min_frequency: int = 1,
    max_vocab: int = 4096,
) -> PreTrainedTokenizerFast:
    """Train a word-granular byte-level BPE tokenizer in Qwen2's pipeline, with a ChatML template.

    Args:
        texts: training text (any iterable of strings; consumed once).
        out_dir: when given, the tokenizer is saved there with ``save_pretrained`` so
            ``AutoTokenizer.from_pretrained(out_dir)`` loads it identically. The caller owns
            atomicity (``build_tiny_qwen2`` saves into an ``atomic_dir``).
        min_frequency: a merge (hence a whole-word token) needs at least this many occurrences;
            rarer words are encoded as several sub-word tokens.
        max_vocab: total vocabulary cap: 3 special + 256 byte + merge + 4 tag tokens. When the
            budget runs out before every word is whole, the rarest words stay split.

    Returns:
        a ``Qwen2Tokenizer`` (a ``PreTrainedTokenizerFast``) with pad = ``<|endoftext|>``,
        eos = ``<|im_end|>``, no bos, no unk, ``<|im_start|>`` as an extra special token and
        ``chat_template`` set: the special-token settings of ``Qwen/Qwen2.5-1.5B-Instruct``.
    """
    floor = len(SPECIAL_TOKENS) + len(ByteLevel.alphabet()) + len(TAG_TOKENS)
    if max_vocab <= floor:
        raise ValueError(f"max_vocab={max_vocab} must exceed {floor} (special, byte and tag tokens)")
    # An untrained Qwen2Tokenizer carries Qwen2's pipeline; train_new_from_iterator keeps the
    # pipeline and learns new merges with the `tokenizers` BpeTrainer over the full byte alphabet.
    base = Qwen2Tokenizer(eos_token=IM_END, pad_token=ENDOFTEXT, unk_token=None, bos_token=None)
    tokenizer = base.train_new_from_iterator(
        _training_texts(texts, min_frequency),
        vocab_size=max_vocab - len(TAG_TOKENS),
        new_special_tokens=[AddedToken(IM_START, special=True, normalized=False)],
        min_frequency=min_frequency,
        show_progress=False,
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    for i, t in enumerate(SPECIAL_TOKENS):  # the fixed-id layout the module docstring promises
        if tokenizer.convert_tokens_to_ids(t) != i:
            raise AssertionError(f"{t} has id {tokenizer.convert_tokens_to_ids(t)}, expected {i}")
    tokenizer.chat_template = CHAT_TEMPLATE
    logger.info("trained tokenizer: %d tokens (min_frequency=%d, cap %d)", len(tokenizer), min_frequency, max_vocab)
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer
