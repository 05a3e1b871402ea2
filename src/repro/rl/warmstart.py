"""The embedded-scale agent: a tiny Qwen2 warm-started on a benchmark's expert (ALFWorld's
hand-coded expert; WebShop's goal-following expert).

Registered as model builder ``tiny_qwen2_sft``. Steps: (1) play train-split episodes with the
benchmark's expert, taking a random admissible action with probability ``noise`` so the warm start
is imperfect and RL has room; (2) train the tokenizer (Qwen2 byte-level BPE whose vocabulary holds
every word of the demonstrations and the benchmark's extra words, e.g. ALFWorld's object and
receptacle class names of every split, as a pretrained tokenizer would already know them);
(3) build a tiny ``Qwen2ForCausalLM``; (4) supervised fine-tuning on the demonstrations with the
RL prompt format. Demonstrations never come from the validation splits.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from repro import registry

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "benchmark": None,           # default: the dataset folder's name (alfworld, webshop)
    "seed": 0,
    "demo_episodes": 600,        # ~3-5k steps on the default embedded games
    "noise": 0.3,                # probability of a random admissible action (issue 2 prototype)
    "demo_max_steps": 15,
    "sft_targets": "expert",     # label each visited state with the expert's action (see rl.sft)
    "sft_history_lengths": None, # cycle the prompt's history depth K over episodes (None: prompt's K)
    "sft_epochs": 6,
    "sft_lr": 2e-3,
    "sft_batch_size": 64,
    "sft_micro_batch_size": 32,  # gradient accumulated over length-sorted chunks (less padding)
    "max_prompt_tokens": 256,
    "prompt": {"history_length": 2, "style": "compact", "require_think": False, "max_obs_chars": 200},
    "model": {},                 # Qwen2Config overrides (repro.models.tiny defaults otherwise)
}

def build(out_dir: Path, params: dict[str, Any], dataset_dir: Path | None) -> None:
    """``params["benchmark"]`` (default: the dataset's folder, ``resources/datasets/<benchmark>/<variant>``)
    picks the expert and prompt format (``repro.registry.BENCHMARKS``)."""
    from repro.rl.rollout import PromptOptions  # torch: only when a model is built
    from repro.rl.sft import demonstration_pairs, warm_start_tiny

    if dataset_dir is None:
        raise ValueError("tiny_qwen2_sft needs a dataset (models.<name>.dataset in the study YAML)")
    p = {**DEFAULTS, **params}
    bench = registry.BENCHMARKS.get(p.get("benchmark") or Path(dataset_dir).parent.name)
    opts = PromptOptions(**p["prompt"])
    t0 = time.perf_counter()
    episodes, won = bench.expert_episodes(dataset_dir, bench.train_split, n_episodes=p["demo_episodes"],
                                          noise=p["noise"], seed=p["seed"], max_steps=p["demo_max_steps"])
    steps = sum(len(e) for e in episodes)
    log.info("collected %d %s expert episodes (%d steps, %.0f%% won) in %.1fs", len(episodes), bench.name,
             steps, 100 * sum(won) / max(len(won), 1), time.perf_counter() - t0)
    pairs = demonstration_pairs(episodes, opts, p["sft_targets"], bench=bench,
                                history_lengths=p["sft_history_lengths"])
    warm_start_tiny(out_dir, pairs, [bench.vocabulary(Path(dataset_dir))], p, {
        "builder": "tiny_qwen2_sft", "params": p,
        "demonstrations": {"episodes": len(episodes), "steps": steps, "expert_success": sum(won) / max(len(won), 1)}})
    log.info("warm-started model written to %s", out_dir)
