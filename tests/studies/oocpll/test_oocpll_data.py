"""OOC-PLL datasets: the embedded digits generator, and the paper fetcher against local fixtures laid
out like the real releases (CIFAR-10/100 python tarballs, SVHN's train_32x32.mat, the ImageNet32
batch zip), served over file:// URLs."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from repro import plugins, registry
from repro.classic.data import load_dataset
from repro.studies.oocpll import data as D
from repro.studies.oocpll.candidates import CLOSED, NORMAL, OPEN

plugins.load_all()


# --- embedded --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oocpll") / "digits"
    D.generate_digits(out, {"seed": 0})
    return out


def test_digits_schema_and_sizes(digits):
    d = load_dataset(digits)
    m = d.meta
    assert m["task"] == "multiclass" and m["n_classes"] == 6 and m["n_known_train"] == 783
    assert m["splits"] == {"train": 783 + 313, "test": 300}
    assert (m["partial_rate"], m["cs_rate"], m["os_rate"]) == (0.3, 0.2, 0.4)
    X, Y = d.split("train")
    S, G = d.get("S_train").astype(bool), d.get("G_train")
    assert X.dtype == np.float32 and 0.0 <= X.min() and X.max() <= 1.0 and X.shape[1] == 64
    assert m["group_counts"] == {"normal": int((G == NORMAL).sum()), "closed": int((G == CLOSED).sum()),
                                 "open": 313}
    known = np.flatnonzero(G != OPEN)
    assert S[known[G[known] == NORMAL], Y[known][G[known] == NORMAL]].all()
    assert not S[known[G[known] == CLOSED], Y[known][G[known] == CLOSED]].any()
    assert (Y[G == OPEN] == -1).all() and S.any(1).all()
    Xte, Yte = d.split("test")
    assert set(np.unique(Yte)) <= set(range(6))
    manifest = json.loads((digits / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"data.npz", "meta.json"} and manifest["params"]["seed"] == 0


def test_digits_open_set_images_come_from_the_unknown_classes(digits):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    by_row = {(r / 16.0).astype(np.float32).tobytes(): int(c) for r, c in zip(X, y)}
    d = load_dataset(digits)
    Xtr, Ytr = d.split("train")
    G = d.get("G_train")
    assert {by_row[r.tobytes()] for r in Xtr[G == OPEN]} <= {6, 7, 8, 9}
    assert {by_row[r.tobytes()] for r in Xtr[G != OPEN]} <= set(range(6))
    assert all(by_row[r.tobytes()] == c for r, c in zip(Xtr[G != OPEN], Ytr[G != OPEN]))  # labels kept


def test_digits_deterministic_and_checked(tmp_path, digits):
    D.generate_digits(tmp_path / "again", {"seed": 0})
    a, b = load_dataset(digits).arrays, load_dataset(tmp_path / "again").arrays
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    D.generate_digits(tmp_path / "other", {"seed": 1})
    assert not np.array_equal(load_dataset(tmp_path / "other").arrays["S_train"], a["S_train"])
    with pytest.raises(KeyError, match="unknown oocpll-digits/embedded params"):
        D.generate_digits(tmp_path / "bad", {"sed": 1})
    with pytest.raises(ValueError, match="known_classes"):
        D.generate_digits(tmp_path / "bad", {"known_classes": [0, 0, 11]})
    assert not (tmp_path / "bad").exists()


# --- paper-scale fixtures --------------------------------------------------------------------------
def _planes(values: np.ndarray) -> np.ndarray:
    """uint8[n, 3072] rows whose R, G, B planes are constant values[:, 0..2] (CIFAR row layout)."""
    return np.repeat(values.astype(np.uint8), 1024, axis=1)


def _tar(path: Path, members: dict[str, dict]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, obj in members.items():
            blob = pickle.dumps(obj)
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """Tiny files in the real releases' layouts. CIFAR-10 image i of batch b has planes (R, G, B) =
    (b, i, 7); open-set images have distinct constant planes naming their source."""
    m = tmp_path_factory.mktemp("mirror")
    rng = np.random.default_rng(0)
    members = {}
    for b in range(1, 6):
        vals = np.stack([np.full(20, b), np.arange(20), np.full(20, 7)], 1)
        members[f"cifar-10-batches-py/data_batch_{b}"] = {"data": _planes(vals),
                                                          "labels": list(rng.integers(0, 10, 20))}
    members["cifar-10-batches-py/test_batch"] = {
        "data": _planes(np.stack([np.full(30, 9), np.arange(30), np.full(30, 7)], 1)),
        "labels": list(np.arange(30) % 10)}
    members["cifar-10-batches-py/batches.meta"] = {"label_names": [str(i) for i in range(10)]}
    _tar(m / "cifar-10-python.tar.gz", members)
    _tar(m / "cifar-100-python.tar.gz", {
        "cifar-100-python/train": {"data": _planes(np.stack([np.full(90, 100), np.arange(90), np.full(90, 1)], 1)),
                                   "fine_labels": list(range(90))},
        "cifar-100-python/test": {"data": _planes(np.zeros((5, 3))), "fine_labels": [0] * 5}})
    from scipy.io import savemat

    X = np.zeros((32, 32, 3, 70), np.uint8)  # SVHN stores H, W, C, n
    X[:, :, 0, :] = 200
    X[:, :, 1, :] = np.arange(70)
    X[:, :, 2, :] = 2
    savemat(m / "train_32x32.mat", {"X": X, "y": np.ones((70, 1), np.uint8)})
    with zipfile.ZipFile(m / "Imagenet32_train.zip", "w") as zf:
        for b in range(1, 11):
            vals = np.stack([np.full(60, 150 + b), np.arange(60), np.full(60, 3)], 1)
            zf.writestr(f"Imagenet32_train/train_data_batch_{b}",
                        pickle.dumps({"data": _planes(vals), "labels": [1] * 60, "mean": np.zeros(3072)}))
    return m


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


@pytest.fixture
def fixture_md5(monkeypatch, mirror):
    """The fixtures are not the real releases: expect their md5s instead of torchvision's."""
    for name in D.ARCHIVES:
        monkeypatch.setitem(D.ARCHIVES, name, (D.ARCHIVES[name][0], _md5(mirror / name)))


def _params(mirror: Path, tmp: Path, **extra) -> dict:
    return {"seed": 7193, "urls": {n: (mirror / n).as_uri() for n in D.ARCHIVES},
            "download_dir": str(tmp / "cache"), **extra}


def test_the_grid_is_registered():
    names = [n for n in registry.DATASETS.names() if n.startswith("cifar10-ooc/")]
    assert len(names) == 18
    assert "cifar10-ooc/svhn-q0.5-cs0.3-os0.6" in names and "cifar10-ooc/imagenet32-q0.1-cs0.2-os0.4" in names


@pytest.mark.parametrize(("source", "red", "pool"), [("svhn", 200, 70), ("cifar100", 100, 90),
                                                     ("imagenet32", None, 60)])
def test_fetch_builds_the_ooc_set_from_the_releases(tmp_path, mirror, fixture_md5, source, red, pool):
    out = tmp_path / "cifar10-ooc" / f"{source}-q0.3-cs0.2-os0.4"
    registry.DATASETS.get(f"cifar10-ooc/{source}-q0.3-cs0.2-os0.4")(out, _params(mirror, tmp_path))
    d = load_dataset(out)
    X, Y = d.split("train")
    G, S = d.get("G_train"), d.get("S_train").astype(bool)
    assert X.dtype == np.uint8 and X.shape == (100 + 40, 32, 32, 3)
    assert d.meta["n_known_train"] == 100 and d.meta["group_counts"]["open"] == 40 and d.meta["n_classes"] == 10
    # the CIFAR rows became NHWC images: pixel = (batch, index, 7), in the release order
    assert (X[:100, 5, 9] == np.stack([np.repeat(np.arange(1, 6), 20), np.tile(np.arange(20), 5),
                                       np.full(100, 7)], 1)).all()
    opened = X[G == OPEN]
    if red is not None:
        assert (opened[..., 0] == red).all()
    else:  # one ImageNet32 batch file, drawn with the seed as the authors' loader does
        assert len(np.unique(opened[..., 0])) == 1 and 151 <= opened[0, 0, 0, 0] <= 160
        assert d.meta["open_set_read"]["split"] == f"train_data_batch_{opened[0, 0, 0, 0] - 150}"
    assert len(np.unique(opened[:, 0, 0, 1])) == 40 and opened[:, 0, 0, 1].max() < pool  # distinct pool items
    assert S[np.flatnonzero(G == NORMAL), Y[G == NORMAL]].all()
    assert not S[np.flatnonzero(G == CLOSED), Y[G == CLOSED]].any() and (G == CLOSED).sum() == 20
    Xte, Yte = d.split("test")
    assert Xte.shape == (30, 32, 32, 3) and (Xte[:, 0, 0, 0] == 9).all() and list(Yte) == list(np.arange(30) % 10)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    src_file = D.SOURCE_FILES[source]
    for name in ("cifar-10-python.tar.gz", src_file):
        rec = manifest["downloads"][name]
        assert rec["sha256"] == _sha(mirror / name) and rec["url"] == (mirror / name).as_uri()
    assert manifest["params"]["partial_rate"] == 0.3 and manifest["params"]["source"] == source


def test_fetch_is_deterministic_and_uses_the_shared_cache(tmp_path, mirror, fixture_md5):
    params = _params(mirror, tmp_path)
    fetch = registry.DATASETS.get("cifar10-ooc/svhn-q0.1-cs0.3-os0.6")
    fetch(tmp_path / "a", params)
    # the cache now holds the archives: a second variant builds even with the mirror URLs broken
    broken = {**params, "urls": {n: (tmp_path / "missing" / n).as_uri() for n in D.ARCHIVES}}
    fetch(tmp_path / "b", broken)
    a, b = load_dataset(tmp_path / "a").arrays, load_dataset(tmp_path / "b").arrays
    assert all(np.array_equal(a[k], b[k]) for k in a)
    registry.DATASETS.get("cifar10-ooc/svhn-q0.5-cs0.3-os0.6")(tmp_path / "c", broken)
    S_c = load_dataset(tmp_path / "c").arrays["S_train"]
    assert S_c[:100].sum() > a["S_train"][:100].sum()  # q = 0.5 flips in more false labels than 0.1


def test_fetch_refuses_wrong_checksums_and_bad_params(tmp_path, mirror):
    fetch = registry.DATASETS.get("cifar10-ooc/svhn-q0.1-cs0.2-os0.4")
    # the fixture is not the real release: torchvision's published md5 rejects it
    with pytest.raises(ValueError, match="md5 mismatch for cifar-10-python.tar.gz"):
        fetch(tmp_path / "x", _params(mirror, tmp_path))
    assert not (tmp_path / "cache" / "cifar-10-python.tar.gz").exists() and not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="sha256 mismatch for cifar-10-python.tar.gz"):
        fetch(tmp_path / "x", _params(mirror, tmp_path, sha256={"cifar-10-python.tar.gz": "0" * 64}))
    with pytest.raises(KeyError, match="unknown cifar10-ooc/svhn params"):
        fetch(tmp_path / "x", {"seed": 1, "mirror": "x"})
    assert not (tmp_path / "x").exists()


def test_readers_refuse_other_files(tmp_path, mirror):
    with pytest.raises(ValueError, match="not the CIFAR-10 python release"):
        D.read_cifar10(mirror / "cifar-100-python.tar.gz")
    with pytest.raises(ValueError, match="no member train_data_batch_11"):
        D.read_imagenet32_batch(mirror / "Imagenet32_train.zip", 11)
