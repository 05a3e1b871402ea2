"""LAC datasets: the authors' split protocols, the embedded digits generator, and the paper-scale
fetchers against local mirrors laid out like the real sources (the authors' ``dataset/*.mat``
folder; MNIST-format ``*-idx?-ubyte.gz`` releases)."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct

import numpy as np
import pytest
from scipy.io import savemat

from repro.classic.data import load_dataset
from repro.registry import DATASETS
from repro.studies.nrpr.data import IDX_FILES, generate_digits, lac_split, load_mat, read_idx


def _toy(n_per_class=(40, 40, 80, 40)):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.stack([y, np.arange(len(y))], 1).astype(float)  # column 1: a unique row id
    return x, y


def test_uci_split_counts_follow_the_class_priors():
    x, y = _toy()  # priors 0.2, 0.2, 0.4, 0.2; 4 classes -> (4+1)//2 = 2 known
    s = lac_split(x, y, seed=0, protocol="uci", n_labeled=20, n_unlabeled=30, n_test=10)
    assert s["n_known"] == 2 and s["classes"] == [0, 1, 2, 3]
    # labelled: ceil(20 * 0.2/0.4) = 10 per known class; unlabelled ceil(30·π): 6, 6, 12, 6; test 2, 2, 4, 2
    assert np.bincount(s["Y_train"]).tolist() == [10, 10]
    assert np.bincount(s["Y_unlabeled"]).tolist() == [6, 6, 18]  # classes 2 and 3 merged into label 2
    assert np.bincount(s["Y_test"]).tolist() == [2, 2, 6]
    ids = np.concatenate([s[f"X_{p}"][:, 1] for p in ("train", "unlabeled", "test")])
    assert len(np.unique(ids)) == len(ids)  # the three sets are disjoint
    orig = {int(i): int(c) for i, c in zip(x[:, 1], y)}
    assert all(orig[int(i)] == int(c) for i, c in zip(s["X_train"][:, 1], s["Y_train"]))


def test_uci_split_is_seeded():
    x, y = _toy()
    a = lac_split(x, y, 1, "uci", n_labeled=20, n_unlabeled=30, n_test=10)
    b = lac_split(x, y, 1, "uci", n_labeled=20, n_unlabeled=30, n_test=10)
    c = lac_split(x, y, 2, "uci", n_labeled=20, n_unlabeled=30, n_test=10)
    assert np.array_equal(a["X_train"], b["X_train"]) and not np.array_equal(a["X_train"], c["X_train"])


def test_per_class_split_and_too_small_classes():
    x, y = _toy((30, 30, 30, 30))
    s = lac_split(x, y, 0, "per_class", known_classes=[0, 1],
                  per_class={"labeled": 10, "unlabeled": 8, "test": 3})
    assert np.bincount(s["Y_train"]).tolist() == [10, 10]
    assert np.bincount(s["Y_unlabeled"]).tolist() == [8, 8, 16]
    assert np.bincount(s["Y_test"]).tolist() == [3, 3, 6]
    with pytest.raises(ValueError, match="class 0 has 30 examples, the split needs 41"):
        lac_split(x, y, 0, "per_class", known_classes=[0, 1], per_class={"labeled": 30, "unlabeled": 8, "test": 3})


def test_embedded_digits(tmp_path):
    generate_digits(tmp_path / "a", {"seed": 0})
    generate_digits(tmp_path / "b", {"seed": 0})
    da = load_dataset(tmp_path / "a")
    m = da.meta
    assert m["task"] == "multiclass" and m["n_classes"] == 6 and m["n_known"] == 5
    assert m["splits"] == {"train": 250, "unlabeled": 500, "test": 500}
    assert da.arrays["X_train"].shape[1] == 64 and 0 <= da.arrays["X_train"].min() and da.arrays["X_train"].max() <= 1
    assert set(np.unique(da.arrays["Y_train"])) == set(range(5))
    assert set(np.unique(da.arrays["Y_test"])) == set(range(6))
    assert m["theta_true"] == pytest.approx(np.mean(da.arrays["Y_unlabeled"] < 5))
    assert 0.3 < m["theta_km1"] < 0.8  # KM1 estimate of a ~0.5 share (it over-estimates here, README)
    a = json.loads((tmp_path / "a" / "MANIFEST.json").read_text())["files"]
    b = json.loads((tmp_path / "b" / "MANIFEST.json").read_text())["files"]
    assert a == b  # deterministic
    with pytest.raises(ValueError, match="unknown key"):
        generate_digits(tmp_path / "c", {"seeds": 1})


# --- paper-scale fetchers against local mirrors --------------------------------------------------
def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mat_mirror(tmp_path):
    """A folder laid out like the authors' ``dataset/`` (``<name>.mat`` with one-hot ``label``)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 1000)  # 3 classes of 1000: (3+1)//2 = 2 known, as msplice
    x = rng.normal(size=(3000, 6)) + 2.0 * np.eye(3, 6)[y]
    mirror = tmp_path / "dataset"
    mirror.mkdir()
    savemat(mirror / "msplice.mat", {"data": x, "label": np.eye(3)[y]})
    return mirror


def test_uci_fetcher_from_a_file_mirror(mat_mirror, tmp_path):
    fetch = DATASETS.get("lac_uci/msplice")
    out = tmp_path / "out"
    fetch(out, {"base_url": mat_mirror.as_uri(), "seed": 0})
    d = load_dataset(out)
    assert d.meta["splits"] == {"train": 500, "unlabeled": 1000, "test": 1000}
    assert d.meta["n_classes"] == 3 and d.meta["theta_true"] == pytest.approx(np.mean(d.arrays["Y_unlabeled"] < 2))
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["downloads"]["msplice.mat"]["sha256"] == _sha(mat_mirror / "msplice.mat")
    assert not (tmp_path / ".out.downloads").exists()  # downloads removed once unpacked


def test_uci_fetcher_refuses_a_wrong_digest(mat_mirror, tmp_path):
    with pytest.raises(ValueError, match="sha256 mismatch for msplice.mat"):
        DATASETS.get("lac_uci/msplice")(tmp_path / "out", {"base_url": mat_mirror.as_uri(),
                                                             "sha256": {"msplice.mat": "0" * 64}})
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.downloads").exists()


def test_load_mat_errors(tmp_path):
    savemat(tmp_path / "bad.mat", {"X": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="needs variables `data` and `label`"):
        load_mat(tmp_path / "bad.mat")


def _write_idx(path, arr):
    codes = {np.dtype(np.uint8): 0x08}
    header = b"\x00\x00" + bytes([codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.tobytes())


@pytest.fixture
def idx_mirror(tmp_path):
    """An MNIST-format release: the four idx .gz files, 10 classes, 8x8 images."""
    rng = np.random.default_rng(1)
    mirror = tmp_path / "mnist"
    mirror.mkdir()
    for part, n in (("train", 300), ("t10k", 100)):
        y = (np.arange(n) % 10).astype(np.uint8)
        img = (rng.integers(0, 60, (n, 8, 8)) + 19 * y[:, None, None]).astype(np.uint8)
        _write_idx(mirror / f"{part}-images-idx3-ubyte.gz", img)
        _write_idx(mirror / f"{part}-labels-idx1-ubyte.gz", y)
    return mirror


def test_read_idx_roundtrip(idx_mirror):
    img = read_idx(idx_mirror / "train-images-idx3-ubyte.gz")
    assert img.shape == (300, 8, 8) and img.dtype.kind == "u"
    (idx_mirror / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(idx_mirror / "bad.gz")


def test_mnist_fetcher_from_a_file_mirror(idx_mirror, tmp_path):
    out = tmp_path / "out"
    DATASETS.get("lac_mnist/mnist")(out, {"base_url": idx_mirror.as_uri(), "seed": 0, "km1_subsample": [40, 80],
                                          "per_class": {"labeled": 20, "unlabeled": 10, "test": 5}})
    d = load_dataset(out)
    assert d.meta["n_classes"] == 7 and d.meta["n_known"] == 6  # known 0-5, augmented 6-9 -> label 6
    assert d.meta["splits"] == {"train": 120, "unlabeled": 100, "test": 50}
    assert d.meta["theta_true"] == pytest.approx(0.6)
    assert d.meta["km"]["n_labeled"] == 40 and d.meta["km"]["n_unlabeled"] == 80
    assert d.arrays["X_train"].shape[1] == 64 and d.arrays["X_train"].max() <= 1.0
    recs = json.loads((out / "MANIFEST.json").read_text())["downloads"]
    assert sorted(recs) == sorted(IDX_FILES)
    assert all(recs[f]["sha256"] == _sha(idx_mirror / f) for f in IDX_FILES)


# --- Har and Usps from their public releases -------------------------------------------------------
SMALL = {"n_labeled": 60, "n_unlabeled": 120, "n_test": 100}


def _clusters(n_classes, n_per_class, d, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return rng.normal(size=(len(y), d)) + 3.0 * np.eye(n_classes, d)[y], y


def test_usps_fetcher_from_a_libsvm_mirror(tmp_path):
    """A folder laid out like LIBSVM's multiclass page: usps.bz2 and usps.t.bz2, labels 1-10."""
    import bz2

    from sklearn.datasets import dump_svmlight_file

    mirror = tmp_path / "libsvm"
    mirror.mkdir()
    x, y = _clusters(10, 40, 256)
    for name, rows in (("usps", slice(0, 300)), ("usps.t", slice(300, 400))):
        plain = tmp_path / name
        dump_svmlight_file(x[rows], y[rows] + 1, str(plain), zero_based=False)
        (mirror / f"{name}.bz2").write_bytes(bz2.compress(plain.read_bytes()))
    out = tmp_path / "out"
    DATASETS.get("lac_uci/usps")(out, {"base_url": mirror.as_uri(), **SMALL})
    d = load_dataset(out)
    assert d.meta["n_classes"] == 6 and d.meta["splits"] == {"train": 60, "unlabeled": 120, "test": 100}
    assert d.arrays["X_train"].shape[1] == 256  # (10 + 1) // 2 = 5 known classes + the augmented one
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["downloads"]["usps.t.bz2"]["sha256"] == _sha(mirror / "usps.t.bz2")


@pytest.mark.parametrize("nested", [False, True])
def test_har_fetcher_reads_the_uci_zip_plain_or_nested(tmp_path, nested):
    """UCI's HAR download: ``UCI HAR Dataset/{train,test}/{X,y}_*.txt``, possibly zipped inside the zip."""
    import io
    import zipfile

    x, y = _clusters(6, 60, 8)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for part, rows in (("train", slice(0, 250)), ("test", slice(250, 360))):
            zf.writestr(f"UCI HAR Dataset/{part}/X_{part}.txt", "\n".join(" ".join(f"{v:.6e}" for v in r) for r in x[rows]))
            zf.writestr(f"UCI HAR Dataset/{part}/y_{part}.txt", "\n".join(str(v + 1) for v in y[rows]))
    url = tmp_path / "har.zip"
    if nested:
        with zipfile.ZipFile(url, "w") as zf:
            zf.writestr("UCI HAR Dataset.zip", inner.getvalue())
            zf.writestr("UCI HAR Dataset.names", "description")
    else:
        url.write_bytes(inner.getvalue())
    out = tmp_path / "out"
    DATASETS.get("lac_uci/har")(out, {"base_url": url.as_uri(), **SMALL})
    d = load_dataset(out)
    assert d.meta["n_classes"] == 4 and d.meta["n_known"] == 3  # (6 + 1) // 2 known activities
    assert d.arrays["X_test"].shape == (100, 8)


def test_har_fetcher_names_a_wrong_archive(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("README.txt", "not HAR")
    with pytest.raises(ValueError, match="no train/X_train.txt inside"):
        DATASETS.get("lac_uci/har")(tmp_path / "out", {"base_url": (tmp_path / "other.zip").as_uri(), **SMALL})
    assert not (tmp_path / "out").exists()
