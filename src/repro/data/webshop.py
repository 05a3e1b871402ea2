"""WebShop datasets: a generated embedded catalog and the paper-scale Google Drive files.

Both variants write WebShop's own raw files (environments.md §3.2), which
``repro.envs.webshop`` reads unchanged::

    <out_dir>/items_shuffle[_1000].json   products
    <out_dir>/items_ins_v2[_1000].json    {asin: {attributes, instruction, instruction_attributes}}
    <out_dir>/items_human_ins.json        {asin: [{instruction, instruction_attributes,
                                                   instruction_options, ...}]}
    <out_dir>/MANIFEST.json               sha256 of every file, params, counts, source

``webshop/embedded`` generates ~120 products in 10 product families (5 WebShop categories):
Amazon-style titles, " › " category paths, search queries, attributes, 1-3 option types with
raw ("Black/White") values, string prices including "$lo - $hi" ranges, a "$1,049.00" price above
the last price bound and an empty price; a few products carry keys upstream pops (brand,
list_price, ...) or a string ``small_description``. Invariants checked while generating (they
make the embedded benchmark solvable and its failure modes clean):

- titles of different families share no token (a wrong-family purchase has title_score 0, so
  r_type = 0 whatever the noun tagger says);
- every option value, clicked exactly, matches its own goal option under the reward's
  ``normalize_color``/``token_set_ratio`` rules (including the synthetic tuple quirk), and no
  value collides with another option of its product or with a page button;
- every product's document contains all words of its family's query.

``webshop/small`` and ``webshop/full`` download the files ``setup.sh -d small|all`` fetches
(§4); Google Drive publishes no checksums, so the digests are recorded at download time
(pass ``sha256`` to pin them).
"""

from __future__ import annotations

import html.parser
import json
import logging
import os
import random
import re
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any

from repro import io as rio
from repro.registry import DATASETS

log = logging.getLogger(__name__)

PRODUCTS_FILE, ATTRS_FILE, HUMAN_FILE = "items_shuffle.json", "items_ins_v2.json", "items_human_ins.json"

EMBEDDED_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "products_per_family": 12,   # 10 families -> 120 products (the paper's small set has 1000)
    "values_min": 2,             # option values offered per option type and product
    "values_max": 3,
    "max_goals_per_product": 12,  # synthetic goals = product of the option counts
    "range_price_fraction": 0.2,  # "$lo - $hi" prices
    "human_fraction": 0.6,       # products with a human instruction
    "eval_goals": 0.2,           # the evaluation split: this fraction of the goal ids (verl-agent: 500)
}

# --------------------------------------------------------------------------------------------
# Product families. Title words of different families are disjoint (checked); attribute and
# option pools are free to overlap, as on Amazon.
# --------------------------------------------------------------------------------------------

FAMILIES: list[dict[str, Any]] = [
    {"key": "running_shoes", "category": "fashion", "query": "running shoes",
     "product_category": "Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running › Road Running",
     "brands": ["Strideon", "Trackfoot", "Paceline", "Kinetra"],
     "heads": ["Running Shoes", "Road Running Shoes", "Trail Running Shoes"],
     "extras": ["Breathable Sneakers", "Athletic Trainers", "Cushioned Joggers", "Sport Footwear"],
     "attributes": ["lace up", "rubber sole", "arch support", "breathable mesh", "non slip",
                    "lightweight"],
     "options": {"Color": ["Black", "White", "Grey", "Navy Blue", "Red", "Black/White"],
                 "Size": ["7", "8", "9", "10", "11", "12"],
                 "Width": ["Medium", "Wide"]},
     "price": (39.0, 129.0)},
    {"key": "shampoo", "category": "beauty", "query": "shampoo",
     "product_category": "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos",
     "brands": ["Lumora", "Verdella", "Aquavie"],
     "heads": ["Shampoo", "Clarifying Shampoo", "Moisturizing Shampoo"],
     "extras": ["Salon Formula", "Scalp Care", "Hair Cleanser", "Gentle Wash"],
     "attributes": ["sulfate free", "paraben free", "tea tree", "argan oil", "dry hair",
                    "color safe"],
     "options": {"Size": ["8 Fl Oz (Pack of 1)", "16 Fl Oz (Pack of 1)", "12 Fl Oz (Pack of 2)"],
                 "Scent": ["Lavender", "Coconut", "Citrus", "Unscented"]},
     "price": (6.0, 32.0)},
    {"key": "body_lotion", "category": "beauty", "query": "body lotion",
     "product_category": "Beauty & Personal Care › Skin Care › Body › Moisturizers › Lotions",
     "brands": ["Softerra", "Dermaluxe", "Calmeo"],
     "heads": ["Body Lotion", "Daily Body Lotion", "Nourishing Body Lotion"],
     "extras": ["Skin Moisturizer", "Hydrating Cream", "Silky Finish", "Nongreasy Lotion"],
     "attributes": ["shea butter", "fragrance free", "dry skin", "long lasting",
                    "hyaluronic acid"],
     "options": {"Size": ["13.5 Fl Oz", "16.9 Fl Oz (Pack of 2)", "32 Fl Oz"],
                 "Scent": ["Vanilla", "Cocoa Butter", "Fresh Cucumber"]},
     "price": (5.0, 28.0)},
    {"key": "headphones", "category": "electronics", "query": "wireless headphones",
     "product_category": "Electronics › Headphones, Earbuds & Accessories › Headphones › Over-Ear Headphones",
     "brands": ["Sonaro", "Auralink", "Bassview"],
     "heads": ["Wireless Headphones", "Wireless Over Ear Headphones", "Foldable Wireless Headphones"],
     "extras": ["Bluetooth Headset", "Stereo Audio", "Studio Sound", "Microphone Included"],
     "attributes": ["noise cancelling", "bluetooth 5.0", "long battery life", "hands free",
                    "fast charging"],
     "options": {"Color": ["Black", "Silver", "Rose Gold", "Midnight Blue", "White"]},
     "price": (25.0, 199.0)},
    {"key": "tshirt", "category": "fashion", "query": "cotton t-shirt",
     "product_category": "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts",
     "brands": ["Threadly", "Cottonway", "Basicor"],
     "heads": ["Cotton T-Shirt", "Crew Neck Cotton T-Shirt", "Cotton T-Shirt Multipack"],
     "extras": ["Everyday Tee", "Classic Top", "Casual Wear", "Soft Jersey"],
     "attributes": ["machine wash", "short sleeve", "crew neck", "relaxed fit", "100% cotton"],
     "options": {"Color": ["Heather Grey", "White", "Navy", "Olive", "Burgundy"],
                 "Size": ["Small", "Medium", "Large", "X-Large", "XX-Large"]},
     "price": (8.0, 35.0)},
    {"key": "coffee", "category": "food", "query": "ground coffee",
     "product_category": "Grocery & Gourmet Food › Beverages › Coffee, Tea & Cocoa › Coffee › Ground Coffee",
     "brands": ["Roastwell", "Beanridge", "Kaffora"],
     "heads": ["Ground Coffee", "Medium Roast Ground Coffee", "Whole Flavor Ground Coffee"],
     "extras": ["Arabica Blend", "Smooth Brew", "Drip Grind", "Morning Cup"],
     "attributes": ["usda organic", "fair trade", "non gmo", "kosher certified", "medium roast"],
     "options": {"Flavor Name": ["French Roast", "Hazelnut", "Vanilla", "Colombian",
                                 "Dark Chocolate"],
                 "Size": ["12 Ounce (Pack of 1)", "2 Pound (Pack of 1)", "12 Ounce (Pack of 3)"]},
     "price": (7.0, 45.0)},
    {"key": "protein_bars", "category": "food", "query": "protein bars",
     "product_category": "Grocery & Gourmet Food › Snack Foods › Bars › Protein Bars",
     "brands": ["Fuelix", "Nutrabar", "Proteo"],
     "heads": ["Protein Bars", "High Protein Bars", "Snack Protein Bars"],
     "extras": ["Energy Snack", "Meal Replacement", "Workout Fuel", "Chewy Bites"],
     "attributes": ["high protein", "low sugar", "gluten free", "keto friendly", "plant based"],
     "options": {"Flavor": ["Peanut Butter", "Chocolate Chip", "Cookie Dough", "Salted Caramel"],
                 "Size": ["12 Count (Pack of 1)", "24 Count"]},
     "price": (12.0, 48.0)},
    {"key": "office_chair", "category": "furniture", "query": "office chair",
     "product_category": ("Home & Kitchen › Furniture › Home Office Furniture › Home Office Chairs › "
                          "Desk Chairs"),
     "brands": ["Ergolux", "Sitwell", "Posturo"],
     "heads": ["Office Chair", "Ergonomic Office Chair", "Mesh Back Office Chair"],
     "extras": ["Computer Seat", "Executive Recliner", "Task Swivel", "Headrest Armrest"],
     "attributes": ["lumbar support", "height adjustable", "easy assemble", "pu leather",
                    "swivel wheels"],
     "options": {"Color": ["Black", "Grey", "White", "Pink"]},
     "price": (59.0, 399.0)},
    {"key": "nightstand", "category": "furniture", "query": "nightstand",
     "product_category": "Home & Kitchen › Furniture › Bedroom Furniture › Nightstands",
     "brands": ["Woodhaven", "Dormio", "Larchmont"],
     "heads": ["Nightstand", "Nightstand with Drawer", "Nightstand Bedside Table"],
     "extras": ["Bedside Cabinet", "End Table", "Sofa Side Stand", "Storage Cubby"],
     "attributes": ["storage space", "solid wood", "easy assemble", "space saving",
                    "engineered wood"],
     "options": {"Color": ["Walnut", "White", "Rustic Brown", "Espresso"]},
     "price": (39.0, 189.0)},
    {"key": "phone_case", "category": "electronics", "query": "phone case",
     "product_category": "Cell Phones & Accessories › Cases, Holsters & Sleeves › Basic Cases",
     "brands": ["Armorix", "Caseloom", "Guardly"],
     "heads": ["Phone Case", "Clear Phone Case", "Rugged Phone Case"],
     "extras": ["Protective Cover", "Bumper Shell", "Camera Guard", "Grip Design"],
     "attributes": ["shock absorbing", "wireless charging", "slim fit", "scratch resistant",
                    "drop protection"],
     "options": {"Color": ["Clear", "Black", "Purple", "Mint Green"],
                 "Style": ["iPhone 13", "iPhone 14", "iPhone 14 Pro", "Galaxy S23"]},
     "price": (8.0, 39.0)},
]

#: Page buttons an option value must not equal (it would shadow the button's clickable).
_RESERVED = {"search", "back to search", "< prev", "next >", "description", "features",
             "reviews", "attributes", "buy now"}
_FUNCTION_WORDS = {"with", "for", "and", "of", "in"}
_INSTRUCTION_TEMPLATES = (
    "i need {q} that is {a}",
    "i am looking for {a} {q}",
    "find me {q} with {a}",
    "i want to buy {q} which is {a}",
    "i'm looking for {a} {q}",
)
_HUMAN_TEMPLATES = (
    "I want {a} {q} in {opts}.",
    "Looking for {q} that is {a}, {opts} please.",
    "i need {a} {q}, {opts}",
)


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.lower()))


def _option_value(raw: str) -> str:
    """Upstream's load-time option normalisation."""
    return raw.strip().replace("/", " | ").lower()


def check_families(families: list[dict[str, Any]] = FAMILIES) -> None:
    """Raise ``ValueError`` if two families share a title token, or an option value would not
    match itself under the reward, or collides with a button or another option type."""
    from repro.envs.webshop.reward import option_reward  # noqa: PLC0415

    vocab: dict[str, str] = {}
    for fam in families:
        words = set()
        for part in fam["brands"] + fam["heads"] + fam["extras"]:
            words |= _tokens(part)
        if not _tokens(fam["query"]) <= set().union(*(_tokens(h) for h in fam["heads"])):
            raise ValueError(f"family {fam['key']}: a head lacks query words of {fam['query']!r}")
        for w in words - _FUNCTION_WORDS:
            if w in vocab and vocab[w] != fam["key"]:
                raise ValueError(f"title word {w!r} in families {vocab[w]} and {fam['key']}")
            vocab[w] = fam["key"]
        seen: dict[str, str] = {}
        for name, values in fam["options"].items():
            for raw in values:
                v = _option_value(raw)
                if v in _RESERVED or seen.setdefault(v, name) != name:
                    raise ValueError(f"family {fam['key']}: option value {v!r} collides")
                if option_reward([v], [(name.lower(), v)])[1] != 1 or option_reward([v], [v])[1] != 1:
                    raise ValueError(f"family {fam['key']}: option value {v!r} does not match itself")


def _asin(rng: random.Random, taken: set[str]) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _price_text(rng: random.Random, lo: float, hi: float, as_range: bool) -> str:
    a = round(rng.uniform(lo, hi)) - 0.01
    if not as_range:
        return f"${a:,.2f}"
    b = a + round(rng.uniform(3, max(4.0, (hi - lo) / 3)))
    return f"${a:,.2f} - ${b:,.2f}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _make_product(fam: dict, k: int, rng: random.Random, p: dict, taken: set[str]) -> tuple:
    """One raw product, its items_ins_v2 entry and its human instructions."""
    asin = _asin(rng, taken)
    brand = rng.choice(fam["brands"])
    head = rng.choice(fam["heads"])
    extras = rng.sample(fam["extras"], 2)
    title = f"{brand} {head} - {extras[0]} {extras[1]}"
    attrs = rng.sample(fam["attributes"], rng.randint(3, min(4, len(fam["attributes"]))))
    # option types: the family's, 1..all of them (every product of a family has the first)
    names = list(fam["options"])
    names = names[:rng.randint(1, len(names))]
    while True:
        chosen = {n: rng.sample(fam["options"][n], rng.randint(
            p["values_min"], min(p["values_max"], len(fam["options"][n])))) for n in names}
        n_goals = 1
        for vals in chosen.values():
            n_goals *= len(vals)
        if n_goals <= p["max_goals_per_product"]:
            break
        names = names[:-1]
    bullets = [f"{a.capitalize()}: {fam['query']} made by {brand} with {a}." for a in attrs]
    bullets.append(f"Designed as {extras[0].lower()} for everyday use.")
    description = (f"{brand} {fam['query']} combines {_join(attrs[:2])}. "
                   f"{extras[1]} for customers who want {attrs[-1]}.")
    lo, hi = fam["price"]
    pricing = _price_text(rng, lo, hi, rng.random() < p["range_price_fraction"])
    if fam["key"] == "office_chair" and k == 0:
        pricing = "$1,049.00"  # above PRICE_RANGE's 4 bounds: no price clause in its goals
    if fam["key"] == "nightstand" and k == 0:
        pricing = ""  # upstream: empty pricing -> $100.0
    product: dict[str, Any] = {
        "asin": asin, "name": title, "category": fam["category"], "query": fam["query"],
        "product_category": fam["product_category"], "full_description": description,
        "small_description": bullets, "pricing": pricing,
        "customization_options": {n: [{"value": v, "image": None} for v in vals]
                                  for n, vals in chosen.items()},
        "images": [f"https://example.invalid/webshop/{asin}.jpg"],
        "average_rating": round(rng.uniform(3.5, 5.0), 1), "page": 1 + k // 10,
    }
    if k % 5 == 1:  # keys upstream's clean_product_keys pops
        product.update({"brand": brand, "list_price": "", "seller_name": f"{brand} Store",
                        "total_reviews": rng.randint(1, 500), "product_information": {"ASIN": asin}})
    if k % 7 == 3:
        product["small_description"] = " ".join(bullets)  # a string, as some raw products have
    ins_attrs = rng.sample(attrs, rng.randint(1, 2))
    instruction = rng.choice(_INSTRUCTION_TEMPLATES).format(q=fam["query"], a=" and ".join(ins_attrs))
    ins_v2 = {"attributes": attrs, "instruction": instruction, "instruction_attributes": ins_attrs}
    human = []
    if rng.random() < p["human_fraction"] and chosen:  # (a product without options has none)
        opts = [rng.choice(vals) for vals in chosen.values()]
        text = rng.choice(_HUMAN_TEMPLATES).format(
            q=fam["query"], a=ins_attrs[0], opts=_join([o.lower() for o in opts]))
        human.append({"asin": asin, "instruction": text, "instruction_attributes": [ins_attrs[0]],
                      "instruction_options": [_option_value(o) for o in opts],
                      "assignment_id": f"A{k:04d}{asin[-4:]}", "worker_id": f"W{rng.randint(1, 40):03d}"})
        if k % 6 == 0:  # no attributes: upstream skips such human instructions
            human.append({"asin": asin, "instruction": f"buy {fam['query']}.",
                          "instruction_attributes": [], "instruction_options": []})
    return product, ins_v2, human


def _resolve_params(params: dict | None) -> dict[str, Any]:
    p = dict(EMBEDDED_DEFAULTS)
    unknown = set(params or {}) - set(p)
    if unknown:
        raise KeyError(f"unknown webshop/embedded params {sorted(unknown)}; known: {sorted(p)}")
    p.update(params or {})
    if not 1 <= p["values_min"] <= p["values_max"]:
        raise ValueError(f"need 1 <= values_min <= values_max, got {p['values_min']}, {p['values_max']}")
    if p["products_per_family"] < 1:
        raise ValueError(f"products_per_family must be >= 1, got {p['products_per_family']}")
    return p


def generate_catalog(params: dict | None = None) -> tuple[list, dict, dict]:
    """The three raw objects (products, items_ins_v2, items_human_ins) for ``params``;
    deterministic in ``params['seed']``. Products are shuffled, as ``items_shuffle`` is."""
    p = _resolve_params(params)
    check_families()
    taken: set[str] = set()
    products, attrs, human = [], {}, {}
    for fam in FAMILIES:
        rng = random.Random(f"{p['seed']}/{fam['key']}")
        for k in range(int(p["products_per_family"])):
            prod, ins, hum = _make_product(fam, k, rng, p, taken)
            products.append(prod)
            attrs[prod["asin"]] = ins
            if hum:
                human[prod["asin"]] = hum
    random.Random(f"{p['seed']}/shuffle").shuffle(products)
    return products, attrs, human


@DATASETS.register("webshop/embedded")
def generate_embedded(out_dir: Path, params: dict) -> None:
    """Write a generated WebShop catalog into ``out_dir`` (atomically).

    Params (defaults in ``EMBEDDED_DEFAULTS``): seed, products_per_family, values_min/max,
    max_goals_per_product, range_price_fraction, human_fraction.
    """
    t0 = time.perf_counter()
    p = _resolve_params(params)
    products, attrs, human = generate_catalog(p)
    n_synthetic = 0
    for prod in products:
        n = 1
        for vals in prod["customization_options"].values():
            n *= len(vals)
        n_synthetic += n
    with rio.atomic_dir(out_dir) as tmp:
        for name, obj in ((PRODUCTS_FILE, products), (ATTRS_FILE, attrs), (HUMAN_FILE, human)):
            rio.write_text(tmp / name, json.dumps(obj))
        manifest = {
            "dataset": "webshop/embedded",
            "source": "generated by repro.data.webshop.generate_embedded",
            "license": "MIT (generated; schemas follow princeton-nlp/WebShop)",
            "params": p,
            "counts": {"products": len(products), "families": len(FAMILIES),
                       "synthetic_goals": n_synthetic,
                       "human_instructions": sum(len(v) for v in human.values()),
                       "human_goals": sum(1 for v in human.values() for h in v
                                          if h["instruction_attributes"])},
            "env_files": {"products": PRODUCTS_FILE, "attributes": ATTRS_FILE, "human": HUMAN_FILE},
            "splits": {"eval_goals": p["eval_goals"]},  # read by repro.rl.benchmarks (WebShop env)
            "files": rio.sha256_tree(tmp),
        }
        rio.write_json(tmp / "MANIFEST.json", manifest)
    log.info("webshop/embedded: %d products, %d synthetic goals in %.2f s -> %s",
             len(products), n_synthetic, time.perf_counter() - t0, out_dir)


# --------------------------------------------------------------------------------------------
# Paper scale: the Google Drive files of setup.sh (environments.md §4)
# --------------------------------------------------------------------------------------------

DRIVE_IDS = {
    "items_shuffle_1000.json": "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib",
    "items_ins_v2_1000.json": "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu",
    "items_shuffle.json": "1A2whVgOO0euk5O13n2iYDM0bQRkkRduB",
    "items_ins_v2.json": "1s2j6NgHljiZzQNL3veZaAiyW_qDEgBNi",
    "items_human_ins.json": "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O",
}
#: ``setup.sh -d small`` / ``-d all``.
VARIANT_FILES = {
    "small": ("items_shuffle_1000.json", "items_ins_v2_1000.json", "items_human_ins.json"),
    "full": ("items_shuffle_1000.json", "items_ins_v2_1000.json", "items_shuffle.json",
             "items_ins_v2.json", "items_human_ins.json"),
}
#: gdown's URL form (setup.sh); big files answer with a virus-scan confirmation page first.
DRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"
_FIRST_BYTE = {"items_shuffle": b"[", "items_ins_v2": b"{", "items_human_ins": b"{"}


class _FormParser(html.parser.HTMLParser):
    """Collects Drive's confirmation ``<form action=...>`` inputs and ``confirm=`` links."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.links: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and "download" in (a.get("id", "") + a.get("action", "")):
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("name"):
            self.inputs[a["name"]] = a.get("value") or ""
        elif tag == "a" and "confirm=" in (a.get("href") or ""):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def drive_confirm_url(page: str, page_url: str) -> str | None:
    """The real download URL behind Google Drive's "can't scan this file for viruses" page:
    its download form (``drive.usercontent.google.com/download?id=…&confirm=t&uuid=…``) or an
    older ``confirm=`` link; None when the page has neither."""
    parser = _FormParser()
    parser.feed(page)
    if parser.action:
        return urllib.parse.urljoin(page_url, parser.action) + "?" + urllib.parse.urlencode(parser.inputs)
    if parser.links:
        return urllib.parse.urljoin(page_url, parser.links[0].replace("&amp;", "&"))
    return None


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def _check_first_byte(path: Path, name: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    want = next((b for k, b in _FIRST_BYTE.items() if name.startswith(k)), None)
    if want is not None and not head.startswith(want):
        raise ValueError(f"{name}: expected JSON starting with {want.decode()!r}, got {head[:20]!r}")


def _fetch_one(url: str, dest: Path, name: str) -> tuple[str, str]:
    """Download ``url`` to ``dest``, following a Drive confirmation page; returns (url, sha256)."""
    from repro.data.download import download  # noqa: PLC0415

    digest = download(url, dest)
    if _looks_like_html(dest):
        page = dest.read_text(encoding="utf-8", errors="replace")
        dest.unlink()
        confirm = drive_confirm_url(page, url)
        if confirm is None:
            raise OSError(f"{name}: {url} answered an HTML page without a download form "
                          "(quota exceeded or sign-in required?); fetch the file by hand or "
                          "pass base_url= pointing at a mirror")
        log.info("%s: following Google Drive's confirmation page", name)
        url = confirm
        digest = download(url, dest)
        if _looks_like_html(dest):
            dest.unlink()
            raise OSError(f"{name}: {url} still answers HTML; use a mirror (base_url=)")
    return url, digest


def _fetch(variant: str, out_dir: Path, params: dict) -> None:
    params = dict(params or {})
    known = {"base_url", "url_template", "drive_ids", "sha256", "download_dir", "files"}
    unknown = set(params) - known
    if unknown:
        raise KeyError(f"unknown webshop/{variant} params {sorted(unknown)}; known: {sorted(known)}")
    out_dir = Path(out_dir)
    files = list(params.get("files") or VARIANT_FILES[variant])
    base = params.get("base_url")
    template = params.get("url_template", DRIVE_URL)
    ids = {**DRIVE_IDS, **(params.get("drive_ids") or {})}
    expected = {k: v.lower() for k, v in (params.get("sha256") or {}).items()}
    dl_dir = Path(params.get("download_dir") or out_dir.parent / f".{out_dir.name}.downloads")
    dl_dir_existed = dl_dir.exists()
    records: dict[str, dict] = {}
    try:
        for name in files:
            dest = dl_dir / name
            url = f"{str(base).rstrip('/')}/{name}" if base else template.format(id=ids[name])
            if dest.exists():
                digest = rio.sha256_file(dest)
            else:
                log.info("downloading %s", url)
                url, digest = _fetch_one(url, dest, name)
            if name in expected and digest != expected[name]:
                dest.unlink()
                raise ValueError(f"sha256 mismatch for {name}: expected {expected[name]}, got {digest}")
            _check_first_byte(dest, name)
            records[name] = {"url": url, "sha256": digest, "bytes": dest.stat().st_size}
    except ValueError:
        # a wrong digest or content is a wrong source, not a network hiccup: leave nothing behind
        if not dl_dir_existed:
            shutil.rmtree(dl_dir, ignore_errors=True)
        raise
    except OSError:
        # network trouble: keep ``.part`` files for the next attempt, but no empty folder
        if not dl_dir_existed and dl_dir.is_dir() and not any(dl_dir.iterdir()):
            dl_dir.rmdir()
        raise
    with rio.atomic_dir(out_dir) as tmp:
        for name in files:
            os.replace(dl_dir / name, tmp / name)
        rio.write_json(tmp / "MANIFEST.json", {
            "dataset": f"webshop/{variant}",
            "source": base or template,
            "license": "WebShop data (princeton-nlp/WebShop): research use, see its LICENSE.md",
            "downloads": records,
            "env_files": {"small": {"products": "items_shuffle_1000.json",
                                    "attributes": "items_ins_v2_1000.json", "human": HUMAN_FILE},
                          **({"full": {"products": PRODUCTS_FILE, "attributes": ATTRS_FILE,
                                       "human": HUMAN_FILE}} if PRODUCTS_FILE in files else {})},
            "files": {name: records[name]["sha256"] for name in files},
        })
    if not any(dl_dir.iterdir()):
        dl_dir.rmdir()
    log.info("webshop/%s: %s -> %s", variant, ", ".join(files), out_dir)


@DATASETS.register("webshop/small")
def fetch_small(out_dir: Path, params: dict) -> None:
    """Download the 1000-product files and the human instructions (``setup.sh -d small``).

    Params: ``base_url`` (a mirror holding the files by name: ``file://`` or ``http(s)://``),
    else ``url_template`` (default ``DRIVE_URL``) with ``drive_ids`` overrides; ``sha256``
    ({file name: hex digest}; a mismatch raises ``ValueError`` and leaves nothing behind);
    ``download_dir`` (``.part`` files between attempts; default a hidden sibling); ``files``.
    Google Drive's virus-scan confirmation page (files over ~100 MB) is followed automatically.
    """
    _fetch("small", Path(out_dir), params)


@DATASETS.register("webshop/full")
def fetch_full(out_dir: Path, params: dict) -> None:
    """Download all five files (``setup.sh -d all``); params as ``fetch_small``. The full
    products file is several GB; verl-agent still trains on the 1000-product files by default."""
    _fetch("full", Path(out_dir), params)
