"""A scripted WebShop expert and noisy expert demonstrations (supervised warm start).

WebShop ships no expert (upstream's imitation data are human trajectories); this one reads the
session's state, including the hidden goal (it is an expert), and only ever picks an action of
the admissible list, so its demonstrations stay inside the action space of an agent whose
generation is constrained to admissible actions. ``expert_episodes`` is the counterpart of
``repro.envs.alfworld.expert_episodes`` and returns episodes in the same format.

The expert's policy, by page (``expert_action``):

- search page: the concrete search action: ``search[<instruction text>]`` (``search=
  "instruction"``, the one search action the embedded scale offers) or ``search[<goal query>]``
  (``search="query"``, as the env tests' oracle);
- results page of another query (unreachable through admissible actions, kept for safety):
  ``click[back to search]``;
- results page: the *target* product's link when it is on the page, else ``click[next >]`` or
  ``click[< prev]`` towards the page that holds it (the expert knows the deterministic BM25 hit
  list of its search, so after a noisy ``next >`` it goes back instead of paging on);
- item page of another product (a noisy click): ``click[< prev]`` back to the results;
- item page of the target: ``click[<value>]`` for the first option whose wanted value is not
  selected (this also repairs a noisy option click), then ``click[buy now]``;
- Description / Features / Reviews page: ``click[< prev]`` (back to the item page, options kept).

The target is the goal's asin when it is among the (at most 50) hits of the expert's search.
Otherwise ("not found") the expert cannot win and buys its best guess, chosen from what the
agent sees, without the hidden goal: among the first results page (the best BM25 matches of the
search), the products whose listed (lowest) price is below the instruction's bound (all of them if
none is), the one whose title shares the most tokens (``search.analyze``) with the instruction,
ties to the higher-ranked; on its item page it clicks, per option type, the longest value that
occurs in the instruction as whole words (none if no value does), then buys. With no hits at all
the expert has no action (``None``, and a random action is taken, as for ALFWorld's stuck expert).

On the default embedded catalog (``repro.data.webshop`` defaults, env seed 42, ``eval_goals=0.2``,
366 train goals) the instruction search puts the goal in the top 10 for 365 and in the top 50
for all 366 goals.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time

from repro.envs import cycle_order
from repro.envs.webshop.env import (
    PRODUCT_WINDOW,
    SEARCH_MARKER,
    Catalog,
    WebshopBatchEnv,
    WebshopSession,
    parse_action,
)
from repro.envs.webshop.search import analyze

log = logging.getLogger(__name__)

SEARCH_MODES = ("instruction", "query")
_PRICE_BOUND = re.compile(r"price lower than ([0-9]+(?:\.[0-9]+)?) dollars")


def search_action(session: WebshopSession, search: str = "instruction") -> str:
    """The expert's concrete search action for the session's goal (see the module docstring)."""
    if search == "instruction":
        return f"search[{session.goal.instruction_text}]"
    if search == "query":
        return f"search[{session.goal.query}]"
    raise ValueError(f"search={search!r}; known: {SEARCH_MODES}")


def _hits(session: WebshopSession) -> list[str]:
    """Asins of the current search's full hit list (the index caches repeated queries)."""
    return [p.asin for p in session.catalog.search(session.keywords, random.Random(0))]


def _instruction_bound(text: str) -> float | None:
    m = _PRICE_BOUND.search(text)
    return float(m.group(1)) if m else None


def best_guess(session: WebshopSession, hits: list[str]) -> str | None:
    """The not-found choice: only what the agent sees (first results page, titles, prices, the
    instruction); the module docstring states the rule."""
    shown = [session.catalog.by_asin[a] for a in hits[:PRODUCT_WINDOW]]
    if not shown:
        return None
    text = session.goal.instruction_text
    bound = _instruction_bound(text)
    cheap = [p for p in shown if bound is None or min(p.pricing) < bound] or shown
    words = set(analyze(text))
    return max(cheap, key=lambda p: (len(set(analyze(p.title)) & words), -shown.index(p))).asin


def _words_in(value: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def _wanted_options(session: WebshopSession, is_goal: bool) -> list[tuple[str | None, str]]:
    """``(option name, value)`` pairs the expert wants selected on the current item page."""
    goal, product = session.goal, session.catalog.by_asin[session.asin]
    if is_goal and isinstance(goal.goal_options, dict):
        return list(goal.goal_options.items())
    if is_goal:  # human goals: a list of values; click those the page offers
        return [(None, v.lower()) for v in goal.goal_options]
    text = goal.instruction_text.lower()
    out = []
    for name, values in product.options.items():
        found = [v for v in values if _words_in(v, text)]
        if found:
            out.append((name, max(found, key=len)))
    return out


def expert_action(session: WebshopSession, search: str = "instruction") -> str | None:
    """The expert's action in the session's current state (an admissible action), or None when
    the episode is over or there is nothing to buy. ``search`` as in ``search_action``."""
    if session.done:
        return None
    page, goal = session.page, session.goal
    keys = page.clickables
    concrete = search_action(session, search)
    if page.kind == "search":
        return concrete
    if page.kind == "item_sub":
        return "click[< prev]"
    if page.kind not in ("results", "item"):
        return None
    if session.keywords != parse_action(concrete)[1].lower().split(" "):
        return "click[back to search]"
    hits = _hits(session)
    target = goal.asin if goal.asin in hits else best_guess(session, hits)
    if target is None:
        return None
    if page.kind == "results":
        if target.lower() in keys:
            return f"click[{target.lower()}]"
        want = hits.index(target) // PRODUCT_WINDOW + 1
        return "click[next >]" if session.page_no < want else "click[< prev]"
    if session.asin != target:
        return "click[< prev]"
    for name, value in _wanted_options(session, target == goal.asin):
        kind, payload = keys.get(value, (None, None))
        if kind != "radio" or (name is not None and payload.lower() != name):
            continue  # not an option value of this page (or of another option type)
        if session.options.get(payload.lower()) != value:
            return f"click[{value}]"
    return "click[buy now]"


def expert_episodes(data_root: str | os.PathLike, split: str, n_episodes: int,
                    noise: float = 0.3, seed: int = 0, max_steps: int = 15,
                    eval_goals: int | float = 0.2, search: str = "instruction",
                    goals: list[int] | None = None, *, env_seed: int = 42,
                    catalog: Catalog | None = None, batch_size: int = 64
                    ) -> tuple[list[list[dict]], list[bool]]:
    """Demonstrations of the scripted expert (module docstring) with uniform random-action noise.

    Episode ``k`` plays goal ``order[k % n]`` of a seeded (``seed``) shuffled cycle of the
    split's goal ids (or of ``goals``, which must belong to the split). At each step the expert's
    action is taken, except with probability ``noise`` a uniformly random admissible action; the
    expert then continues from the resulting state. The env is ``WebshopBatchEnv(data_root,
    seed=env_seed, eval_goals=eval_goals, max_steps=max_steps, catalog=catalog)`` (text
    observations, synthetic goals); ``env_seed`` must equal the training env's seed, since goal
    ids and the train/eval split are those of its shuffled goal list.

    Returns ``(episodes, won)``: each episode is a list of step dicts with ``obs`` (the
    observation shown before acting), ``admissible`` (the env's list with ``SEARCH_MARKER``
    replaced by the expert's concrete search action), ``action`` (executed), ``expert`` (True
    when the action is the expert's choice, also when a noise draw picks it), ``expert_action``
    (the expert's choice in that state; None where it has none), ``task`` (the instruction),
    ``gamefile`` (the goal id as a string, e.g. ``"17"``), ``step``; ``won[k]`` is the final
    ``info["won"]`` of episode ``k``. Each episode's noise uses its own
    ``random.Random(f"{seed}/noise/{k}")``, so results do not depend on ``batch_size``.
    """
    if search not in SEARCH_MODES:
        raise ValueError(f"search={search!r}; known: {SEARCH_MODES}")
    env = WebshopBatchEnv(data_root, seed=env_seed, eval_goals=eval_goals, max_steps=max_steps,
                          catalog=catalog)
    split_ids = env.list_games(split)
    if goals is not None:
        outside = sorted(set(int(g) for g in goals) - set(split_ids))
        if outside:
            raise ValueError(f"goal ids {outside[:10]} are not in the {split!r} split")
    pool = [int(g) for g in goals] if goals is not None else split_ids
    if not pool:
        raise ValueError(f"no WebShop goals in split {split!r}")
    order = cycle_order(pool, n_episodes, seed)
    episodes: list[list[dict]] = []
    won: list[bool] = []
    t0 = time.perf_counter()
    for start in range(0, n_episodes, max(1, int(batch_size))):
        ks = list(range(start, min(n_episodes, start + max(1, int(batch_size)))))
        ids = [order[k] for k in ks]
        obs, adm, infos = env.reset(ids)
        rngs = [random.Random(f"{seed}/noise/{k}") for k in ks]
        steps: list[list[dict]] = [[] for _ in ks]
        done = [False] * len(ks)
        final_won = [False] * len(ks)
        while not all(done):
            actions = []
            for i in range(len(ks)):
                if done[i]:
                    actions.append("")
                    continue
                s = env.session(i)
                concrete = search_action(s, search)
                adm_i = [concrete if a == SEARCH_MARKER else a for a in adm[i]]
                expert = expert_action(s, search)
                if expert not in adm_i:
                    expert = None
                if rngs[i].random() < noise or expert is None:
                    action = rngs[i].choice(adm_i)
                else:
                    action = expert
                steps[i].append({"obs": obs[i], "admissible": adm_i, "action": action,
                                 "expert": action == expert, "expert_action": expert,
                                 "task": infos[i]["task"], "gamefile": str(ids[i]),
                                 "step": len(steps[i])})
                actions.append(action)
            obs, _rewards, dones, infos = env.step(actions)
            adm = [inf["admissible"] for inf in infos]
            for i in range(len(ks)):
                if not done[i]:
                    final_won[i] = bool(infos[i]["won"])
                    done[i] = bool(dones[i])
        episodes += steps
        won += final_won
    log.info("webshop expert: %d episodes (%s, noise %.2f), %.0f%% won, %.1f s", n_episodes,
             split, noise, 100.0 * sum(won) / max(1, len(won)), time.perf_counter() - t0)
    return episodes, won
