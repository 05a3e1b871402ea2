"""Learning-with-augmented-classes datasets: the authors' splits (``utils_data.py``; other-papers.md
§1.2) over sklearn's bundled digits (embedded), the UCI ``.mat`` files of the authors' repository and
the MNIST-format image sets (paper).

Every variant writes a classic-study dataset (``repro.classic.data``)::

    X_train [n_l, d]  Y_train [n_l]   labelled examples of the K known classes (labels 0..K-1)
    X_unlabeled [n_u, d]              the unlabelled mixture, augmented classes included
    Y_unlabeled [n_u]                 its true labels (augmented = K): diagnostics only, no learner reads them
    X_test [n_t, d]   Y_test [n_t]    test set, augmented classes merged into label K
    meta.json: n_classes = K + 1, n_known = K, theta_true (known share of the unlabelled data),
               theta_km1 / theta_km2 (KM estimates from cross-fitted SVM scores), protocol, classes

Splits (both draw from one random permutation of all examples, seeded by ``seed``):

* ``uci`` (``make_uci_mpu_train_set``): the first ⌊(C+1)/2⌋ classes are known. Per class k with
  prior π_k: ⌈n_u·π_k⌉ unlabelled, then (known classes) ⌈n_l·π_k/Σ_known π⌉ labelled, then
  ⌈n_t·π_k⌉ test examples; each set is cut to n_l / n_u / n_t in permutation order.
* ``per_class`` (``make_cv_mpu_train_set``): fixed counts per class (MNIST: 1000 unlabelled,
  4000 labelled for the known classes 0-5, 100 test).
"""

from __future__ import annotations

import gzip
import logging
import math
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio
from repro.classic.data import write_dataset
from repro.registry import DATASETS

log = logging.getLogger(__name__)

GLAC_COMMIT = "e411a639716114bd7f36619afb113163a3b05be8"
#: the authors' repository ships these four UCI sets as .mat files (data [n, d], label one-hot [n, C]);
#: har and usps come from their public releases (below)
UCI_BASE_URL = f"https://raw.githubusercontent.com/Shuijing2018/GLAC_Mindspore/{GLAC_COMMIT}/dataset"
UCI_SETS = ("msplice", "normal", "optdigits", "texture")
#: MNIST-format releases (the four idx files each); torchvision's mirrors
IDX_BASE_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    "kmnist": "http://codh.rois.ac.jp/kmnist/dataset/kmnist",
}
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")


# --- splits -----------------------------------------------------------------------------------
def _take(order_labels: np.ndarray, classes: np.ndarray, counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per class, consecutive runs of its examples (in permutation order) for each part, in the
    order of ``counts`` (e.g. unlabelled, labelled, test). Returns part -> bool mask [n]."""
    masks = {part: np.zeros(len(order_labels), bool) for part in counts}
    for j, c in enumerate(classes):
        idx = np.flatnonzero(order_labels == c)
        need = sum(int(v[j]) for v in counts.values())
        if need > len(idx):
            raise ValueError(f"class {c} has {len(idx)} examples, the split needs {need} "
                             f"({', '.join(f'{p} {int(v[j])}' for p, v in counts.items())}); use smaller sizes")
        lo = 0
        for part, v in counts.items():
            masks[part][idx[lo: lo + int(v[j])]] = True
            lo += int(v[j])
    return masks


def lac_split(x: np.ndarray, y: np.ndarray, seed: int, protocol: str, *, n_labeled: int = 500,
              n_unlabeled: int = 1000, n_test: int = 1000, known_classes: list | None = None,
              per_class: dict[str, int] | None = None) -> dict[str, Any]:
    """Split ``x`` [n, d], ``y`` [n] into labelled / unlabelled / test sets (module docstring).

    Returns the arrays (``X_train``... as in the module docstring) plus ``classes`` (original class
    ids: known ones in label order, then the augmented ones) and ``n_known``."""
    classes = np.unique(y)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm]
    if protocol == "uci":
        known = classes[: (len(classes) + 1) // 2]
        prior = np.array([np.mean(y == c) for c in classes])
        is_known = np.isin(classes, known)
        n_u = np.ceil(n_unlabeled * prior).astype(int)
        n_l = np.where(is_known, np.ceil(n_labeled * prior / prior[is_known].sum()), 0).astype(int)
        n_t = np.ceil(n_test * prior).astype(int)
        caps = {"unlabeled": n_unlabeled, "train": n_labeled, "test": n_test}
    elif protocol == "per_class":
        if known_classes is None or per_class is None:
            raise ValueError("protocol per_class needs known_classes and per_class {labeled, unlabeled, test}")
        known = np.asarray(known_classes)
        if not np.isin(known, classes).all():
            raise ValueError(f"known_classes {list(known)} not all among the classes {list(classes)}")
        is_known = np.isin(classes, known)
        n_u = np.full(len(classes), per_class["unlabeled"])
        n_l = np.where(is_known, per_class["labeled"], 0)
        n_t = np.full(len(classes), per_class["test"])
        caps = {"unlabeled": None, "train": None, "test": None}
    else:
        raise ValueError(f"protocol {protocol!r}: allowed uci, per_class")
    masks = _take(y, classes, {"unlabeled": n_u, "train": n_l, "test": n_t})
    augmented = classes[~np.isin(classes, known)]
    order = np.concatenate([known, augmented])
    k = len(known)
    label = {c: min(i, k) for i, c in enumerate(order)}  # augmented classes -> K
    lut = np.vectorize(label.get, otypes=[np.int64])
    out: dict[str, Any] = {}
    for part, mask in masks.items():
        xs, ys = x[mask][: caps[part]], y[mask][: caps[part]]
        out[f"X_{part}"], out[f"Y_{part}"] = xs.astype(np.float32), lut(ys)
    out["classes"], out["n_known"] = [c.item() for c in order], k
    return out


def _write(out_dir: Path, split: dict[str, Any], meta: dict[str, Any], manifest: dict[str, Any],
           km_folds: int, km1_subsample: list[int] | None, seed: int) -> None:
    from repro.studies.nrpr.prior import estimate_known_prior  # noqa: PLC0415  (sklearn: fetch jobs only)

    k = split["n_known"]
    xl, xu = split["X_train"], split["X_unlabeled"]
    if km1_subsample:  # KM is O(n²) in memory: estimate on a random subsample of each set
        rng = np.random.default_rng([seed, 1])
        xl = xl[rng.permutation(len(xl))[: km1_subsample[0]]]
        xu = xu[rng.permutation(len(xu))[: km1_subsample[1]]]
    est = estimate_known_prior(xl, xu, folds=km_folds)
    arrays = {key: v for key, v in split.items() if key.startswith(("X_", "Y_"))}
    meta = {**meta, "task": "multiclass", "n_classes": k + 1, "n_known": k, "augmented_label": k,
            "classes": split["classes"],
            "theta_true": float(np.mean(split["Y_unlabeled"] < k)),
            "theta_km1": est.km1, "theta_km2": est.km2,
            "km": {"folds": km_folds, "kernel_width": est.kernel_width, "rkhs_distance": est.rkhs_distance,
                   "n_labeled": int(len(xl)), "n_unlabeled": int(len(xu))}}
    log.info("θ: true %.3f, KM1 %.3f, KM2 %.3f", meta["theta_true"], est.km1, est.km2)
    write_dataset(out_dir, arrays, meta, manifest)


def _params(params: dict, defaults: dict[str, Any], name: str) -> dict[str, Any]:
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ValueError(f"datasets.{name}: unknown key(s) {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **(params or {})}


# --- embedded: sklearn's bundled digits (the UCI Optdigits test portion) -------------------------
EMBEDDED_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    # deviation: 250/500/500 instead of the paper's 500/1000/1000 (same 1:2:2 ratio): the bundled
    # digits have 1797 examples (~178 per class), the paper's Optdigits 5620
    "n_labeled": 250, "n_unlabeled": 500, "n_test": 500,
    "km_folds": 5,
}


@DATASETS.register("lac_digits/embedded")
def generate_digits(out_dir: Path, params: dict) -> None:
    """UCI protocol on sklearn's ``load_digits`` (8x8 Optdigits, pixel counts 0-16 scaled to [0, 1])."""
    from sklearn.datasets import load_digits  # noqa: PLC0415

    p = _params(params, EMBEDDED_DEFAULTS, "lac_digits/embedded")
    x, y = load_digits(return_X_y=True)
    split = lac_split(x / 16.0, y, p["seed"], "uci", n_labeled=p["n_labeled"], n_unlabeled=p["n_unlabeled"],
                      n_test=p["n_test"])
    _write(Path(out_dir), split, {"protocol": "uci", "source": "sklearn.datasets.load_digits", "params": p},
           {"dataset": "lac_digits/embedded", "source": "sklearn.datasets.load_digits (UCI Optdigits, test part)",
            "license": "CC BY 4.0 (UCI ML repository)", "params": p}, p["km_folds"], None, p["seed"])


# --- paper: downloads --------------------------------------------------------------------------
def _download_all(files: dict[str, str], dl_dir: Path, expected: dict[str, str]) -> dict[str, dict]:
    """name -> url downloaded into ``dl_dir`` (verified against ``expected`` where given)."""
    from repro.data.download import download  # noqa: PLC0415

    records = {}
    for name, url in files.items():
        dest = dl_dir / name
        if dest.exists():
            digest = rio.sha256_file(dest)
            if name in expected and digest != expected[name].lower():
                dest.unlink()
                raise ValueError(f"sha256 mismatch for {name}: expected {expected[name].lower()}, got {digest}")
        else:
            log.info("downloading %s", url)
            digest = download(url, dest, expected_sha256=expected.get(name))
        records[name] = {"url": url, "sha256": digest, "bytes": dest.stat().st_size}
    return records


def _fetch(name: str, out_dir: Path, files: dict[str, str], params: dict, load, split_kw: dict, meta: dict,
           source: str, license_: str) -> None:
    out_dir = Path(out_dir)
    dl_dir = Path(params.get("download_dir") or out_dir.parent / f".{out_dir.name}.downloads")
    existed = dl_dir.exists()
    try:
        records = _download_all(files, dl_dir, {k: v for k, v in (params.get("sha256") or {}).items()})
    except ValueError:
        if not existed:
            shutil.rmtree(dl_dir, ignore_errors=True)
        raise
    x, y = load(dl_dir)
    split = lac_split(x, y, params["seed"], **split_kw)
    _write(out_dir, split, {**meta, "params": params},
           {"dataset": name, "source": source, "license": license_, "downloads": records, "params": params},
           params["km_folds"], params.get("km1_subsample"), params["seed"])
    if not params.get("keep_downloads", False):
        shutil.rmtree(dl_dir, ignore_errors=True)


UCI_DEFAULTS: dict[str, Any] = {"seed": 0, "base_url": UCI_BASE_URL, "sha256": {}, "download_dir": None,
                                "keep_downloads": False, "km_folds": 5, "km1_subsample": None,
                                "n_labeled": 500, "n_unlabeled": 1000, "n_test": 1000}


def load_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x [n, d] float, y [n] int) from a ``.mat`` file with ``data`` and ``label`` (one-hot [n, C] or
    class ids [n, 1])."""
    from scipy.io import loadmat  # noqa: PLC0415

    try:
        mat = loadmat(path)
    except (NotImplementedError, ValueError) as exc:
        raise ValueError(f"{path}: not a MATLAB v4-v7.2 file scipy can read ({exc})") from None
    if "data" not in mat or "label" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: needs variables `data` and `label`, has {names}")
    x, lab = np.asarray(mat["data"], np.float64), np.asarray(mat["label"])
    y = lab.argmax(1) if lab.ndim == 2 and lab.shape[1] > 1 else lab.reshape(-1).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{path}: data has {len(x)} rows, label {len(y)}")
    return x, y - y.min()


def _register_uci(ds: str) -> None:
    @DATASETS.register(f"lac_uci/{ds}")
    def fetch(out_dir: Path, params: dict) -> None:
        p = _params(params, UCI_DEFAULTS, f"lac_uci/{ds}")
        _fetch(f"lac_uci/{ds}", out_dir, {f"{ds}.mat": f"{p['base_url'].rstrip('/')}/{ds}.mat"}, p,
               lambda d: load_mat(d / f"{ds}.mat"),
               {"protocol": "uci", "n_labeled": p["n_labeled"], "n_unlabeled": p["n_unlabeled"], "n_test": p["n_test"]},
               {"protocol": "uci", "source": f"{ds}.mat"}, p["base_url"],
               "UCI ML repository data as redistributed by the authors (github.com/Shuijing2018/GLAC_Mindspore)")

    fetch.__doc__ = f"UCI {ds} from the authors' repository (dataset/{ds}.mat), UCI protocol 500/1000/1000."


for _ds in UCI_SETS:
    _register_uci(_ds)


# --- Har and Usps: not in the authors' repository; the public releases instead [I] --------------
#: USPS as LIBSVM's scaled copy (7,291 train + 2,007 test, 256 features in [-1, 1], labels 1-10);
#: HAR as UCI's zip (7,352 + 2,947 windows, 561 features, 6 activities). Which copies the authors'
#: har.mat / usps.mat came from was not found; the UCI protocol draws from train + test pooled.
USPS_BASE_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass"
HAR_URL = "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"


def load_svmlight_pool(paths: list[Path], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(x [n, n_features], y [n] from 0) of LIBSVM-format files (``.bz2`` or plain), concatenated."""
    import bz2  # noqa: PLC0415

    from sklearn.datasets import load_svmlight_file  # noqa: PLC0415

    xs, ys = [], []
    for path in paths:
        with (bz2.open if path.suffix == ".bz2" else open)(path, "rb") as fh:
            try:
                x, y = load_svmlight_file(fh, n_features=n_features)
            except (ValueError, OSError) as exc:
                raise ValueError(f"{path}: not a LIBSVM file with {n_features} features ({exc})") from None
        xs.append(x.toarray())
        ys.append(y.astype(np.int64))
    y = np.concatenate(ys)
    return np.concatenate(xs), y - y.min()


def load_har_zip(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x [n, 561], y [n] from 0) of UCI HAR's ``train``/``test`` X/y text files, pooled. The zip may
    hold the ``UCI HAR Dataset/`` folder or, as UCI's current download does, a zip of it."""
    import io  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    zf = zipfile.ZipFile(path)
    inner = [n for n in zf.namelist() if n.endswith("UCI HAR Dataset.zip") and not n.startswith("__MACOSX")]
    if inner:
        zf = zipfile.ZipFile(io.BytesIO(zf.read(inner[0])))
    names = zf.namelist()
    xs, ys = [], []
    for part in ("train", "test"):
        found = {}
        for key in (f"X_{part}.txt", f"y_{part}.txt"):
            hits = [n for n in names if n.endswith(f"{part}/{key}") and not n.startswith("__MACOSX")]
            if not hits:
                raise ValueError(f"{path}: no {part}/{key} inside (not UCI HAR's release?)")
            found[key] = np.loadtxt(io.BytesIO(zf.read(hits[0])), ndmin=2)
        x, y = found[f"X_{part}.txt"], found[f"y_{part}.txt"].reshape(-1)
        if len(x) != len(y):
            raise ValueError(f"{path}: {part} has {len(x)} rows of X and {len(y)} labels")
        xs.append(x)
        ys.append(y.astype(np.int64))
    y = np.concatenate(ys)
    return np.concatenate(xs), y - y.min()


PUBLIC_UCI = {
    # name -> (files given the base url, loader over the download folder, source, license)
    "usps": (lambda base: {f: f"{base}/{f}" for f in ("usps.bz2", "usps.t.bz2")},
             lambda d: load_svmlight_pool([d / "usps.bz2", d / "usps.t.bz2"], 256),
             "LIBSVM's multiclass usps / usps.t (Hull 1994)", "see the LIBSVM data page"),
    "har": (lambda base: {"har.zip": base},
            lambda d: load_har_zip(d / "har.zip"),
            "UCI Human Activity Recognition Using Smartphones (Anguita et al. 2013)", "CC BY 4.0 (UCI)"),
}
PUBLIC_UCI_URLS = {"usps": USPS_BASE_URL, "har": HAR_URL}


def _register_public_uci(ds: str) -> None:
    files, load, source, license_ = PUBLIC_UCI[ds]

    @DATASETS.register(f"lac_uci/{ds}")
    def fetch(out_dir: Path, params: dict) -> None:
        p = _params(params, {**UCI_DEFAULTS, "base_url": PUBLIC_UCI_URLS[ds]}, f"lac_uci/{ds}")
        base = p["base_url"].rstrip("/")
        _fetch(f"lac_uci/{ds}", out_dir, files(base), p, load,
               {"protocol": "uci", "n_labeled": p["n_labeled"], "n_unlabeled": p["n_unlabeled"], "n_test": p["n_test"]},
               {"protocol": "uci", "source": source}, base, license_)

    fetch.__doc__ = f"UCI {ds} from its public release ({source}) [I], UCI protocol 500/1000/1000."


for _ds in PUBLIC_UCI:
    _register_public_uci(_ds)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (``.gz`` or plain; LeCun's MNIST format): big-endian magic 0x0000 + dtype byte +
    ndim byte, ndim uint32 sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an idx file (bad magic {raw[:4]!r})")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{path}: unknown idx dtype code {raw[2]:#x}")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4: 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path}: header says {shape} ({math.prod(shape)} values), file has {data.size}")
    return data.reshape(shape)


def load_idx_set(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Train + test images of an MNIST-format release concatenated (as ``make_cv_mpu_train_set``),
    flattened and scaled to [0, 1] (``ToTensor``): (x [n, h·w] float32, y [n] int)."""
    xs, ys = [], []
    for part in ("train", "t10k"):
        img = read_idx(folder / f"{part}-images-idx3-ubyte.gz")
        lab = read_idx(folder / f"{part}-labels-idx1-ubyte.gz")
        if len(img) != len(lab):
            raise ValueError(f"{folder}: {part} has {len(img)} images and {len(lab)} labels")
        xs.append(img.reshape(len(img), -1).astype(np.float32) / 255.0)
        ys.append(lab.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


IDX_DEFAULTS: dict[str, Any] = {"seed": 0, "base_url": None, "sha256": {}, "download_dir": None,
                                "keep_downloads": False, "km_folds": 5, "km1_subsample": [500, 1000],
                                "known_classes": [0, 1, 2, 3, 4, 5],
                                "per_class": {"labeled": 4000, "unlabeled": 1000, "test": 100}}


def _register_idx(ds: str) -> None:
    @DATASETS.register(f"lac_mnist/{ds}")
    def fetch(out_dir: Path, params: dict) -> None:
        p = _params(params, IDX_DEFAULTS, f"lac_mnist/{ds}")
        base = (p["base_url"] or IDX_BASE_URLS[ds]).rstrip("/")
        _fetch(f"lac_mnist/{ds}", out_dir, {f: f"{base}/{f}" for f in IDX_FILES}, p, load_idx_set,
               {"protocol": "per_class", "known_classes": p["known_classes"], "per_class": p["per_class"]},
               {"protocol": "per_class", "source": f"{ds} idx files"}, base,
               "see the release (MNIST: CC BY-SA 3.0; Fashion-MNIST: MIT; KMNIST: CC BY-SA 4.0)")

    fetch.__doc__ = f"{ds} (idx .gz files), known classes 0-5: 4000 labelled / 1000 unlabelled / 100 test per class."


for _ds in IDX_BASE_URLS:
    _register_idx(_ds)
