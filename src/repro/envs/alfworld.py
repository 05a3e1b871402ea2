"""ALFWorld as a batched environment, stepped in persistent worker processes.

Every environment slot runs TextWorld's PDDL engine behind the wrapper chain that the unmodified
``AlfredTWEnv.init_env`` builds (``textworld.gym`` ``_make_env``)::

    GenericEnvironment(EnvInfos(won, admissible_commands, extras=["gamefile"]))
      -> Limit(max_steps) -> AlfredDemangler(shuffle=False) -> AlfredInfos -> Filter

with ``PddlEnv`` in place of ``GenericEnvironment`` (the engine it picks for ``.tw-pddl`` games,
without its path guess: ``pddl_engine``)

(plus ``AlfredExpert`` for expert demonstrations, as on AlfredTWEnv's DAgger train split).
Worker processes persist across resets and keep loaded games in an LRU cache, so replaying a
game (a GRPO group, or the fixed evaluation games) does not pay the ~0.15-0.2 s load again;
with the engine's parsing memoized (``memoize_engine``) a replayed reset costs ~0.01 s and a step
~4-10 ms.

Protocol (CONTRACT.md): ``reset(games) -> (observations, admissible, infos)``,
``step(actions) -> (observations, rewards, dones, infos)``; reward = 10 on the winning step;
``help`` is removed from admissible lists; finished slots ignore further actions.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing as mp
import os
import random
import re
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from repro.envs import cycle_order

log = logging.getLogger(__name__)

#: ALFWorld task-type ids (``alfred_tw_env.TASK_TYPES``).
TASK_TYPES = {
    1: "pick_and_place_simple",
    2: "look_at_obj_in_light",
    3: "pick_clean_then_place_in_recep",
    4: "pick_heat_then_place_in_recep",
    5: "pick_cool_then_place_in_recep",
    6: "pick_two_obj_and_place",
}

SPLIT_DIRS = {"train": "train", "valid_seen": "valid_seen", "valid_unseen": "valid_unseen",
              # AlfredTWEnv's train_eval names
              "eval_in_distribution": "valid_seen", "eval_out_of_distribution": "valid_unseen"}
WIN_REWARD = 10.0
TASK_PREFIX = "Your task is to: "


# ------------------------------------------------------------------------------------------
# Game discovery (AlfredTWEnv.collect_game_files rules)
# ------------------------------------------------------------------------------------------


_CLASS_RE = re.compile(r"\((?:objectType|receptacleType) \S+ (\w+?)Type\)")


def class_vocabulary(dataset_dir: str | os.PathLike) -> str:
    """Object and receptacle class names of every split, as display words ("mug 1 … mug 9"):
    words a pretrained tokenizer would know, for the embedded tokenizer (``Benchmark.vocabulary``)."""
    names = set()
    for pddl in sorted(Path(dataset_dir).rglob("initial_state.pddl")):
        names.update(m.lower() for m in _CLASS_RE.findall(pddl.read_text()))
    return " ".join(f"{n} {i}" for n in sorted(names) for i in range(1, 10))


def split_dir(data_root: str | os.PathLike, split: str) -> Path:
    if split not in SPLIT_DIRS:
        raise KeyError(f"unknown ALFWorld split {split!r}; known: {', '.join(SPLIT_DIRS)}")
    return Path(data_root) / "json_2.1.1" / SPLIT_DIRS[split]


def list_games(data_root: str | os.PathLike, split: str,
               task_types: tuple[int, ...] | list[int] = tuple(TASK_TYPES)) -> list[str]:
    """Sorted ``game.tw-pddl`` paths of ``split``, found the way ``AlfredTWEnv`` finds them.

    A directory holding ``traj_data.json`` is a game if its path contains neither ``movable``
    nor ``Sliced``, its task type is in ``task_types`` and its sibling ``game.tw-pddl`` has a
    truthy ``solvable``.
    """
    wanted = {TASK_TYPES[t] for t in task_types}
    games = []
    for root, _dirs, files in os.walk(split_dir(data_root, split), topdown=False):
        if "traj_data.json" not in files or "movable" in root or "Sliced" in root:
            continue
        with open(os.path.join(root, "traj_data.json"), encoding="utf-8") as fh:
            if json.load(fh)["task_type"] not in wanted:
                continue
        game = os.path.join(root, "game.tw-pddl")
        if not os.path.exists(game):
            continue
        with open(game, encoding="utf-8") as fh:
            if not json.load(fh).get("solvable"):
                continue
        games.append(game)
    return sorted(games)


@functools.lru_cache(maxsize=None)
def task_type(gamefile: str) -> str:
    """Task type name of a game (read from the ``traj_data.json`` beside it)."""
    with open(Path(gamefile).parent / "traj_data.json", encoding="utf-8") as fh:
        return json.load(fh)["task_type"]


def task_text(observation: str) -> str:
    """The goal sentence of an initial observation (text after ``Your task is to: ``)."""
    return observation.split(TASK_PREFIX, 1)[-1].strip() if TASK_PREFIX in observation else ""


def _drop_help(commands: list[str]) -> list[str]:
    return [c for c in commands if c != "help"]


# ------------------------------------------------------------------------------------------
# Wrapper chain (same as AlfredTWEnv.init_env)
# ------------------------------------------------------------------------------------------


def pddl_engine(request_infos):
    r"""TextWorld's PDDL engine, in place of ``GenericEnvironment`` (``AlfredTWEnv``'s choice).

    ``GenericEnvironment`` guesses the engine from the game's path with ``re.search(r"\.z[1-8]",
    path)`` over the *whole* path, so any folder named like ``.embedded.z4k1.tmp`` (a temporary
    name, ~0.6% of them) or ``project.z5`` selects the Z-machine engine, which refuses the game.
    ALFWorld games are always ``.tw-pddl``; ``PddlEnv.load`` replaces the game as Generic's does.
    """
    from textworld.envs import PddlEnv  # noqa: PLC0415

    return PddlEnv(request_infos)


def make_chain(max_steps: int, expert: bool = False):
    """One TextWorld environment wrapped like ``AlfredTWEnv``; returns ``(env, expert_wrapper)``."""
    import textworld  # noqa: PLC0415  (imported in workers only)
    from alfworld.agents.environment.alfred_tw_env import (  # noqa: PLC0415
        AlfredDemangler, AlfredExpert, AlfredExpertType, AlfredInfos)
    from textworld.envs.wrappers import Filter, Limit  # noqa: PLC0415

    request_infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    wrappers: list[Any] = [AlfredDemangler(shuffle=False), AlfredInfos]
    expert_wrapper = None
    if expert:
        expert_wrapper = AlfredExpert(expert_type=AlfredExpertType.HANDCODED)
        wrappers.append(expert_wrapper)
        request_infos.extras.append("expert_plan")
    env = pddl_engine(request_infos)
    if max_steps:
        env = Limit(env, max_episode_steps=max_steps)
    for wrapper in wrappers + [Filter]:
        env = wrapper(env)
    return env, expert_wrapper


def _lru(fn, maxsize: int, key, copy_out=None):
    """``fn`` memoized in an LRU dict under ``key(*args, **kwargs)``; ``copy_out`` copies hits."""
    cache: OrderedDict = OrderedDict()

    def wrapped(*args, **kwargs):
        k = key(*args, **kwargs)
        if k in cache:
            cache.move_to_end(k)
        else:
            cache[k] = fn(*args, **kwargs)
            if len(cache) > maxsize:
                cache.popitem(last=False)
        return copy_out(cache[k]) if copy_out else cache[k]

    wrapped._repro_memo = True  # type: ignore[attr-defined]
    return wrapped


def _copy_context(context: dict) -> dict:
    """``textgen.copy_context`` without its deep copies: derivation only adds keys to a context's
    ``variables`` and ``mapping`` (``textgen.query``) and never mutates their values (entity infos,
    logic variables), so fresh dicts over the same values derive the same text."""
    return {"state": context["state"], "facts": context["facts"], "variables": dict(context["variables"]),
            "mapping": dict(context["mapping"]), "entity_infos": context["entity_infos"]}


def memoize_engine(maxsize: int = 1024) -> None:
    """Memoize the pure, repeated parsing work of TextWorld's PDDL engine in this process, and copy
    the text generator's contexts shallowly.

    - ``fast_downward.pddl2sas``: ``PddlEnv`` re-translates the PDDL problem to SAS twice on
      every ``reset`` (~70 ms); ``PddlState`` only reads the returned task.
    - The ``_parse_and_convert`` functions of textgen and logic (grammar strings, logic queries):
      every step re-parses the same few hundred strings with tatsu to describe the room and list
      the admissible commands (~65% of a step).
    - The one of the PDDL logic (``GameLogic``): every ``load`` re-parses the game's logic
      document, which is the same ALFWorld domain text for every game (~65 ms of a ~90 ms load
      of an already-seen game).

    - ``textgen.copy_context``: every derived symbol deep-copies its context's variable and
      mapping dicts (entity infos and logic variables included), ~55% of a memoized step's time;
      ``_copy_context`` copies the dicts only.

    Derivation mutates the parsed symbols, so a hit returns a deep copy, still ~10x cheaper than
    parsing. Observations, admissible lists and plans are unchanged (tested against the plain
    engine); a step gets ~3x cheaper from the memoized parsing and ~2x more from the shallow
    contexts, a replayed reset ~10x and a load ~2-5x.
    """
    import copy  # noqa: PLC0415

    import fast_downward  # noqa: PLC0415
    import textworld.envs.pddl.logic as pddl_logic  # noqa: PLC0415
    import textworld.envs.pddl.textgen as textgen  # noqa: PLC0415
    import textworld.logic as logic  # noqa: PLC0415

    if not getattr(fast_downward.pddl2sas, "_repro_memo", False):
        fast_downward.pddl2sas = _lru(
            fast_downward.pddl2sas, maxsize,
            key=lambda domain, problem, verbose=False, optimize=False: (domain, problem, bool(optimize)))
    textgen.copy_context = _copy_context  # looked up as a global by textgen's symbols and query
    for module in (textgen, logic, pddl_logic):
        if not getattr(module._parse_and_convert, "_repro_memo", False):
            module._parse_and_convert = _lru(
                module._parse_and_convert, 16 * maxsize,
                key=lambda *args, **kwargs: (args, tuple(sorted(kwargs.items()))), copy_out=copy.deepcopy)


class _ChainCache:
    """LRU pool of loaded wrapper chains, keyed by game file (one chain = one env slot)."""

    def __init__(self, max_steps: int, capacity: int, expert: bool = False) -> None:
        self.max_steps, self.capacity, self.expert = max_steps, capacity, expert
        self.idle: OrderedDict[int, tuple[str, Any, Any]] = OrderedDict()
        self.active: dict[int, tuple[str, Any, Any]] = {}
        self._next = 0
        self.loads = 0

    def release_all(self) -> None:
        for item in self.active.values():
            self.idle[self._next] = item
            self._next += 1
        self.active.clear()

    def acquire(self, gamefile: str) -> tuple[str, Any, Any]:
        for key, item in self.idle.items():
            if item[0] == gamefile:
                del self.idle[key]
                return item
        if self.idle and len(self.idle) + len(self.active) >= self.capacity:
            _, (_, env, exp) = self.idle.popitem(last=False)  # least recently used
        else:
            env, exp = make_chain(self.max_steps, self.expert)
        env.load(gamefile)
        self.loads += 1
        return gamefile, env, exp


def _worker(conn, max_steps: int, capacity: int, engine_cache: bool = True) -> None:
    """Worker loop: holds env slots, answers ``reset``/``step``/``stats``/``close`` messages."""
    if engine_cache:
        memoize_engine(maxsize=4 * capacity)
    cache = _ChainCache(max_steps, capacity)
    parent = os.getppid()
    while True:
        try:
            # a parent killed with SIGKILL never closes the pipe (forked siblings hold its end):
            # poll, and leave once the parent is gone instead of lingering as an orphan
            while not conn.poll(1.0):
                if os.getppid() != parent:
                    conn.close()
                    return
            cmd, payload = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        try:
            if cmd == "reset":
                cache.release_all()
                out = []
                for idx, gamefile in payload:
                    item = cache.acquire(gamefile)
                    cache.active[idx] = item
                    ob, infos = item[1].reset()
                    out.append((idx, ob, _drop_help(infos["admissible_commands"]),
                                bool(infos["won"])))
                conn.send(("ok", out))
            elif cmd == "step":
                out = []
                for idx, action in payload:
                    ob, _score, done, infos = cache.active[idx][1].step(action)
                    out.append((idx, ob, _drop_help(infos["admissible_commands"]),
                                bool(infos["won"]), bool(done)))
                conn.send(("ok", out))
            elif cmd == "stats":
                conn.send(("ok", {"loads": cache.loads,
                                  "chains": len(cache.idle) + len(cache.active)}))
            elif cmd == "close":
                conn.send(("ok", None))
                break
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except Exception:  # noqa: BLE001  (reported to the parent, which raises)
            conn.send(("error", traceback.format_exc()))
    conn.close()


def _default_start_method() -> str:
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


# ------------------------------------------------------------------------------------------
# Batched environment
# ------------------------------------------------------------------------------------------


class AlfworldBatchEnv:
    """Batched ALFWorld over game files, stepped in ``num_workers`` persistent processes.

    ``reset(games)`` starts one episode per entry of ``games`` (game file paths; repeat a path
    for a group of rollouts on the same task). Slot ``i`` lives in worker ``i % num_workers``.

    Args:
        data_root: dataset folder holding ``json_2.1.1/<split>``.
        split: ``train``, ``valid_seen`` or ``valid_unseen`` (games listed by ``list_games``).
        num_workers: worker processes stepping the slots in parallel.
        max_steps: episode limit (ALFWorld: 50); a slot is done when won or at the limit.
        seed: seeds ``sample_games``' shuffled game order.
        start_method: multiprocessing start method (default ``fork`` where available;
            ``spawn`` works too and costs ~1 s more at start-up).
        cache_size: loaded wrapper chains kept across resets, over all workers (~2 MB each).
        engine_cache: memoize the engine's PDDL->SAS translation and text parsing in the
            workers (``memoize_engine``).
    """

    def __init__(self, data_root: str | os.PathLike, split: str = "train", num_workers: int = 2,
                 max_steps: int = 50, seed: int = 0, start_method: str | None = None,
                 cache_size: int = 256, engine_cache: bool = True) -> None:
        self.data_root = Path(data_root)
        self.split = split
        self.max_steps = int(max_steps)
        self.num_workers = max(1, int(num_workers))
        self.games = list_games(self.data_root, split)
        self._rng = np.random.RandomState(seed)
        self._order: list[str] = []
        self._cursor = 0
        ctx = mp.get_context(start_method or _default_start_method())
        self._conns = []
        self._procs = []
        per_worker = max(8, cache_size // self.num_workers)
        for _ in range(self.num_workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker,
                               args=(child, self.max_steps, per_worker, engine_cache),
                               daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._batch: list[str] = []
        self._obs: list[str] = []
        self._adm: list[list[str]] = []
        self._won: list[bool] = []
        self._done: list[bool] = []
        self._steps: list[int] = []
        self._task: list[str] = []
        self.timings = {"reset_s": 0.0, "step_s": 0.0, "steps": 0}

    # -- game lists ----------------------------------------------------------------------

    def list_games(self, split: str | None = None) -> list[str]:
        return self.games if split in (None, self.split) else list_games(self.data_root, split)

    @staticmethod
    def task_type(gamefile: str) -> str:
        return task_type(gamefile)

    def sample_games(self, n_groups: int, group_size: int = 1) -> list[str]:
        """``n_groups`` games from a seeded shuffled cycle (as ``AlfredTWEnv.seed`` orders
        games), each repeated ``group_size`` times: the ``games`` argument for a GRPO batch."""
        out = []
        for _ in range(n_groups):
            if self._cursor >= len(self._order):
                self._order = list(self.games)
                self._rng.shuffle(self._order)
                self._cursor = 0
            out += [self._order[self._cursor]] * group_size
            self._cursor += 1
        return out

    # -- protocol ------------------------------------------------------------------------

    def _exchange(self, per_worker: list[list]) -> list:
        cmd_payloads = [(w, p) for w, p in enumerate(per_worker) if p]
        for w, (cmd, payload) in cmd_payloads:
            self._conns[w].send((cmd, payload))
        out = []
        for w, _ in cmd_payloads:
            try:
                status, data = self._conns[w].recv()
            except (EOFError, OSError) as exc:
                raise RuntimeError(f"ALFWorld worker {w} died ({exc!r}); "
                                   f"exit code {self._procs[w].exitcode}") from exc
            if status != "ok":
                raise RuntimeError(f"ALFWorld worker {w} failed:\n{data}")
            out += data
        return out

    def reset(self, games: list[str]) -> tuple[list[str], list[list[str]], list[dict]]:
        """Start one episode per game file; returns observations, admissible commands, infos."""
        t0 = time.perf_counter()
        games = [str(g) for g in games]
        for g in set(games):
            if not os.path.exists(g):
                raise FileNotFoundError(g)
        work: list[list] = [[] for _ in range(self.num_workers)]
        for i, g in enumerate(games):
            work[i % self.num_workers].append((i, g))
        msgs = [("reset", w) if w else None for w in work]
        res = self._exchange(msgs)
        n = len(games)
        self._batch = games
        self._obs, self._adm = [""] * n, [[] for _ in range(n)]
        self._won, self._done, self._steps = [False] * n, [False] * n, [0] * n
        for idx, ob, adm, won in res:
            self._obs[idx], self._adm[idx], self._won[idx] = ob, adm, won
        self._task = [task_text(ob) for ob in self._obs]
        self.timings["reset_s"] += time.perf_counter() - t0
        return list(self._obs), [list(a) for a in self._adm], [self._info(i) for i in range(n)]

    def step(self, actions: list[str]) -> tuple[list[str], list[float], list[bool], list[dict]]:
        """Apply one action per slot; finished slots return their final observation, 0, True."""
        if len(actions) != len(self._batch):
            raise ValueError(f"expected {len(self._batch)} actions, got {len(actions)}")
        t0 = time.perf_counter()
        work: list[list] = [[] for _ in range(self.num_workers)]
        acted = []
        for i, a in enumerate(actions):
            if not self._done[i]:
                work[i % self.num_workers].append((i, str(a)))
                acted.append(i)
        n = len(actions)
        rewards = [0.0] * n
        admissible_action = {i: str(actions[i]).strip() in self._adm[i] for i in acted}
        res = self._exchange([("step", w) if w else None for w in work])
        for idx, ob, adm, won, done in res:
            if won and not self._won[idx]:
                rewards[idx] = WIN_REWARD
            self._steps[idx] += 1
            self._obs[idx], self._adm[idx], self._won[idx] = ob, adm, won
            self._done[idx] = bool(done or won or self._steps[idx] >= self.max_steps)
        self.timings["step_s"] += time.perf_counter() - t0
        self.timings["steps"] += len(acted)
        infos = [self._info(i) for i in range(n)]
        for i in range(n):
            infos[i]["action_admissible"] = admissible_action.get(i, False)
        return list(self._obs), rewards, list(self._done), infos

    def _info(self, i: int) -> dict:
        return {"won": self._won[i], "task_type": task_type(self._batch[i]),
                "admissible": list(self._adm[i]), "gamefile": self._batch[i],
                "step": self._steps[i], "task": self._task[i]}

    def worker_stats(self) -> list[dict]:
        """Per worker: number of game loads so far and of cached chains."""
        for conn in self._conns:
            conn.send(("stats", None))
        out = []
        for w, conn in enumerate(self._conns):
            status, data = conn.recv()
            if status != "ok":
                raise RuntimeError(f"ALFWorld worker {w} failed:\n{data}")
            out.append(data)
        return out

    def close(self) -> None:
        for conn in getattr(self, "_conns", []):
            try:
                conn.send(("close", None))
                conn.recv()
            except (OSError, EOFError, BrokenPipeError):
                pass
            conn.close()
        for proc in getattr(self, "_procs", []):
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        self._conns, self._procs = [], []

    def __enter__(self) -> "AlfworldBatchEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------------------------------------
# Expert demonstrations (warm start)
# ------------------------------------------------------------------------------------------

_EXPERT_CACHE: _ChainCache | None = None


def _expert_episode(job: tuple) -> tuple[list[dict], bool, str | None]:
    """Play one episode with ALFWorld's hand-coded expert (AlfredExpert wrapper) plus noise."""
    global _EXPERT_CACHE
    k, gamefile, noise, seed, max_steps = job
    if _EXPERT_CACHE is None or _EXPERT_CACHE.max_steps != max_steps:
        _EXPERT_CACHE = _ChainCache(max_steps, capacity=16, expert=True)
        if mp.parent_process() is not None:  # only inside pool workers we own
            memoize_engine()
    cache = _EXPERT_CACHE
    cache.release_all()
    item = cache.acquire(gamefile)
    cache.active[0] = item
    _, env, expert_wrapper = item
    random.seed(f"{seed}/expert/{k}")  # the expert's own tie-breaking uses the global RNG
    rng = random.Random(f"{seed}/noise/{k}")
    ob, infos = env.reset()
    task = task_text(ob)
    steps: list[dict] = []
    won, error = False, None
    for t in range(max_steps):
        adm = _drop_help(infos["admissible_commands"])
        plan = infos.get("extra.expert_plan") or []
        expert_action = plan[0] if plan else None
        if expert_action not in adm and expert_action != "look":
            # The stuck expert picks a random admissible command, possibly "help", which is
            # outside the policy's action space: treat such a step as a noise step.
            expert_action = None
        if rng.random() < noise or expert_action is None:
            action = rng.choice(adm)
        else:
            action = expert_action
        steps.append({"obs": ob, "admissible": adm, "action": action,
                      "expert": action == expert_action, "expert_action": expert_action,
                      "task": task, "gamefile": gamefile, "step": t})
        try:
            ob, _score, done, infos = env.step(action)
        except Exception as exc:  # noqa: BLE001  (HandCodedAgentFailed/Timeout end the episode)
            error = f"{type(exc).__name__}: {exc}"
            state = getattr(expert_wrapper, "state", None) or {}
            won = bool(state.get("won", False))
            break
        won = bool(infos["won"])
        if done or won:
            break
    return steps, won, error


def expert_episodes(data_root: str | os.PathLike, split: str, n_episodes: int,
                    noise: float = 0.3, seed: int = 0, max_steps: int = 50,
                    num_workers: int = 2, start_method: str | None = None,
                    games: list[str] | None = None) -> tuple[list[list[dict]], list[bool]]:
    """Demonstrations from ALFWorld's hand-coded expert with uniform random-action noise.

    Episode ``k`` plays game ``order[k % n_games]`` of a seeded shuffled cycle. At each step
    the expert's choice (``infos["extra.expert_plan"][0]`` of the ``AlfredExpert`` wrapper,
    which tracks what it has observed) is taken, except with probability ``noise`` a uniformly
    random admissible command; the expert then continues from the resulting state.

    Returns ``(episodes, won)``: each episode is a list of step dicts with ``obs`` (the
    observation shown before acting), ``admissible`` (without ``help``), ``action``, ``expert``
    (True when the action is the expert's choice; a stuck expert's ``help`` counts as noise),
    ``expert_action`` (None where there is none), ``task``, ``gamefile``,
    ``step``; ``won[k]`` tells whether episode ``k`` reached the goal. An episode the expert
    aborts (its ``HandCodedAgentFailed``/timeout) ends there with ``won`` from the last state.
    """
    pool_games = list(games) if games is not None else list_games(data_root, split)
    if not pool_games:
        raise ValueError(f"no ALFWorld games in {split_dir(data_root, split)}")
    order = cycle_order(pool_games, n_episodes, seed)
    jobs = [(k, order[k], float(noise), seed, int(max_steps)) for k in range(n_episodes)]
    if num_workers <= 1 or n_episodes < 2:
        results = [_expert_episode(j) for j in jobs]
    else:
        ctx = mp.get_context(start_method or _default_start_method())
        with ctx.Pool(min(num_workers, n_episodes)) as pool:
            chunk = max(1, n_episodes // (8 * num_workers))
            results = pool.map(_expert_episode, jobs, chunksize=chunk)
    errors = sum(r[2] is not None for r in results)
    if errors:
        log.info("expert aborted %d of %d episodes", errors, n_episodes)
    return [r[0] for r in results], [r[1] for r in results]
