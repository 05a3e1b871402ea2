"""WebShop as a faithful text environment over WebShop's own data files (environments.md §3).

Our own re-implementation of ``princeton-nlp/WebShop``'s text env as verl-agent vendors and wraps
it (upstream ``20bd331``); no WebShop code is vendored. Modules:

- ``catalog``: the three raw files -> products; synthetic and human goals; seeded prices/bounds.
- ``search``: BM25 with Anserini's defaults over ``convert_product_file_format.py`` documents.
- ``pages``: search / results / item / sub / done pages as text-mode nodes and clickables.
- ``reward``: ``goal.get_reward`` with its quirks; injectable noun extractor (spaCy).
- ``env``: one session (``SimServer`` semantics) and the batched ``WebshopBatchEnv``.

Faithful: observations (``text`` and ``text_rich``; checked once, outside the tests, against the
Jinja + BeautifulSoup rendering of verl-agent's templates), clickables and
``get_available_actions``, action parsing and invalid-action no-ops (search works from any page, as
upstream), page transitions (the Reviews page is empty and the rating ``N.A.``: upstream loads no
reviews), goal construction and instruction text, prices and price bounds (by construction the same
draws, in the same order, as a verl-agent worker with the same seed), the reward and its quirks,
verl-agent's won rule, 10-point reward and eval/train split.

Deviations (each documented where it lives):

- a local RNG instead of re-seeding the process-wide one (``catalog``);
- BM25 in numpy instead of Lucene 8 via pyserini 0.17: no Porter stemming, simpler tokenizer,
  float64 (``search``); the index covers the loaded products (verl-agent always indexes the
  1000-product file, so its ``use_small=False`` runs search only those);
- a finished slot stays on its purchase page (verl-agent auto-resets the worker, whose
  ``available_actions`` then show the new search page);
- ``<a>`` searches filter by attribute where upstream raises; ``<r>`` uses a per-session RNG;
- ``num_products`` accepts any N (upstream: 100/1000/100000/None, its prebuilt indexes).
"""

from repro.envs.webshop.catalog import (
    FULL_FILES,
    PRICE_RANGE,
    SMALL_FILES,
    Goal,
    GoalSet,
    Product,
    build_goal_set,
    load_products,
    parse_pricing,
    resolve_files,
)
from repro.envs.webshop.env import (
    SEARCH_MARKER,
    WIN_REWARD,
    Catalog,
    WebshopBatchEnv,
    WebshopSession,
    admissible_actions,
    parse_action,
    task_text,
)
from repro.envs.webshop.reward import (
    COLOR_SET,
    SpacyNouns,
    attribute_reward,
    default_nouns,
    get_reward,
    normalize_color,
    option_reward,
    type_reward,
)
from repro.envs.webshop.search import BM25Index, analyze, lucene_doc_length, product_document

__all__ = [
    "BM25Index", "COLOR_SET", "Catalog", "FULL_FILES", "Goal", "GoalSet", "PRICE_RANGE", "Product",
    "SEARCH_MARKER", "SMALL_FILES", "SpacyNouns", "WIN_REWARD", "WebshopBatchEnv", "WebshopSession",
    "admissible_actions", "analyze", "attribute_reward", "build_goal_set", "default_nouns",
    "get_reward", "load_products", "lucene_doc_length", "normalize_color", "option_reward",
    "parse_action", "parse_pricing", "product_document", "resolve_files", "task_text", "type_reward",
]
