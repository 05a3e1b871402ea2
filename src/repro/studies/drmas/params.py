"""Typed params of Dr. MAS's registry items (torch-free: the workflow validates them while parsing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PerAgentParams:
    """``per_agent_models``: how many agents (one model each)."""

    agents: int = 2   # math: Solver, Verifier; search: Verifier, Search, Answer (§3.6.4)

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise ValueError(f"agents must be >= 1, got {self.agents}")
