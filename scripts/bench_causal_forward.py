"""Time one forward-backward of the policy over right-padded rows, with and without the padding mask.

``HeadAtResponses`` runs the model without the [B, L] padding mask (right padding cannot reach a
real token under causal attention; ``tests/rl/test_policy.py`` checks the outputs are the masked
forward's, bit for bit). This measures what that saves on CPU, on tiny Qwen2 models shaped like the
embedded ones (hidden 128, 4 heads, 2 KV heads, 2 layers) at ALFWorld's prompt lengths (~200-320
tokens, micro-batches of 16) and WebShop's (~500-900, micro-batches of 8): rows length-sorted into
micro-batches as the trainer does, 16 response tokens each, one thread. A third column runs the
unmasked forward on SDPA's math backend instead of its CPU flash kernel (which the policy uses).
``--pinned`` runs under the workflow's ``cpu_pins`` (config/config.yaml, set before torch is
imported), as every job does: compare with a run without it for what the pins cost. Prints a
markdown table; ``--out PATH`` also writes it there (atomically).

    python scripts/bench_causal_forward.py [--repeats 3] [--pinned] [--out benchmarks/bench_causal_forward.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

import yaml

from repro.provenance import KERNEL_VARS, apply_cpu_pins

if "--pinned" in sys.argv:  # kernel dispatch is fixed when torch is imported
    apply_cpu_pins(yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())["cpu_pins"])

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from repro.io import report  # noqa: E402
from repro.rl.policy import HeadAtResponses, pack  # noqa: E402

#: (name, vocab, prompt length range, micro-batch rows), after the embedded warm starts' shapes
SETTINGS = [("alfworld-like", 739, (200, 320), 16), ("webshop-like", 2273, (500, 900), 8)]


def _masked_forward(model, input_ids, attn, pos):
    """What ``HeadAtResponses`` computed before: the same head, with the padding mask."""
    hidden = model.base_model(input_ids=input_ids, attention_mask=attn).last_hidden_state
    picked = torch.gather(hidden, 1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return model.get_output_embeddings()(picked)


def bench(vocab: int, lengths: tuple[int, int], rows: int, batches: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=128, intermediate_size=256,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=1024, attn_implementation="sdpa")).train()
    rng = random.Random(0)
    sizes = sorted(rng.randint(*lengths) for _ in range(rows * batches))
    packed = []
    for lo in range(0, len(sizes), rows):
        prompts = [[rng.randrange(2, vocab) for _ in range(n - 16)] for n in sizes[lo:lo + rows]]
        input_ids, attn, targets, mask, pos = pack(prompts, [[5] * 16 for _ in prompts], pad_id=0)
        packed.append((input_ids, attn, pos))
    head = HeadAtResponses(model)

    def math_sdpa(ids, attn, pos):
        with sdpa_kernel(SDPBackend.MATH):
            return head(ids, pos)

    runs = {"masked": lambda ids, attn, pos: _masked_forward(model, ids, attn, pos),
            "unmasked": lambda ids, attn, pos: head(ids, pos), "unmasked_math": math_sdpa}
    best = {}
    for _ in range(repeats):
        for name, fwd in runs.items():
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            for ids, attn, pos in packed:
                fwd(ids, attn, pos).float().square().mean().backward()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, default=6, help="micro-batches per timed pass")
    ap.add_argument("--pinned", action="store_true", help="run under config/config.yaml's cpu_pins")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    kernels = ", ".join(f"{k}={os.environ[k]}" for k in KERNEL_VARS if k in os.environ) or "none set"
    lines = [f"# Forward-backward with and without the padding mask ({platform.processor() or platform.machine()}, "
             f"torch {torch.__version__}, 1 thread, best of {args.repeats})", "",
             f"Kernel variables: {kernels} (torch dispatches {torch.backends.cpu.get_cpu_capability()}).", "",
             "| setting | prompt tokens | rows per micro-batch | masked s | unmasked s | saved | unmasked, SDPA math s |",
             "|---|---|---|---|---|---|---|"]
    for name, vocab, lengths, rows in SETTINGS:
        t = bench(vocab, lengths, rows, args.batches, args.repeats)
        lines.append(f"| {name} | {lengths[0]}-{lengths[1]} | {rows} | {t['masked']:.3f} | {t['unmasked']:.3f} | "
                     f"{1 - t['unmasked'] / t['masked']:.0%} | {t['unmasked_math']:.3f} |")
    report(lines, args.out)


if __name__ == "__main__":
    main()
