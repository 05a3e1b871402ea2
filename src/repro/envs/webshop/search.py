"""BM25 product search: a vectorised stand-in for WebShop's Lucene index (environments.md §3.5).

WebShop indexes one JsonCollection document per product (``search_engine/
convert_product_file_format.py``): ``contents`` = lowercased ``Title + Description +
BulletPoints[0] + "name: v1, v2, and name2: ..."``; pyserini 0.17 (Anserini 0.14.3, Lucene 8)
answers ``search(query, k=50)``. This module scores the same documents with Lucene 8's BM25:

    score(d, q) = sum_t  c_t * idf_t * tf_td / (tf_td + k1 * (1 - b + b * L_d / avgdl))
    idf_t = ln(1 + (N - df_t + 0.5) / (df_t + 0.5))          k1 = 0.9, b = 0.4 (Anserini)

with ``c_t`` the count of term ``t`` in the query (Anserini's bag-of-words query boosts a repeated
term by its count), ``L_d`` the document length as Lucene stores it (one byte,
``SmallFloat.intToByte4``: exact below 24 tokens, 3 significant bits above), ``avgdl`` the exact
mean length. Only documents matching at least one term are returned; ties are broken by the
document id ascending, as Anserini's ``BREAK_SCORE_TIES_BY_DOCID`` sort does.

Analyzer (the reference stand-in, §3.5): lowercased alphanumeric runs, Lucene's English stop
words removed, no stemming. Known differences from real Lucene, so rankings can differ on the
1000-product (and 1.18M-product) catalog used by the papers:

- Lucene's ``StandardTokenizer`` keeps ``6.76`` or ``don't`` as one token and its English analyzer
  drops possessive ``'s``; here they split (``6``/``76``, ``don``/``t``, ``men``/``s``).
- Anserini's default analyzer applies Porter stemming; pass ``stemmer=`` to add one.
- Lucene scores in float32; here float64.

Why not ``bm25s`` / ``rank_bm25`` from PyPI: neither quantises document lengths like Lucene,
breaks ties by document id or returns only matching documents, and ``bm25s``'s default tokenizer
drops one-character tokens; the scorer below is ~60 lines of numpy/scipy.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter, OrderedDict
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

#: Lucene ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`` (33 words).
LUCENE_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_TOKEN = re.compile(r"[^\W_]+")
_NUM_FREE_VALUES = 24  # 255 - SmallFloat.longToInt4(Integer.MAX_VALUE)


def analyze(text: str, stemmer: Callable[[str], str] | None = None) -> list[str]:
    """Lowercased alphanumeric tokens of ``text`` without Lucene's English stop words."""
    toks = [t for t in _TOKEN.findall(text.lower()) if t not in LUCENE_STOP_WORDS]
    return [stemmer(t) for t in toks] if stemmer else toks


def _long_to_int4(i: int) -> int:
    nbits = i.bit_length()
    if nbits < 4:
        return i
    shift = nbits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


def lucene_doc_length(n: int) -> int:
    """Length ``n`` after Lucene 8's one-byte norm round trip (``intToByte4``/``byte4ToInt``)."""
    if n < _NUM_FREE_VALUES:
        return n
    return _NUM_FREE_VALUES + _int4_to_long(_long_to_int4(n - _NUM_FREE_VALUES))


def product_document(product) -> str:
    """The indexed ``contents`` of one product (``convert_product_file_format.py``)."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}"
                                for name, values in product.options.items())
    first_bullet = product.bullet_points[0] if product.bullet_points else ""
    return " ".join([product.title, product.description, first_bullet, option_text]).lower()


class BM25Index:
    """Lucene-8-style BM25 over ``docs`` (strings) with ids ``ids``.

    Storage: a CSC term-document matrix ``tf`` (float64[N, V]); ``inv`` (float64[N]) holds
    ``k1 * (1 - b + b * L_d / avgdl)``. ``search`` is vectorised over the postings of the query
    terms and memoised per query string (GRPO groups repeat queries).
    """

    def __init__(self, docs: Sequence[str], ids: Sequence[str], k1: float = 0.9, b: float = 0.4,
                 stemmer: Callable[[str], str] | None = None, cache_size: int = 4096) -> None:
        if len(docs) != len(ids):
            raise ValueError(f"{len(docs)} documents but {len(ids)} ids")
        self.ids = list(ids)
        self.k1, self.b, self.stemmer = float(k1), float(b), stemmer
        vocab: dict[str, int] = {}
        rows, cols, counts = array("q"), array("q"), array("d")  # compact for 1M+ documents
        lengths = np.zeros(len(docs), dtype=np.int64)
        for d, text in enumerate(docs):
            toks = analyze(text, stemmer)
            lengths[d] = len(toks)
            for t, c in Counter(toks).items():
                rows.append(d)
                cols.append(vocab.setdefault(t, len(vocab)))
                counts.append(c)
        n, v = len(docs), len(vocab)
        self.vocab = vocab
        self.tf = sp.csc_matrix((np.frombuffer(counts), (np.frombuffer(rows, dtype=np.int64),
                                                         np.frombuffer(cols, dtype=np.int64))),
                                shape=(n, v))
        self.tf.sort_indices()
        df = np.diff(self.tf.indptr).astype(np.float64)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))
        avgdl = lengths.sum() / max(n, 1)
        quant = {int(x): lucene_doc_length(int(x)) for x in np.unique(lengths)}
        stored = np.array([quant[int(x)] for x in lengths], dtype=np.float64)
        self.norm = self.k1 * ((1.0 - self.b) + self.b * stored / avgdl if avgdl > 0
                               else np.full(n, 1.0 - self.b))
        # rank of each id in string order: the tie-breaker
        order = sorted(range(n), key=lambda i: self.ids[i])
        self.id_rank = np.empty(n, dtype=np.int64)
        self.id_rank[order] = np.arange(n)
        self._cache: OrderedDict[tuple[str, int], list[int]] = OrderedDict()
        self._cache_size = int(cache_size)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """float64[N]: BM25 score of every document for ``query`` (0 where no term matches)."""
        counts: dict[int, int] = {}
        for t in analyze(query, self.stemmer):
            j = self.vocab.get(t)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        out = np.zeros(len(self.ids))
        if not counts:
            return out
        cols = np.fromiter(counts.keys(), dtype=np.int64)
        weight = np.fromiter(counts.values(), dtype=np.float64) * self.idf[cols]
        starts, ends = self.tf.indptr[cols], self.tf.indptr[cols + 1]
        sizes = ends - starts
        pos = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
        docs = self.tf.indices[pos]
        tf = self.tf.data[pos]
        contrib = np.repeat(weight, sizes) * tf / (tf + self.norm[docs])
        return np.bincount(docs, weights=contrib, minlength=len(self.ids))

    def search(self, query: str, k: int = 50) -> list[int]:
        """Indices of the top ``k`` matching documents, best first (ties: id ascending)."""
        key = (query, int(k))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return list(hit)
        s = self.scores(query)
        cand = np.flatnonzero(s > 0)
        order = cand[np.lexsort((self.id_rank[cand], -s[cand]))][:k]
        result = order.tolist()
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return list(result)

    @classmethod
    def from_products(cls, products: Iterable, **kwargs) -> "BM25Index":
        products = list(products)
        return cls([product_document(p) for p in products], [p.asin for p in products], **kwargs)
