"""Multi-label datasets of the MCC and CAMEL studies (other-papers.md §9-10).

``multilabel/embedded`` generates data whose labels are correlated through a latent structure
(no multi-label benchmark ships offline). ``mulan/<name>`` fetches a Mulan dataset (ARFF + XML
label file) with sha256 digests recorded in ``MANIFEST.json``. Both write the classic array layout
(``repro.classic.data``): ``X_train``/``Y_train``/``X_test``/``Y_test`` with ``Y`` in {0, 1}[n, q].

The embedded generator (all knobs are ``params``; defaults in ``EMBEDDED_DEFAULTS``):

1. ``n_groups`` latent topics, each active for an example with probability ``group_rate``:
   ``h`` {0,1}[n, G].
2. Each topic owns ``labels_per_group`` labels: a *head* label, on whenever the topic is active
   (flipped with probability ``label_flip``), and *tail* labels, on only when the topic is active
   and an extra coin (``tail_rate``) says so. So a tail label implies its head label and tails of one
   topic co-occur: genuine, asymmetric label correlations of the kind sparse label reconstruction
   (CAMEL) and cluster-averaged label vectors (MCC) can exploit. ``background_rate`` adds
   uncorrelated positives.
3. Features are a noisy function of the latent structure: ``x = h P + y U + e`` with topic
   directions ``P`` (norm ``group_strength``), weaker per-label directions ``U`` (norm
   ``label_strength``) and Gaussian noise ``e`` (std ``noise``), then a fixed random rotation and
   an elementwise warp ``x + warp * sin(x)`` so a kernel model has something to gain.

A tail label's own feature evidence (``label_strength``) is weak, while its topic's is strong:
predicting it well requires using the other labels of its topic.
"""

from __future__ import annotations

import logging
import re
import shutil
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from repro.classic.data import write_dataset
from repro.registry import DATASETS

log = logging.getLogger(__name__)

EMBEDDED_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_train": 200,          # small train set: where label correlations and virtual examples matter
    "n_test": 600,           # large test set: low evaluation noise
    "n_features": 30,
    "n_groups": 4,
    "labels_per_group": 3,   # 1 head + 2 tails -> q = 12 labels
    "group_rate": 0.3,
    "tail_rate": 0.5,
    "label_flip": 0.05,
    "background_rate": 0.02,
    "group_strength": 2.0,
    "label_strength": 0.5,
    "noise": 1.0,
    "warp": 0.5,
}


def _check_params(params: dict, defaults: dict, what: str) -> dict:
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise KeyError(f"unknown {what} params {unknown}; known: {sorted(defaults)}")
    return {**defaults, **(params or {})}


def generate_latent(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X float[n, d], Y {0,1}[n, q], group of each label int[q]) for n = n_train + n_test."""
    rng = np.random.default_rng([int(p["seed"]), 20200417])
    n, d = int(p["n_train"]) + int(p["n_test"]), int(p["n_features"])
    G, L = int(p["n_groups"]), int(p["labels_per_group"])
    if min(n, d, G, L) < 1:
        raise ValueError(f"multilabel/embedded: sizes must be >= 1, got n={n}, d={d}, G={G}, L={L}")
    q = G * L
    group = np.repeat(np.arange(G), L)                                     # [q]
    head = np.tile(np.arange(L) == 0, G)                                   # [q]
    h = rng.random((n, G)) < p["group_rate"]                               # [n, G]
    on = h[:, group]                                                       # topic of each label active
    flip = rng.random((n, q)) < p["label_flip"]
    tail_coin = rng.random((n, q)) < p["tail_rate"]
    y = np.where(head, on ^ flip, on & tail_coin)
    y |= rng.random((n, q)) < p["background_rate"]
    P = rng.normal(size=(G, d))
    P *= p["group_strength"] / np.linalg.norm(P, axis=1, keepdims=True)
    U = rng.normal(size=(q, d))
    U *= p["label_strength"] / np.linalg.norm(U, axis=1, keepdims=True)
    x = h @ P + y @ U + p["noise"] * rng.normal(size=(n, d))
    R, _ = np.linalg.qr(rng.normal(size=(d, d)))                           # fixed random rotation
    x = x @ R
    x = x + p["warp"] * np.sin(x)
    return x, y.astype(np.int8), group


@DATASETS.register("multilabel/embedded")
def generate_embedded(out_dir: Path, params: dict) -> None:
    """Write the generated multi-label dataset (module docstring) split into train and test."""
    p = _check_params(params, EMBEDDED_DEFAULTS, "multilabel/embedded")
    X, Y, group = generate_latent(p)
    ntr = int(p["n_train"])
    arrays = {"X_train": X[:ntr], "Y_train": Y[:ntr], "X_test": X[ntr:], "Y_test": Y[ntr:]}
    q = Y.shape[1]
    meta = {"task": "multilabel", "n_classes": q, "n_labels": q, "n_features": X.shape[1],
            "label_names": [f"t{g}_{'head' if k == 0 else f'tail{k}'}"
                            for g, k in zip(group, np.tile(np.arange(int(p["labels_per_group"])), int(p["n_groups"])))],
            "label_group": group.tolist(),
            "label_cardinality": float(Y.sum(1).mean())}
    write_dataset(out_dir, arrays, meta, {"dataset": "multilabel/embedded", "params": p,
                                          "source": "generated by repro.studies.multilabel.data (latent topics)"})
    log.info("multilabel/embedded: %d train, %d test, d=%d, q=%d -> %s", ntr, len(X) - ntr, X.shape[1], q, out_dir)


# --------------------------------------------------------------------------------------------
# ARFF (Weka) and Mulan's XML label file
# --------------------------------------------------------------------------------------------

_ATTR = re.compile(r"@attribute\s+('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)\s+(.+)$", re.IGNORECASE)


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        s = s[1:-1].replace("\\" + s[0], s[0])
    return s


def read_arff(path: Path) -> tuple[list[str], np.ndarray]:
    """(attribute names, values float[n, n_attributes]) of a dense or sparse ARFF file.

    Numeric attributes are parsed as floats; a nominal attribute ``{a, b, ...}`` becomes the index
    of its value (so ``{0, 1}`` reads as 0/1). Sparse rows (``{index value, ...}``) leave omitted
    attributes at 0 (for a nominal attribute: its first value), as the ARFF format defines.
    Missing values (``?``) and string/date attributes are refused with the file and line.
    """
    names: list[str] = []
    nominal: list[dict[str, int] | None] = []
    rows: list[np.ndarray] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@attribute"):
                    m = _ATTR.match(line)
                    if not m:
                        raise ValueError(f"{path}:{lineno}: cannot parse attribute line {line[:80]!r}")
                    name, typ = _unquote(m.group(1)), m.group(2).strip()
                    if typ.startswith("{"):
                        vals = [_unquote(v) for v in typ.strip("{}").split(",")]
                        nominal.append({v: i for i, v in enumerate(vals)})
                    elif typ.lower() in ("numeric", "real", "integer"):
                        nominal.append(None)
                    else:
                        raise ValueError(f"{path}:{lineno}: attribute {name!r} has unsupported type {typ!r} "
                                         "(numeric, real, integer or nominal {..} only)")
                    names.append(name)
                elif low.startswith("@data"):
                    in_data = True
                continue
            rows.append(_parse_row(line, nominal, path, lineno))
    if not in_data:
        raise ValueError(f"{path}: no @data section: not an ARFF file")
    return names, (np.vstack(rows) if rows else np.zeros((0, len(names))))


def _value(tok: str, nom: dict[str, int] | None, path: Path, lineno: int) -> float:
    tok = _unquote(tok)
    if tok == "?":
        raise ValueError(f"{path}:{lineno}: missing value '?' is not supported")
    if nom is None:
        return float(tok)
    if tok not in nom:
        raise ValueError(f"{path}:{lineno}: value {tok!r} not among the nominal values {list(nom)}")
    return float(nom[tok])


def _parse_row(line: str, nominal: list, path: Path, lineno: int) -> np.ndarray:
    out = np.zeros(len(nominal))
    if line.startswith("{"):
        body = line.strip("{}").strip()
        for item in filter(None, (t.strip() for t in body.split(","))):
            idx, tok = item.split(None, 1)
            j = int(idx)
            if not 0 <= j < len(nominal):
                raise ValueError(f"{path}:{lineno}: sparse index {j} out of range (0..{len(nominal) - 1})")
            out[j] = _value(tok, nominal[j], path, lineno)
        return out
    toks = line.split(",")
    if len(toks) != len(nominal):
        raise ValueError(f"{path}:{lineno}: {len(toks)} values, expected {len(nominal)} attributes")
    for j, tok in enumerate(toks):
        out[j] = _value(tok, nominal[j], path, lineno)
    return out


def read_label_names(xml_path: Path) -> list[str]:
    """Label names of a Mulan XML label file, in document order (nested labels included)."""
    root = ET.parse(xml_path).getroot()
    names = [el.attrib["name"] for el in root.iter() if el.tag.split("}")[-1] == "label"]
    if not names:
        raise ValueError(f"{xml_path}: no <label name=...> elements")
    return names


def mulan_arrays(arff: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(X float[n, d], Y {0,1}[n, q]) from a Mulan ARFF file; ``labels`` in the XML's order."""
    names, values = read_arff(arff)
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for n in labels if n not in pos]
    if missing:
        raise ValueError(f"{arff}: label attribute(s) {missing[:5]} of the XML file are not in the ARFF header")
    lab = [pos[n] for n in labels]
    feat = [i for i in range(len(names)) if i not in set(lab)]
    Y = values[:, lab]
    if not np.isin(Y, (0, 1)).all():
        raise ValueError(f"{arff}: label attributes must be nominal {{0,1}}")
    return values[:, feat], Y.astype(np.int8)


# --------------------------------------------------------------------------------------------
# Mulan fetchers
# --------------------------------------------------------------------------------------------

# name -> (train file, test file or None, xml file, n_features, n_labels). The Mulan release's
# train/test partition is used where it exists; "image" (Zhang & Zhou's 2,000 natural scenes,
# 294 features, 5 labels) is not a Mulan set and has no standard partition: split here.
MULAN = {
    "yeast": ("yeast-train.arff", "yeast-test.arff", "yeast.xml", 103, 14),
    "scene": ("scene-train.arff", "scene-test.arff", "scene.xml", 294, 6),
    "enron": ("enron-train.arff", "enron-test.arff", "enron.xml", 1001, 53),
    "image": ("image.arff", None, "image.xml", 294, 5),
}
FETCH_KEYS = {"url", "base_url", "sha256", "test_fraction", "split_seed", "download_dir"}


def _archive_name(url: str) -> str:
    """The archive's file name in ``url``: its last path part, or the last one with an archive suffix
    (SourceForge's ``.../yeast.rar/download``)."""
    parts = PurePosixPath(urllib.parse.urlparse(url).path).parts
    return next((p for p in reversed(parts) if p.lower().endswith((".rar", ".zip"))), parts[-1] if parts else url)


def _download_mulan(name: str, params: dict, dl: Path) -> tuple[dict, str]:
    """Put ``name``'s files into ``dl`` from ``url`` (a .rar/.zip archive holding them, e.g. Mulan's
    release) or ``base_url`` (a folder holding them); (download records, source)."""
    from repro.data.download import download, unpack_archive  # noqa: PLC0415

    files = [f for f in MULAN[name][:3] if f]
    url, base = params.get("url"), params.get("base_url")
    if bool(url) == bool(base):
        raise ValueError(f"mulan/{name}: set exactly one of datasets.mulan/{name}.url (a .rar or .zip archive "
                         f"holding {', '.join(files)}, e.g. Mulan's release) and .base_url (a folder holding "
                         f"them; file:// or https://) in the study's YAML (datasets.mulan/<name>); got {'both' if url else 'neither'}")
    names = [_archive_name(str(url))] if url else files
    expected = {k: v.lower() for k, v in (params.get("sha256") or {}).items()}
    bad = sorted(set(expected) - set(names))
    if bad:
        raise KeyError(f"mulan/{name}: sha256 names unknown file(s) {bad}; files: {names}")
    if base:
        records = {}
        for f in files:
            u = f"{str(base).rstrip('/')}/{f}"
            records[f] = {"url": u, "sha256": download(u, dl / f, expected.get(f), progress=False)}
        return records, str(base)
    archive = dl / names[0]
    records = {names[0]: {"url": url, "sha256": download(str(url), archive, expected.get(names[0]))}}
    found: dict[str, list[str]] = {}
    for member in unpack_archive(archive, dl / "unpacked"):
        found.setdefault(PurePosixPath(member).name, []).append(member)
    for f in files:  # by base name, wherever the archive keeps it
        if len(found.get(f, [])) != 1:
            raise ValueError(f"mulan/{name}: {url} holds {len(found.get(f, []))} files named {f} (need exactly "
                             f"one); its files: {sorted(found)[:20]}")
        shutil.move(dl / "unpacked" / found[f][0], dl / f)
    return records, str(url)


def fetch_mulan(name: str, out_dir: Path, params: dict) -> None:
    """Download ``name``'s ARFF and XML files (``_download_mulan``: from an archive ``url`` or a folder
    ``base_url``), check digests (``sha256``: {file: hex}; recorded either way) and shapes, and write
    the array dataset. Without a test file, a seeded random ``test_fraction`` split (``split_seed``)
    is made."""
    params = dict(params or {})
    unknown = sorted(set(params) - FETCH_KEYS)
    if unknown:
        raise KeyError(f"unknown mulan/{name} params {unknown}; known: {sorted(FETCH_KEYS)}")
    train_f, test_f, xml_f, d, q = MULAN[name]
    out_dir = Path(out_dir)
    dl = Path(params.get("download_dir") or out_dir.parent / f".{out_dir.name}.downloads")
    try:
        records, source = _download_mulan(name, params, dl)
        labels = read_label_names(dl / xml_f)
        Xtr, Ytr = mulan_arrays(dl / train_f, labels)
        if test_f:
            Xte, Yte = mulan_arrays(dl / test_f, labels)
            split = "the Mulan release's train/test files"
        else:
            frac, seed = float(params.get("test_fraction", 1 / 3)), int(params.get("split_seed", 0))
            if not 0 < frac < 1:
                raise ValueError(f"mulan/{name}: test_fraction must be in (0, 1), got {frac}")
            perm = np.random.default_rng(seed).permutation(len(Xtr))
            nte = int(round(frac * len(Xtr)))
            (Xte, Yte), (Xtr, Ytr) = (Xtr[perm[:nte]], Ytr[perm[:nte]]), (Xtr[perm[nte:]], Ytr[perm[nte:]])
            split = f"random {frac:.3g} test split, seed {seed}"
        if Xtr.shape[1] != d or Ytr.shape[1] != q or Xte.shape[1] != d:
            raise ValueError(f"mulan/{name}: expected {d} features and {q} labels, got "
                             f"{Xtr.shape[1]} features and {Ytr.shape[1]} labels (wrong files?)")
    except ValueError:
        shutil.rmtree(dl, ignore_errors=True)  # a wrong source: leave nothing behind
        raise
    write_dataset(out_dir, {"X_train": Xtr, "Y_train": Ytr, "X_test": Xte, "Y_test": Yte},
                  {"task": "multilabel", "n_classes": q, "n_labels": q, "n_features": d, "label_names": labels,
                   "split": split, "label_cardinality": float(np.vstack([Ytr, Yte]).sum(1).mean())},
                  {"dataset": f"mulan/{name}", "source": source, "downloads": records, "split": split,
                   "license": "Mulan datasets: see mulan.sourceforge.net/datasets-mlc.html for each set's origin"})
    shutil.rmtree(dl, ignore_errors=True)
    log.info("mulan/%s: %d train, %d test (%s) -> %s", name, len(Xtr), len(Xte), split, out_dir)


def _register(name: str) -> None:
    def fetch(out_dir: Path, params: dict) -> None:
        fetch_mulan(name, out_dir, params)

    fetch.__doc__ = f"Fetch Mulan's {name} (``fetch_mulan``)."
    DATASETS.register(f"mulan/{name}")(fetch)


for _name in MULAN:
    _register(_name)
