"""Rollouts: one result type (:class:`Rollout`) and the registered ways of producing it
(``registry.ROLLOUTS``, named by ``train.rollout``). ``multi_turn`` (:func:`run_episodes`): agent
<-> batched environment, one training row per step (agentic-rl.md §2.1). A rollout kind is a
callable ``(env, backend, games, group_ids, *, max_steps, temperature, seed, prompt, bench,
state_keys, agents) -> Rollout``; each step row names the agent that acted (``StepBatch.agent``; 0
for a single agent, else what ``agents``, an :class:`AgentChooser`, picked), so single-turn and
multi-agent orchestrations fit the same trainer. ``state_keys``
(``registry.STATE_KEYS``) names each step's state: the row's anchor and, for the step before, the
state it led to (``StepBatch.next_anchor``; the success sink after a won episode's last step).

Multi-turn: groups of ``group_size`` episodes share one game. At each step every active episode gets a fresh
prompt (task, recent history, current observation, admissible actions); the response is parsed for
``<action>…</action>`` and sent to the environment. Rows are gathered trajectory-major and
chronological, as the estimators require.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from repro.rl.batch import StepBatch
from repro.rl.generation import GenerationBackend
from repro.rl.benchmarks import Benchmark
from repro.rl.prompts import Memory, format_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptOptions:
    history_length: int = 2
    style: str = "full"
    require_think: bool = True
    max_obs_chars: int | None = None
    # deviation (embedded only): sample only admissible actions; the papers generate freely
    constrain_to_admissible: bool = False


@dataclass
class Rollout:
    """Step rows of one rollout batch plus per-trajectory outcomes."""

    batch: StepBatch
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    won: np.ndarray                     # bool[n_traj]
    lengths: np.ndarray                 # int64[n_traj]
    task_types: list[str]               # per trajectory
    games: list[str]                    # per trajectory
    seconds: dict[str, float] = field(default_factory=dict)
    #: per step row, the sampler's log-probs of the response tokens (None: recompute them)
    old_logprobs: list[list[float]] | None = None
    #: per trajectory, the graded task score at its end (WebShop's reward in [0, 1]; else = won)
    scores: np.ndarray | None = None
    #: per step row, the state key (the anchor), kept so that rollouts can be concatenated
    anchor_obs: list[str] | None = None
    #: per step row, the key of the state it led to (None: the success sink)
    next_obs: list[str | None] | None = None
    #: per step row, the token ids of the responses its sampling was restricted to
    #: (``constrain_to_admissible``); None when sampling was free. The update's log-probs are
    #: then those of the same restricted distribution.
    allowed_ids: list[list[list[int]]] | None = None

    @classmethod
    def concat(cls, parts: list["Rollout"]) -> "Rollout":
        """One rollout from several (e.g. one per data-parallel rank), in order: group and
        trajectory ids are offset to stay distinct, anchors are re-coded over all rows."""
        if len(parts) == 1:
            return parts[0]
        cols: dict[str, list] = {k: [] for k in ("group", "traj", "step", "reward", "episode_reward", "valid")}
        agents = None if any(ro.batch.agent is None for ro in parts) else [ro.batch.agent for ro in parts]
        g_off = t_off = 0
        for ro in parts:
            b = ro.batch
            cols["group"].append(b.group + g_off)
            cols["traj"].append(b.traj + t_off)
            for k in ("step", "reward", "episode_reward", "valid"):
                cols[k].append(getattr(b, k))
            g_off += int(b.group.max()) + 1 if len(b) else 0
            t_off += int(b.traj.max()) + 1 if len(b) else 0
        flat = lambda attr: [x for ro in parts for x in getattr(ro, attr)]  # noqa: E731
        nexts = None if any(ro.next_obs is None for ro in parts) else flat("next_obs")
        batch = StepBatch.from_anchor_strings(anchor_obs=flat("anchor_obs"), next_obs=nexts,
                                              keep_text=parts[0].batch.anchor_text is not None,
                                              agent=None if agents is None else np.concatenate(agents),
                                              **{k: np.concatenate(v) for k, v in cols.items()})
        logps = None if any(ro.old_logprobs is None for ro in parts) else flat("old_logprobs")
        allowed = None if any(ro.allowed_ids is None for ro in parts) else flat("allowed_ids")
        return cls(batch=batch, prompt_ids=flat("prompt_ids"), response_ids=flat("response_ids"),
                   won=np.concatenate([ro.won for ro in parts]),
                   lengths=np.concatenate([ro.lengths for ro in parts]), task_types=flat("task_types"),
                   games=flat("games"), seconds={k: max(ro.seconds.get(k, 0.0) for ro in parts)
                                                 for k in parts[0].seconds},
                   old_logprobs=logps, scores=np.concatenate([ro.scores for ro in parts]),
                   anchor_obs=flat("anchor_obs"), next_obs=nexts, allowed_ids=allowed)

    def take(self, rows) -> "Rollout":
        """The step rows ``rows`` (int array, in order) as a rollout for an update: every per-row
        field is subset; the per-trajectory ones (outcomes, lengths) are kept whole."""
        rows = np.asarray(rows, dtype=np.int64)
        b = self.batch
        pick = lambda xs: None if xs is None else [xs[i] for i in rows]  # noqa: E731
        batch = StepBatch(**{f.name: (getattr(b, f.name) if f.name == "anchor_text" or getattr(b, f.name) is None
                                      else getattr(b, f.name)[rows]) for f in dataclasses.fields(b)})
        return dataclasses.replace(self, batch=batch, prompt_ids=pick(self.prompt_ids),
                                   response_ids=pick(self.response_ids), old_logprobs=pick(self.old_logprobs),
                                   anchor_obs=pick(self.anchor_obs), next_obs=pick(self.next_obs),
                                   allowed_ids=pick(self.allowed_ids))

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}/success_rate": float(self.won.mean()) if len(self.won) else 0.0,
            f"{prefix}/episode_reward": float(np.mean(self.batch.episode_reward[self._first_rows()]))
            if len(self.won) else 0.0,
            f"{prefix}/valid_action_ratio": float(self.batch.valid.mean()) if len(self.batch.valid) else 0.0,
            f"{prefix}/episode_length": float(self.lengths.mean()) if len(self.lengths) else 0.0,
        }

    def _first_rows(self) -> np.ndarray:
        return np.flatnonzero(self.batch.step == 0)

    def success_by_task_type(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tt in sorted(set(self.task_types)):
            sel = np.array([t == tt for t in self.task_types])
            out[tt] = float(self.won[sel].mean())
        return out


class ObservationKeys:
    """State keys ``observation`` (``registry.STATE_KEYS``): the raw observation, as GiGPO's and
    HGPO's anchors (agentic-rl.md §3.3.3)."""

    def __init__(self, n: int) -> None:
        pass

    def key(self, i: int, observation: str, admissible: list[str]) -> str:
        return observation

    def update(self, i: int, action: str, observation: str) -> None:
        pass


class AgentChooser(Protocol):
    """Who writes each step's response (e.g. PA-MoE's phase router over its experts)."""

    def begin(self, tasks: list[str]) -> None:
        """New episodes, one per entry (their task texts)."""

    def choose(self, idx: np.ndarray, obs: list[str], memories: list[Memory]) -> list[int]:
        """The agent of each active episode ``idx`` at this step, from its current observation
        (``obs``, indexed by episode) and its (observation, action) history."""


def run_episodes(env, backend: GenerationBackend, games: list, group_ids: list[int], *,
                 max_steps: int, temperature: float, seed: int, prompt: PromptOptions,
                 bench: Benchmark, state_keys=ObservationKeys, agents: AgentChooser | None = None) -> Rollout:
    """Play one episode per entry of ``games`` (a group repeats its game) and collect step rows."""
    n = len(games)
    keys = state_keys(n)
    t0 = time.perf_counter()
    obs, admissible, infos = env.reset(games)
    t_env = time.perf_counter() - t0
    t_gen = 0.0
    tasks = [bench.task_text(o) for o in obs]
    if agents is not None:
        agents.begin(tasks)
    scores = np.zeros(n)
    memories = [Memory() for _ in range(n)]
    active = np.ones(n, dtype=bool)
    won = np.zeros(n, dtype=bool)
    # (state key, reward, valid, prompt, response, logp, allowed, key of the next state, agent)
    rows: list[list[tuple]] = [[] for _ in range(n)]
    task_types = [info["task_type"] for info in infos]
    for t in range(max_steps):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        prompts = [bench.prompt(obs[i], admissible[i], tasks[i], memories[i], prompt) for i in idx]
        g0 = time.perf_counter()
        allowed = ([[format_response(a, prompt.require_think)
                     for a in bench.actions(admissible[i], tasks[i], True) if a != "help"]
                    for i in idx] if prompt.constrain_to_admissible else None)
        who = [0] * len(idx) if agents is None else list(agents.choose(idx, obs, memories))
        gens = backend.generate(prompts, temperature=temperature, seed=seed * 1_000_003 + t, allowed=allowed,
                                **({} if agents is None else {"agents": who}))
        t_gen += time.perf_counter() - g0
        actions = [""] * n
        parsed = [bench.parse(g.text, prompt.require_think) for g in gens]
        for (action, _), i in zip(parsed, idx):
            actions[i] = action
        e0 = time.perf_counter()
        next_obs, rewards, dones, next_infos = env.step(actions)
        t_env += time.perf_counter() - e0
        for j, i in enumerate(idx):
            action, valid = parsed[j]
            key = keys.key(i, obs[i], admissible[i])
            keys.update(i, action, next_obs[i])
            memories[i].add(obs[i], action)
            if dones[i]:
                active[i] = False
                won[i] = bool(next_infos[i]["won"])
                scores[i] = float(next_infos[i][bench.score_key]) if bench.score_key else float(won[i])
            after = None if won[i] else keys.key(i, next_obs[i], next_infos[i]["admissible"])
            rows[i].append((key, float(rewards[i]), valid, gens[j].prompt_ids, gens[j].response_ids,
                            gens[j].logprobs, gens[j].allowed_ids, after, who[j]))
            obs[i] = next_obs[i]
            admissible[i] = next_infos[i]["admissible"]
    # --- gather: trajectory-major, chronological ---
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    flat = [row for r in rows for row in r]
    traj = np.repeat(np.arange(n), lengths)
    ep_reward = np.array([sum(x[1] for x in r) for r in rows])
    batch = StepBatch.from_anchor_strings(
        group=np.repeat(np.asarray(group_ids, dtype=np.int64), lengths),
        traj=traj,
        step=np.concatenate([np.arange(k) for k in lengths]) if n else np.zeros(0, np.int64),
        anchor_obs=[x[0] for x in flat],
        next_obs=[x[7] for x in flat],
        keep_text=True,
        reward=np.array([x[1] for x in flat], dtype=np.float64),
        episode_reward=ep_reward[traj],
        valid=np.array([x[2] for x in flat], dtype=bool),
        agent=np.array([x[8] for x in flat], dtype=np.int64),
    )
    return Rollout(batch=batch, prompt_ids=[x[3] for x in flat], response_ids=[x[4] for x in flat],
                   won=won, lengths=lengths, task_types=task_types, games=list(games), scores=scores,
                   seconds={"env": t_env, "generate": t_gen}, anchor_obs=[x[0] for x in flat],
                   next_obs=[x[7] for x in flat],
                   old_logprobs=None if any(x[5] is None for x in flat) else [x[5] for x in flat],
                   allowed_ids=[x[6] for x in flat] if prompt.constrain_to_admissible else None)


def run_single_turn(env, backend: GenerationBackend, games: list, group_ids: list[int], *,
                    max_steps: int, temperature: float, seed: int, prompt: PromptOptions,
                    bench: Benchmark, state_keys=ObservationKeys, agents: AgentChooser | None = None) -> Rollout:
    """``single_turn``: one prompt -> one response -> one reward per entry of ``games`` (math with a
    verifier, KPO): every trajectory is one row, so a GRPO group is the responses to one prompt.
    ``max_steps`` and ``state_keys`` do not apply; ``agents`` picks each response's writer once."""
    n = len(games)
    t0 = time.perf_counter()
    obs, admissible, infos = env.reset(games)
    t_env = time.perf_counter() - t0
    prompts = [bench.prompt(o, a, bench.task_text(o), Memory(), prompt) for o, a in zip(obs, admissible)]
    who = [0] * n
    if agents is not None:
        agents.begin([bench.task_text(o) for o in obs])
        who = list(agents.choose(np.arange(n), obs, [Memory() for _ in range(n)]))
    g0 = time.perf_counter()
    gens = backend.generate(prompts, temperature=temperature, seed=seed * 1_000_003,
                            **({} if agents is None else {"agents": who}))
    t_gen = time.perf_counter() - g0
    parsed = [bench.parse(g.text, prompt.require_think) for g in gens]
    e0 = time.perf_counter()
    _, rewards, _, done_infos = env.step([a for a, _ in parsed])
    t_env += time.perf_counter() - e0
    won = np.array([bool(i["won"]) for i in done_infos], dtype=bool)
    reward = np.asarray(rewards, dtype=np.float64)
    batch = StepBatch.from_anchor_strings(
        group=np.asarray(group_ids, dtype=np.int64), traj=np.arange(n), step=np.zeros(n, np.int64),
        anchor_obs=list(obs), next_obs=None, keep_text=True, reward=reward, episode_reward=reward,
        valid=np.array([v for _, v in parsed], dtype=bool), agent=np.asarray(who, dtype=np.int64))
    return Rollout(batch=batch, prompt_ids=[g.prompt_ids for g in gens], response_ids=[g.response_ids for g in gens],
                   won=won, lengths=np.ones(n, dtype=np.int64), task_types=[i["task_type"] for i in infos],
                   games=list(games), scores=won.astype(float), seconds={"env": t_env, "generate": t_gen},
                   anchor_obs=list(obs), next_obs=None,
                   old_logprobs=None if any(g.logprobs is None for g in gens) else [g.logprobs for g in gens])
