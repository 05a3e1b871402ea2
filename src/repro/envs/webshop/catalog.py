"""WebShop's raw data files, products and goals (``engine.load_products`` / ``goal.get_goals``).

Raw files (environments.md §3.2), read unchanged:

- ``items_shuffle{_1000,}.json``: list of products (``asin``, ``name``, ``category``, ``query``,
  ``product_category``, ``full_description``, ``small_description`` str or list, ``pricing`` str,
  ``customization_options``, ``images``; other keys are ignored, as upstream pops them);
- ``items_ins_v2{_1000,}.json``: ``{asin: {attributes, instruction, instruction_attributes}}``;
- ``items_human_ins.json``: ``{asin: [{instruction, instruction_attributes, instruction_options}]}``.

Randomness. Upstream draws range prices (``random.uniform``) and price bounds
(``random.sample``) from the *global* RNG and then re-seeds it (233; verl-agent: the worker seed)
to shuffle the goals. Here one local ``random.Random(seed)`` makes the same calls in the same
order and a fresh ``random.Random(seed)`` shuffles, so for a given seed and data the goal list,
prices and bounds equal verl-agent's worker with that seed, without touching the global RNG.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``goal.PRICE_RANGE``: candidate price bounds.
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
NO_PRICE_BOUND = 1000000
SMALL_FILES = {"products": "items_shuffle_1000.json", "attributes": "items_ins_v2_1000.json",
               "human": "items_human_ins.json"}
FULL_FILES = {"products": "items_shuffle.json", "attributes": "items_ins_v2.json",
              "human": "items_human_ins.json"}


@dataclass
class Product:
    """One loaded product (upstream's dict keys in comments)."""

    asin: str
    name: str                       # 'name' (raw title; the type reward parses it)
    title: str                      # 'Title' (= name; the attribute reward searches it)
    category: str
    query: str                      # lowercased, stripped
    product_category: str
    description: str                # 'Description' (= full_description)
    bullet_points: list[str]        # 'BulletPoints' (small_description as a list)
    pricing: list[float]            # one price or a [lo, hi] range; no price -> [100.0]
    price_tag: str                  # 'Price': "$12.99" or "$10.0 to $20.0"
    options: dict[str, list[str]]   # lowercased names and values, "/" -> " | "
    attributes: list[str]           # 'Attributes' (items_ins_v2 'attributes' or ['DUMMY_ATTR'])
    main_image: str | None = None
    rating: str = "N.A."            # reviews/ratings are not loaded upstream (commented out)
    instruction: dict | None = None             # items_ins_v2 entry (synthetic goals)
    human_instructions: list[dict] = field(default_factory=list)


@dataclass
class Goal:
    """One task: buy ``asin`` with ``goal_options`` below ``price_upper``."""

    asin: str
    category: str
    query: str
    name: str
    product_category: str
    instruction_text: str
    attributes: list[str]
    price_upper: float
    goal_options: dict[str, str] | list[str]   # dict: synthetic goals, list: human goals
    weight: float = 1.0


def resolve_files(data_dir: str | os.PathLike, use_small: bool | None = None) -> dict[str, Path]:
    """Paths of the three raw files in ``data_dir``: the 1000-product files (verl-agent's
    ``use_small=True``), the full ones (False), or whichever exists, small first (None)."""
    d = Path(data_dir)
    if use_small is None:
        names = SMALL_FILES if (d / SMALL_FILES["products"]).exists() else FULL_FILES
    else:
        names = SMALL_FILES if use_small else FULL_FILES
    paths = {k: d / v for k, v in names.items()}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"WebShop data files missing: {', '.join(missing)}")
    return paths


def _read_json(path: Path, kind: type) -> Any:
    with open(path, encoding="utf-8") as fh:
        obj = json.load(fh)
    if not isinstance(obj, kind):
        raise ValueError(f"{path}: expected a JSON {kind.__name__}, got {type(obj).__name__}")
    return obj


def parse_pricing(value: Any, where: str) -> tuple[list[float], str]:
    """``pricing`` string -> (prices, price tag): "$12.99" -> [12.99]; "$10.00 - $20.00" ->
    [10.0, 20.0] (first two "$" amounts); empty/None -> [100.0], "$100.0"."""
    if value is None or not value:
        return [100.0], "$100.0"
    if not isinstance(value, str):
        raise ValueError(f"{where}: pricing must be a string such as '$12.99', got {value!r}")
    try:
        prices = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in value.split("$")[1:]]
    except InvalidOperation:
        raise ValueError(f"{where}: unparseable pricing {value!r}") from None
    if not prices:
        raise ValueError(f"{where}: pricing {value!r} has no '$' amount")
    if len(prices) == 1:
        return prices, f"${prices[0]}"
    return prices[:2], f"${prices[0]} to ${prices[1]}"


def _options(raw: Any, where: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    if not raw:
        return options
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: customization_options must be an object, got {type(raw).__name__}")
    for name, contents in raw.items():
        if contents is None:
            continue
        values = []
        for c in contents:
            if not isinstance(c, dict) or not isinstance(c.get("value"), str):
                raise ValueError(f"{where}: option {name!r} entry {c!r} has no string 'value'")
            values.append(c["value"].strip().replace("/", " | ").lower())
        options[name.lower()] = values
    return options


def _text(p: dict, key: str, where: str) -> str:
    if key not in p:
        raise KeyError(f"{where}: missing key {key!r}")
    if not isinstance(p[key], str):
        raise ValueError(f"{where}: {key!r} must be a string, got {p[key]!r}")
    return p[key]


def load_products(products_path: str | os.PathLike, attributes_path: str | os.PathLike,
                  human_path: str | os.PathLike, num_products: int | None = None) -> list[Product]:
    """Products of the three raw files, in file order (``engine.load_products``).

    Asins equal to ``'nan'`` or longer than 10 characters and repeated asins are skipped;
    ``num_products`` keeps the first N raw entries (upstream restricts it to 100/1000/100000
    because of its prebuilt indexes; any N works here).
    """
    products_path, attributes_path, human_path = map(Path, (products_path, attributes_path, human_path))
    raw = _read_json(products_path, list)
    attrs = _read_json(attributes_path, dict)
    human = _read_json(human_path, dict)
    if num_products is not None:
        raw = raw[:num_products]
    seen: set[str] = set()
    out: list[Product] = []
    for i, p in enumerate(raw):
        where = f"{products_path.name}[{i}]"
        if not isinstance(p, dict):
            raise ValueError(f"{where}: expected an object, got {type(p).__name__}")
        asin = _text(p, "asin", where)
        where = f"{where} (asin {asin})"
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        small = p.get("small_description", "")
        bullets = small if isinstance(small, list) else [small]
        if not all(isinstance(b, str) for b in bullets):
            raise ValueError(f"{where}: small_description must be a string or a list of strings")
        pricing, tag = parse_pricing(p.get("pricing"), where)
        a = attrs.get(asin)
        if a is not None and not isinstance(a, dict):
            raise ValueError(f"{attributes_path.name}[{asin!r}]: expected an object")
        h = human.get(asin, [])
        if not isinstance(h, list):
            raise ValueError(f"{human_path.name}[{asin!r}]: expected a list of instructions")
        images = p.get("images") or [None]
        name = _text(p, "name", where)
        out.append(Product(
            asin=asin, name=name, title=name, category=_text(p, "category", where),
            query=_text(p, "query", where).lower().strip(),
            product_category=_text(p, "product_category", where),
            description=_text(p, "full_description", where), bullet_points=list(bullets),
            pricing=pricing, price_tag=tag, options=_options(p.get("customization_options"), where),
            attributes=list(a["attributes"]) if a and "attributes" in a else ["DUMMY_ATTR"],
            main_image=images[0], instruction=a, human_instructions=h))
    return out


def draw_prices(products: list[Product], rng: random.Random) -> dict[str, float]:
    """``generate_product_prices``: the single price, or ``uniform(lo, hi)`` for a range."""
    return {p.asin: (p.pricing[0] if len(p.pricing) == 1 else rng.uniform(*p.pricing[:2]))
            for p in products}


def _price_bound(price: float, rng: random.Random) -> tuple[float, str]:
    candidates = [x for x in PRICE_RANGE if x > price][:4]
    if len(candidates) >= 2:
        _, upper = sorted(rng.sample(candidates, 2))
        return upper, f", and price lower than {upper:.2f} dollars"
    return NO_PRICE_BOUND, ""


def synthetic_goals(products: list[Product], prices: dict[str, float],
                    rng: random.Random) -> list[Goal]:
    """One goal per product x combination of its option values (``get_synthetic_goals``)."""
    goals: list[Goal] = []
    counts: dict[str, int] = {}
    for p in products:
        if p.instruction is None:
            raise ValueError(f"asin {p.asin} has no entry in the attributes file "
                             "(upstream fails with KeyError in synthetic-goal mode)")
        text = p.instruction.get("instruction")
        if text is None:
            continue
        attributes = p.instruction.get("instruction_attributes")
        if not attributes:
            raise ValueError(f"asin {p.asin}: instruction without instruction_attributes")
        upper, price_text = _price_bound(prices[p.asin], rng)
        names = sorted(p.options)
        for combo in itertools.product(*(p.options[n] for n in names)):
            goal_options = dict(zip(names, combo))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = " with " + option_text if option_text else ""
            goals.append(Goal(asin=p.asin, category=p.category, query=p.query, name=p.title,
                              product_category=p.product_category,
                              instruction_text=f"{text}{option_text}{price_text}",
                              attributes=list(attributes), price_upper=upper,
                              goal_options=goal_options))
            for att in attributes:
                counts[att] = counts.get(att, 0) + 1
    for g in goals:
        g.weight = sum(1.0 / counts[a] for a in g.attributes) / len(g.attributes)
    return goals


def human_goals(products: list[Product], prices: dict[str, float], rng: random.Random) -> list[Goal]:
    """One goal per human instruction with attributes (``get_human_goals``)."""
    goals: list[Goal] = []
    for p in products:
        for k, ins in enumerate(p.human_instructions):
            where = f"items_human_ins.json[{p.asin!r}][{k}]"
            if not isinstance(ins, dict) or "instruction_attributes" not in ins:
                raise ValueError(f"{where}: missing 'instruction_attributes'")
            attributes = ins["instruction_attributes"]
            if len(attributes) == 0:
                continue
            if "instruction" not in ins or "instruction_options" not in ins:
                raise ValueError(f"{where}: missing 'instruction' or 'instruction_options'")
            upper, price_text = _price_bound(prices[p.asin], rng)
            goals.append(Goal(asin=p.asin, category=p.category, query=p.query, name=p.name,
                              product_category=p.product_category,
                              instruction_text=ins["instruction"].strip(".") + price_text,
                              attributes=list(attributes), price_upper=upper,
                              goal_options=list(ins["instruction_options"])))
    return goals


@dataclass
class GoalSet:
    """Prices and shuffled goals of one seed (one verl-agent worker)."""

    seed: int
    prices: dict[str, float]
    goals: list[Goal]


def build_goal_set(products: list[Product], seed: int, human: bool = False) -> GoalSet:
    """Prices, goals and the seeded shuffle, in upstream's draw order (module docstring)."""
    rng = random.Random(seed)
    prices = draw_prices(products, rng)
    goals = (human_goals if human else synthetic_goals)(products, prices, rng)
    random.Random(seed).shuffle(goals)
    return GoalSet(seed=seed, prices=prices, goals=goals)
