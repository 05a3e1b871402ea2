"""OOC-PLL datasets: the embedded digits miniature and the paper's CIFAR-10 grid.

``oocpll-digits/embedded`` (generated): sklearn's bundled digits (8x8, the UCI Optdigits test
set), classes 0-5 known and 6-9 the open-set pool, as the miniature of reference/other-papers.md
§2.4 (q = 0.3, cs_rate = 0.2, os_rate = 0.4: 783 known + 313 open-set training examples, 300 test).

``cifar10-ooc/<source>-q<q>-cs<cs>-os<os>`` (downloaded): the 18 configurations of the authors'
``run_c-{s,c,i}.sh``: CIFAR-10 known (K = 10) and an open-set source among SVHN (train split),
CIFAR-100 (train) and ImageNet32 (one train batch file), q in {0.1, 0.3, 0.5} and (cs, os) in
{(0.2, 0.4), (0.3, 0.6)}. Archives are downloaded once into a shared cache (``download_dir``,
default ``resources/datasets/cifar10-ooc/.downloads``; a file lock lets parallel fetch jobs share
it), checked against the md5 torchvision publishes and any pinned sha256, and their sha256 is
recorded in MANIFEST.json.

Both write ``data.npz``: ``X_train`` (known examples, then open-set ones), ``Y_train`` (true class,
-1 for open-set), ``S_train`` uint8[N, K] candidate sets, ``G_train`` int8[N] group codes (0
normal, 1 closed-set OOC, 2 open-set OOC; diagnostics only), ``X_test``, ``Y_test`` (known classes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from repro import io as rio
from repro.classic.data import write_dataset
from repro.registry import DATASETS
from repro.studies.oocpll.candidates import build_ooc_train

log = logging.getLogger(__name__)

# --- embedded ------------------------------------------------------------------------------------
EMBEDDED_DEFAULTS: dict[str, Any] = {"seed": 0, "known_classes": [0, 1, 2, 3, 4, 5], "n_test": 300,
                                     "partial_rate": 0.3, "cs_rate": 0.2, "os_rate": 0.4}


def _check_keys(params: dict, allowed: set[str], name: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise KeyError(f"unknown {name} params {unknown}; allowed: {sorted(allowed)}")


def _meta(K: int, out: dict[str, np.ndarray], p: dict, **extra: Any) -> dict[str, Any]:
    G = out["G"]
    return {"task": "multiclass", "n_classes": K, "n_known_train": int((G != 2).sum()),
            "partial_rate": p["partial_rate"], "cs_rate": p["cs_rate"], "os_rate": p["os_rate"],
            "group_counts": {"normal": int((G == 0).sum()), "closed": int((G == 1).sum()),
                             "open": int((G == 2).sum())},
            "groups": "G_train: 0 normal, 1 closed-set OOC, 2 open-set OOC (diagnostics only)", **extra}


@DATASETS.register("oocpll-digits/embedded")
def generate_digits(out_dir: Path, params: dict) -> None:
    """Params (defaults ``EMBEDDED_DEFAULTS``): ``seed``, ``known_classes`` (the rest are the open-set
    pool), ``n_test`` (known-class test examples), ``partial_rate``, ``cs_rate``, ``os_rate``."""
    from sklearn.datasets import load_digits  # noqa: PLC0415 (only the fetch job pays the import)

    _check_keys(params, set(EMBEDDED_DEFAULTS), "oocpll-digits/embedded")
    p = {**EMBEDDED_DEFAULTS, **params}
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)  # pixel counts 0..16 -> [0, 1]
    known = [int(k) for k in p["known_classes"]]
    if len(set(known)) != len(known) or not known or not set(known) <= set(range(10)):
        raise ValueError(f"known_classes must be distinct digits 0-9, got {known}")
    K = len(known)
    rng = np.random.default_rng(int(p["seed"]))
    is_known = np.isin(y, known)
    kidx = rng.permutation(np.flatnonzero(is_known))
    if not 0 < int(p["n_test"]) < len(kidx):
        raise ValueError(f"n_test must lie in (0, {len(kidx)}), got {p['n_test']}")
    te, tr = kidx[: int(p["n_test"])], kidx[int(p["n_test"]):]
    relabel = np.full(10, -1)
    relabel[known] = np.arange(K)
    pool = np.flatnonzero(~is_known)
    out = build_ooc_train(relabel[y[tr]], len(pool), K, float(p["partial_rate"]), float(p["cs_rate"]),
                          float(p["os_rate"]), rng)
    arrays = {"X_train": np.concatenate([X[tr], X[pool[out["pool_index"]]]]), "Y_train": out["Y"],
              "S_train": out["S"], "G_train": out["G"], "X_test": X[te], "Y_test": relabel[y[te]]}
    meta = _meta(K, out, p, known_classes=known, open_set_classes=sorted(set(range(10)) - set(known)))
    write_dataset(out_dir, arrays, meta, {
        "dataset": "oocpll-digits/embedded", "params": p,
        "source": "sklearn.datasets.load_digits (UCI Optdigits test set, bundled with scikit-learn)",
        "license": "UCI ML repository (CC BY 4.0)"})


# --- paper scale: downloads ------------------------------------------------------------------------
# file name -> (default URL, md5 published by torchvision's dataset classes, or None)
ARCHIVES: dict[str, tuple[str, str | None]] = {
    "cifar-10-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                               "c58f30108f718f92721af3b95e74349a"),
    "cifar-100-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                                "eb9058c3a382ffc7106e4002c42a8d85"),
    "train_32x32.mat": ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                        "e26dedcc434d2e4c54c9b2d4a06d8373"),
    # Downsampled ImageNet 32x32 (Chrabaszcz et al. 2017) from image-net.org: a login is needed, so
    # point `urls` at a copy you downloaded; no digest is published (pin `sha256` once known).
    "Imagenet32_train.zip": ("https://image-net.org/data/downsample/Imagenet32_train.zip", None),
}
SOURCE_FILES = {"svhn": "train_32x32.mat", "cifar100": "cifar-100-python.tar.gz",
                "imagenet32": "Imagenet32_train.zip"}
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # utils_data.py transforms


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 (a published checksum, not security)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_archive(name: str, url: str, dl_dir: Path, sha256: str | None) -> dict[str, Any]:
    """``dl_dir/name``, downloaded once (resumable, under a file lock) and verified: the md5 of
    ``ARCHIVES`` and ``sha256`` when given. A mismatch deletes the file and raises ``ValueError``.
    Returns the download record {url, sha256, md5, bytes}."""
    from repro.data.download import download  # noqa: PLC0415

    dest = dl_dir / name
    with _locked(dest):
        digest = rio.sha256_file(dest) if dest.exists() else download(url, dest)
        md5 = _md5(dest)
        want_md5 = ARCHIVES.get(name, ("", None))[1]
        for what, want, got in (("sha256", sha256, digest), ("md5", want_md5, md5)):
            if want and want.lower() != got:
                dest.unlink()
                raise ValueError(f"{what} mismatch for {name} from {url}: expected {want.lower()}, got {got}")
    return {"url": url, "sha256": digest, "md5": md5, "bytes": dest.stat().st_size}


def _unpickle(blob: bytes) -> dict:
    return pickle.loads(blob, encoding="latin1")  # noqa: S301 (the CIFAR/ImageNet32 release format)


def _rows_to_nhwc(data: np.ndarray, side: int = 32) -> np.ndarray:
    """uint8[n, 3 * side^2] (channel planes, as CIFAR and ImageNet32 store them) -> uint8[n, side, side, 3]."""
    return np.asarray(data, np.uint8).reshape(-1, 3, side, side).transpose(0, 2, 3, 1).copy()


def read_cifar10(archive: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cifar-10-python.tar.gz -> (x_train uint8[50000, 32, 32, 3], y_train, x_test, y_test)."""
    parts: dict[str, dict] = {}
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf.getmembers():
            base = Path(member.name).name
            if member.isfile() and (base.startswith("data_batch_") or base == "test_batch"):
                parts[base] = _unpickle(tf.extractfile(member).read())
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in [*names, "test_batch"] if n not in parts]
    if missing:
        raise ValueError(f"{archive}: not the CIFAR-10 python release (missing {missing})")
    x_tr = np.concatenate([_rows_to_nhwc(parts[n]["data"]) for n in names])
    y_tr = np.concatenate([np.asarray(parts[n]["labels"], np.int64) for n in names])
    return x_tr, y_tr, _rows_to_nhwc(parts["test_batch"]["data"]), np.asarray(parts["test_batch"]["labels"], np.int64)


def read_cifar100_train(archive: Path) -> np.ndarray:
    """cifar-100-python.tar.gz -> its train images uint8[50000, 32, 32, 3]."""
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf.getmembers():
            if member.isfile() and member.name.endswith("cifar-100-python/train"):
                return _rows_to_nhwc(_unpickle(tf.extractfile(member).read())["data"])
    raise ValueError(f"{archive}: no cifar-100-python/train member (not the CIFAR-100 python release)")


def read_svhn(mat: Path) -> np.ndarray:
    """SVHN train_32x32.mat (X uint8[32, 32, 3, n]) -> uint8[n, 32, 32, 3]."""
    from scipy.io import loadmat  # noqa: PLC0415

    X = loadmat(mat)["X"]
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3):
        raise ValueError(f"{mat}: X has shape {X.shape}, expected (32, 32, 3, n) (SVHN cropped digits)")
    return np.ascontiguousarray(X.transpose(3, 0, 1, 2))


def read_imagenet32_batch(archive: Path, batch: int) -> np.ndarray:
    """Imagenet32_train.zip -> the images of ``train_data_batch_<batch>`` uint8[n, 32, 32, 3]."""
    want = f"train_data_batch_{batch}"
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if Path(name).name == want:
                return _rows_to_nhwc(_unpickle(zf.read(name))["data"])
    raise ValueError(f"{archive}: no member {want} (the Imagenet32_train.zip release has batches 1-10)")


def read_open_set(source: str, path: Path, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The open-set pool of ``source`` and what was read; ImageNet32 draws one batch file 1-10 with
    ``rng`` as the authors' loader does."""
    if source == "svhn":
        return read_svhn(path), {"split": "train"}
    if source == "cifar100":
        return read_cifar100_train(path), {"split": "train"}
    batch = int(rng.integers(1, 11))
    return read_imagenet32_batch(path, batch), {"split": f"train_data_batch_{batch}"}


PAPER_KEYS = {"seed", "urls", "sha256", "download_dir"}


def fetch_cifar10_ooc(out_dir: Path, params: dict, *, source: str, partial_rate: float, cs_rate: float,
                      os_rate: float) -> None:
    """Build one grid configuration from the downloaded releases. Params: ``seed`` (data generation;
    the authors' scripts use 7193 for SVHN/ImageNet32 and 5406 for CIFAR-100), ``urls`` {file name:
    URL} over ``ARCHIVES`` (e.g. a ``file://`` mirror), ``sha256`` {file name: hex} to pin,
    ``download_dir`` (the shared cache)."""
    _check_keys(params, PAPER_KEYS, f"cifar10-ooc/{source}")
    out_dir = Path(out_dir)
    urls = {k: v[0] for k, v in ARCHIVES.items()} | dict(params.get("urls") or {})
    pins = {k: str(v).lower() for k, v in (params.get("sha256") or {}).items()}
    dl_dir = Path(params.get("download_dir") or out_dir.parent / ".downloads")
    files = ["cifar-10-python.tar.gz", SOURCE_FILES[source]]
    records = {f: fetch_archive(f, urls[f], dl_dir, pins.get(f)) for f in files}
    x_tr, y_tr, x_te, y_te = read_cifar10(dl_dir / files[0])
    rng = np.random.default_rng(int(params.get("seed", 0)))
    pool, read = read_open_set(source, dl_dir / files[1], rng)
    p = {"partial_rate": partial_rate, "cs_rate": cs_rate, "os_rate": os_rate}
    out = build_ooc_train(y_tr, len(pool), 10, partial_rate, cs_rate, os_rate, rng)
    arrays = {"X_train": np.concatenate([x_tr, pool[out["pool_index"]]]), "Y_train": out["Y"],
              "S_train": out["S"], "G_train": out["G"], "X_test": x_te, "Y_test": y_te}
    meta = _meta(10, out, p, open_set_source=source, open_set_read=read, image_layout="nhwc uint8",
                 normalisation_mean_std=CIFAR_MEAN_STD)
    write_dataset(out_dir, arrays, meta, {
        "dataset": f"cifar10-ooc/{variant_name(source, partial_rate, cs_rate, os_rate)}",
        "params": {**params, **p, "source": source}, "downloads": records,
        "source": "CIFAR-10/100 (cs.toronto.edu/~kriz), SVHN (ufldl.stanford.edu/housenumbers), "
                  "ImageNet32 (image-net.org downsampled)",
        "license": "research use under each dataset's terms"})


# --- the 18-configuration grid (run_c-s.sh, run_c-c.sh, run_c-i.sh) -------------------------------
GRID_SOURCES = ("svhn", "cifar100", "imagenet32")
GRID_PARTIAL_RATES = (0.1, 0.3, 0.5)
GRID_OOC_RATES = ((0.2, 0.4), (0.3, 0.6))


def variant_name(source: str, q: float, cs: float, os_: float) -> str:
    return f"{source}-q{q:g}-cs{cs:g}-os{os_:g}"


def _register_grid() -> None:
    for source in GRID_SOURCES:
        for q in GRID_PARTIAL_RATES:
            for cs, os_ in GRID_OOC_RATES:
                def fetch(out_dir: Path, params: dict, _s=source, _q=q, _c=cs, _o=os_) -> None:
                    fetch_cifar10_ooc(out_dir, params, source=_s, partial_rate=_q, cs_rate=_c, os_rate=_o)

                fetch.__doc__ = f"CIFAR-10 with {source} open-set examples, q={q}, cs={cs}, os={os_}."
                DATASETS.register(f"cifar10-ooc/{variant_name(source, q, cs, os_)}")(fetch)


_register_grid()
