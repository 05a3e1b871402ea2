"""Lemma 4.2's per-agent advantage second moment of a Dr. MAS search team, before any training.

Plays ``--tasks`` train questions ``--group`` times with a (warm-started) team at each sampling
temperature and prints success, agent calls per episode, validity and ``agent_moments``
(E_k[A²] under global and agent-wise normalisation). A probe of whether an embedded team's agents
have reward statistics different enough for global normalisation to inflate an agent's gradient
(the study README's "why the embedded runs cannot show the paper's effect").

    python scripts/drmas_moments.py --model resources/models/tiny-qwen2-search-team \\
        --data resources/datasets/search/embedded --temperatures 1.0 1.5 2.0
"""

from __future__ import annotations

import argparse

import torch

from repro import plugins
from repro.registry import BENCHMARKS, ROLLOUTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the team's model folder (a get_model output)")
    ap.add_argument("--data", required=True, help="a search dataset folder")
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--group", type=int, default=5)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    ap.add_argument("--invalid-penalty", type=float, default=0.01)
    args = ap.parse_args()
    plugins.load_all()
    from repro.envs.search import SearchBatchEnv
    from repro.models.tiny import load_model_and_tokenizer
    from repro.rl.generation import TransformersBackend
    from repro.rl.rollout import PromptOptions
    from repro.studies.drmas.diagnostics import agent_moments
    from repro.studies.drmas.estimator import DrMASParams

    torch.manual_seed(0)
    model, tok = load_model_and_tokenizer(args.model)
    backend = TransformersBackend(model, tok, max_new_tokens=16, max_prompt_tokens=320)
    env = SearchBatchEnv(args.data, "train", max_turns=4)
    games = env.list_games()[: args.tasks]
    plays = [g for g in games for _ in range(args.group)]
    groups = [i for i in range(len(games)) for _ in range(args.group)]
    for temp in args.temperatures:
        ro = ROLLOUTS.get("drmas_search")(env, backend, plays, groups, max_steps=4, temperature=temp, seed=1,
                                          prompt=PromptOptions(style="compact", require_think=False, history_length=4),
                                          bench=BENCHMARKS.get("search"))
        m = agent_moments(ro, DrMASParams(invalid_penalty=args.invalid_penalty))
        print(f"T={temp}: success {ro.won.mean():.2f}, calls/episode {ro.lengths.mean():.2f}, "
              f"valid {ro.batch.valid.mean():.2f}, " + ", ".join(f"{k.removeprefix('moment/')} {v:.2f}" for k, v in m.items()))


if __name__ == "__main__":
    main()
