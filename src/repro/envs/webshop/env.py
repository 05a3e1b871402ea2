"""WebShop text environment: one shopping session (``WebshopSession``) and the batched,
in-process ``WebshopBatchEnv`` with verl-agent's reward wrapper (environments.md §3.6)."""

from __future__ import annotations

import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from repro.envs.webshop import pages
from repro.envs.webshop.catalog import Goal, GoalSet, Product, build_goal_set, load_products, resolve_files
from repro.envs.webshop.reward import NounExtractor, default_nouns, get_reward
from repro.envs.webshop.search import BM25Index

log = logging.getLogger(__name__)

SEARCH_RETURN_N = 50      # engine.SEARCH_RETURN_N
PRODUCT_WINDOW = 10       # results per page
WIN_REWARD = 10.0         # verl-agent: 10 if done and score == 1.0
SEARCH_MARKER = "search[<your query>]"  # verl-agent's admissible entry for the search bar
OBSERVATION_MODES = ("text", "text_rich")
_ACTION = re.compile(r"(.+)\[(.+)\]")  # engine.parse_action (re.match: a prefix match)


def parse_action(action: str) -> tuple[str, str | None]:
    """``'click[Buy Now]'`` -> ``('click', 'Buy Now')``; no brackets -> ``(action, None)``."""
    m = _ACTION.match(action)
    return (action, None) if m is None else (m.group(1), m.group(2))


def task_text(observation: str) -> str:
    """The instruction of a first observation (verl-agent: element 2 of the ``[SEP]`` split)."""
    parts = observation.split(pages.SEP)
    return parts[2] if len(parts) > 2 else ""


def admissible_actions(available: dict) -> list[str]:
    """verl-agent's action list: ``search[<your query>]`` with a search bar, then
    ``click[<clickable>]`` for every clickable (``'search'`` included, as upstream lists it)."""
    out = [SEARCH_MARKER] if available["has_search_bar"] else []
    return out + [f"click[{c}]" for c in available["clickables"]]


class Catalog:
    """Products of one dataset folder and their search index (shared by all sessions)."""

    def __init__(self, data_root: str | os.PathLike, use_small: bool | None = None,
                 num_products: int | None = None, stemmer=None) -> None:
        self.files = resolve_files(data_root, use_small)
        t0 = time.perf_counter()
        self.products: list[Product] = load_products(self.files["products"], self.files["attributes"],
                                                     self.files["human"], num_products)
        self.by_asin = {p.asin: p for p in self.products}
        self.index = BM25Index.from_products(self.products, stemmer=stemmer)
        self._goal_sets: dict[tuple[int, bool], GoalSet] = {}
        log.info("webshop: %d products indexed in %.2f s", len(self.products), time.perf_counter() - t0)

    def goal_set(self, seed: int, human: bool = False) -> GoalSet:
        """Prices and shuffled goals for ``seed`` (built once, then cached)."""
        key = (int(seed), bool(human))
        if key not in self._goal_sets:
            self._goal_sets[key] = build_goal_set(self.products, int(seed), human)
        return self._goal_sets[key]

    def search(self, keywords: list[str], rng: random.Random) -> list[Product]:
        """``get_top_n_product_from_keywords``: ``<r>`` random 50, ``<a>``/``<c>``/``<q>``
        attribute/category/query filters (unbounded), else the BM25 top 50."""
        head = keywords[0] if keywords else ""
        if head == "<r>":
            return rng.sample(self.products, k=min(SEARCH_RETURN_N, len(self.products)))
        if head == "<a>":  # upstream passes no attribute index here and fails; this is its intent
            attribute = " ".join(keywords[1:]).strip()
            return [p for p in self.products if attribute in p.attributes]
        if head == "<c>":
            category = keywords[1].strip() if len(keywords) > 1 else ""
            return [p for p in self.products if p.category == category]
        if head == "<q>":
            query = " ".join(keywords[1:]).strip()
            return [p for p in self.products if p.query == query]
        return [self.products[i] for i in self.index.search(" ".join(keywords), SEARCH_RETURN_N)]


class WebshopSession:
    """One shopper (``SimServer`` + ``SimBrowser`` + ``WebAgentTextEnv.step`` for one session).

    ``step`` returns ``(observation, score, done)``; an action that names no valid search or
    clickable leaves the page unchanged (score 0, not done), as upstream.
    """

    def __init__(self, catalog: Catalog, nouns: NounExtractor | None = None,
                 observation_mode: str = "text", show_attrs: bool = False) -> None:
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode {observation_mode!r}; known: {OBSERVATION_MODES}")
        self.catalog, self.nouns = catalog, nouns
        self.mode, self.show_attrs = observation_mode, show_attrs
        self.rng = random.Random(0)

    # -- state -------------------------------------------------------------------------

    def reset(self, goal: Goal, goal_set: GoalSet, session_id: str = "0") -> str:
        self.goal, self.prices, self.session_id = goal, goal_set.prices, str(session_id)
        self.rng = random.Random(f"{goal_set.seed}/{session_id}")  # only "<r>" searches use it
        self._to_search_page()
        self.done, self.score, self.reward_info = False, 0.0, None
        return self.observation()

    def _to_search_page(self) -> None:
        self.keywords: list[str] = []
        self.page_no = 1
        self.asin: str | None = None
        self.clicked_asins: set[str] = set()
        self.options: dict[str, str] = {}
        self.page = pages.search_page(self.goal.instruction_text, self.session_id)

    def observation(self) -> str:
        return self.page.text() if self.mode == "text" else self.page.text_rich(self.clicked_asins)

    def available_actions(self) -> dict:
        return self.page.available_actions()

    # -- transitions -------------------------------------------------------------------

    def step(self, action: str) -> tuple[str, float, bool]:
        """Apply ``search[...]`` or ``click[...]`` (argument matched lowercased)."""
        if self.done:
            return self.observation(), 0.0, True
        name, arg = parse_action(action)
        arg = arg.lower() if arg is not None else None
        if name == "search" and arg:
            self._search(arg.split(" "), 1)
        elif name == "click" and arg in self.page.clickables and arg != "search":
            self._click(arg)
        return self.observation(), self.score, self.done

    def _search(self, keywords: list[str], page_no: int) -> None:
        self.keywords, self.page_no = keywords, page_no
        self.asin, self.options = None, {}
        hits = self.catalog.search(keywords, self.rng)
        shown = hits[(page_no - 1) * PRODUCT_WINDOW:page_no * PRODUCT_WINDOW]
        self.page = pages.results_page(self.goal.instruction_text, self.session_id, keywords,
                                       page_no, shown, len(hits))

    def _item(self) -> None:
        self.page = pages.item_page(self.goal.instruction_text, self.session_id, self.keywords,
                                    self.page_no, self.catalog.by_asin[self.asin], self.options,
                                    self.show_attrs)

    def _click(self, key: str) -> None:
        """``SimServer.receive``'s dispatch, in its order."""
        kind, payload = self.page.clickables[key]
        current = self.page.kind
        if key == "buy now":
            self._buy()
        elif key == "back to search":
            self._to_search_page()
        elif key == "next >" and current == "results":
            self._search(self.keywords, self.page_no + 1)
        elif key == "< prev" and current == "results":
            self._search(self.keywords, self.page_no - 1)
        elif key == "< prev" and current == "item_sub":
            self._item()
        elif key == "< prev" and current == "item":
            self._search(self.keywords, self.page_no)
        elif key in [s.lower() for s in pages.SUB_PAGES]:
            which = next(s for s in pages.SUB_PAGES if s.lower() == key)
            self.page = pages.sub_page(self.goal.instruction_text, self.session_id, self.keywords,
                                       self.page_no, self.catalog.by_asin[self.asin], self.options,
                                       which)
        else:
            if kind == "link":
                self.asin = payload
                self.clicked_asins.add(payload)
            elif kind == "radio":
                self.options[payload.lower()] = key
            self._item()

    def _buy(self) -> None:
        product = self.catalog.by_asin[self.asin]
        self.score, self.reward_info = get_reward(product, self.goal, self.prices[self.asin],
                                                  self.options, self.nouns or default_nouns())
        self.done = True
        self.page = pages.done_page(self.session_id, self.asin, self.options, self.score)


class WebshopBatchEnv:
    """Batched WebShop, stepped in-process: a step is pure Python (~0.02 ms a slot measured on
    the embedded and a 1000-product catalog; a purchase ~6-9 ms while spaCy tags new titles).

    ``reset(goal_ids)`` starts one episode per entry (repeat an id for a group); slot ``i`` uses
    the goal list of ``seeds[i]`` (default: the env's ``seed``). verl-agent builds one env per
    worker with seed ``seed + i // group_n``, so the same goal id names different goals in
    different groups: pass ``seeds=verl_agent_seeds(...)`` to reproduce that.

    Args:
        data_root: folder with the raw files (``resolve_files``).
        human_goals: human instructions instead of synthetic goals (verl-agent default False).
        use_small: 1000-product files (verl-agent default True), full files, or auto (None).
        num_products: keep the first N raw products.
        seed: goal-shuffle / price seed (verl-agent 42, upstream WebShop 233).
        eval_goals: size of the evaluation split, the first goal ids (verl-agent 500); a float
            in (0, 1) is a fraction of the goals (embedded catalogs). Training uses the rest.
        observation_mode: ``text`` (default, verl-agent ``run_webshop.sh``) or ``text_rich``
            (GraphGPO's scripts).
        max_steps: a slot is done after this many steps (GiGPO 15, HGPO 30; None: no limit).
        show_attrs: show the ``Attributes`` button (upstream default False).
        nouns: noun extractor for the type reward (default spaCy ``en_core_web_sm``).
        stemmer: optional token stemmer for the search index (Lucene's is Porter).
        catalog: an already loaded ``Catalog`` to share (train and eval envs); then
            ``use_small``, ``num_products`` and ``stemmer`` are not used.
    """

    def __init__(self, data_root: str | os.PathLike, *, human_goals: bool = False,
                 use_small: bool | None = None, num_products: int | None = None, seed: int = 42,
                 eval_goals: int | float = 500, observation_mode: str = "text",
                 max_steps: int | None = 15, show_attrs: bool = False,
                 nouns: NounExtractor | None = None, stemmer=None,
                 catalog: Catalog | None = None) -> None:
        self.data_root = Path(data_root)
        self.catalog = catalog or Catalog(data_root, use_small, num_products, stemmer)
        self.human_goals, self.seed = bool(human_goals), int(seed)
        self.eval_goals, self.observation_mode = eval_goals, observation_mode
        self.max_steps, self.show_attrs, self.nouns = max_steps, show_attrs, nouns
        self._rng = np.random.RandomState(self.seed)
        self._sessions: list[WebshopSession] = []
        self._ids: list[int] = []
        self._seeds: list[int] = []
        self._steps: list[int] = []
        self._won: list[bool] = []
        self._done: list[bool] = []
        self._score: list[float] = []
        self._obs: list[str] = []
        self.timings = {"reset_s": 0.0, "step_s": 0.0, "steps": 0}

    # -- goals ---------------------------------------------------------------------------

    def goals(self, seed: int | None = None) -> list[Goal]:
        """The shuffled goal list of ``seed`` (default: the env's)."""
        return self.catalog.goal_set(self.seed if seed is None else seed, self.human_goals).goals

    def n_eval(self, seed: int | None = None) -> int:
        n = len(self.goals(seed))
        k = self.eval_goals
        k = int(round(k * n)) if isinstance(k, float) and 0 < k < 1 else int(k)
        return min(k, n)

    def list_games(self, split: str = "train", seed: int | None = None) -> list[int]:
        """Goal ids of ``split``: ``eval`` (alias ``test``) = the first ``eval_goals`` ids,
        ``train`` = the rest (verl-agent's split)."""
        k, n = self.n_eval(seed), len(self.goals(seed))
        if split in ("eval", "test"):
            return list(range(k))
        if split == "train":
            return list(range(k, n))
        raise KeyError(f"unknown WebShop split {split!r}; known: train, eval (test)")

    def sample_games(self, n_groups: int, group_size: int = 1, split: str = "train") -> list[int]:
        """verl-agent's ``reset``: ``n_groups`` ids drawn without replacement by a
        ``RandomState(seed)`` that advances between calls, each repeated ``group_size`` times."""
        idx = self._rng.choice(self.list_games(split), size=n_groups, replace=False)
        return np.repeat(idx, group_size).tolist()

    @staticmethod
    def verl_agent_seeds(seed: int, n_slots: int, group_n: int = 1) -> list[int]:
        """Per-slot goal-list seeds of verl-agent's workers: ``seed + i // group_n``."""
        return [seed + i // group_n for i in range(n_slots)]

    # -- protocol ------------------------------------------------------------------------

    def reset(self, goal_ids: Sequence[int], seeds: Sequence[int] | None = None
              ) -> tuple[list[str], list[list[str]], list[dict]]:
        """Start one episode per goal id; returns observations, admissible actions, infos."""
        t0 = time.perf_counter()
        ids = [int(g) for g in goal_ids]
        seeds = [self.seed] * len(ids) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != len(ids):
            raise ValueError(f"{len(ids)} goal ids but {len(seeds)} seeds")
        while len(self._sessions) < len(ids):
            self._sessions.append(WebshopSession(self.catalog, self.nouns, self.observation_mode,
                                                 self.show_attrs))
        self._ids, self._seeds = ids, seeds
        n = len(ids)
        self._obs = []
        for i, (g, s) in enumerate(zip(ids, seeds)):
            gs = self.catalog.goal_set(s, self.human_goals)
            if not 0 <= g < len(gs.goals):
                raise IndexError(f"goal id {g} out of range: {len(gs.goals)} goals (seed {s})")
            self._obs.append(self._sessions[i].reset(gs.goals[g], gs, session_id=str(g)))
        self._steps, self._won, self._done = [0] * n, [False] * n, [False] * n
        self._score = [0.0] * n
        self.timings["reset_s"] += time.perf_counter() - t0
        infos = [self._info(i) for i in range(n)]
        return list(self._obs), [inf["admissible"] for inf in infos], infos

    def step(self, actions: Sequence[str]) -> tuple[list[str], list[float], list[bool], list[dict]]:
        """One action per slot; finished slots return their last observation, 0, True."""
        n = len(self._ids)
        if len(actions) != n:
            raise ValueError(f"expected {n} actions, got {len(actions)}")
        t0 = time.perf_counter()
        rewards = [0.0] * n
        acted = {}
        for i, a in enumerate(actions):
            if self._done[i]:
                continue
            s = self._sessions[i]
            before = s.page
            obs, score, done = s.step(str(a))
            acted[i] = s.page is not before
            self._steps[i] += 1
            self._obs[i], self._score[i] = obs, float(score)
            won = bool(done and score == 1.0)
            self._won[i] = won
            rewards[i] = WIN_REWARD if won else 0.0
            limit = self.max_steps is not None and self._steps[i] >= self.max_steps
            self._done[i] = bool(done or limit)
        self.timings["step_s"] += time.perf_counter() - t0
        self.timings["steps"] += len(acted)
        infos = [self._info(i) for i in range(n)]
        for i in range(n):
            infos[i]["action_executed"] = acted.get(i, False)
        return list(self._obs), rewards, list(self._done), infos

    def _info(self, i: int) -> dict:
        s = self._sessions[i]
        available = s.available_actions()
        return {"won": self._won[i], "task_score": self._score[i], "available_actions": available,
                "admissible": admissible_actions(available), "task_type": s.goal.category,
                "goal_id": self._ids[i], "goal_seed": self._seeds[i], "asin": s.goal.asin,
                "task": s.goal.instruction_text, "step": self._steps[i],
                "reward_info": s.reward_info}

    def session(self, i: int) -> WebshopSession:
        return self._sessions[i]

    def close(self) -> None:
        self._sessions = []

    def __enter__(self) -> "WebshopBatchEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
