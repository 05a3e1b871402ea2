"""Demonstration pairs for the embedded warm start: history depth per episode."""

from __future__ import annotations

import pytest

from repro import plugins, registry
from repro.rl.rollout import PromptOptions
from repro.rl.sft import demonstration_pairs

OPTS = PromptOptions(history_length=2, style="compact", require_think=False)


def episode(tag: str, n: int = 4) -> list[dict]:
    first = f"-= Welcome to TextWorld =- Your task is to: put some {tag} on shelf."
    return [{"obs": first if i == 0 else f"You arrive at place {i} of {tag}.", "admissible": ["look", "go to desk 1"],
             "action": "go to desk 1", "expert_action": "look"} for i in range(n)]


def test_history_lengths_cycle_over_episodes():
    plugins.load_all()
    bench = registry.BENCHMARKS.get("alfworld")
    eps = [episode(t) for t in ("apple", "book", "cup", "dish", "egg")]
    base = demonstration_pairs(eps, OPTS, bench=bench)
    cycled = demonstration_pairs(eps, OPTS, bench=bench, history_lengths=[0, 4])
    assert len(base) == len(cycled) == 20 and [r for _, r in base] == [r for _, r in cycled]
    by_k = {k: demonstration_pairs(eps, OPTS, bench=bench, history_lengths=[k]) for k in (0, 2, 4)}
    assert base == by_k[2]  # default: the prompt's own K
    for i in range(5):  # episode i uses K = [0, 4][i % 2]
        rows = slice(4 * i, 4 * i + 4)
        assert cycled[rows] == by_k[(0, 4)[i % 2]][rows]
    assert by_k[0][3][0] != by_k[4][3][0]  # the last step's prompt shows 0 vs 3 previous steps


@pytest.mark.parametrize("bad", [[], [-1, 2]])
def test_bad_history_lengths_are_refused(bad):
    plugins.load_all()
    with pytest.raises(ValueError, match="history_lengths"):
        demonstration_pairs([episode("x")], OPTS, bench=registry.BENCHMARKS.get("alfworld"), history_lengths=bad)
