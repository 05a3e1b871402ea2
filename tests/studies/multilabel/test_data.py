"""Multi-label datasets: the embedded generator (deterministic, schema, genuinely correlated labels),
the ARFF/XML readers, and the Mulan fetchers against local fixtures in Mulan's layout."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib

import numpy as np
import pytest

from repro.classic.data import load_dataset
from repro.registry import DATASETS
from repro.studies.multilabel.data import (
    EMBEDDED_DEFAULTS,
    MULAN,
    generate_embedded,
    generate_latent,
    read_arff,
    read_label_names,
)


def test_registered():
    assert DATASETS.get("multilabel/embedded") is generate_embedded
    for name in ("yeast", "scene", "enron", "image"):
        assert f"mulan/{name}" in DATASETS


def test_embedded_schema_and_determinism(tmp_path):
    generate_embedded(tmp_path / "a", {"seed": 3})
    generate_embedded(tmp_path / "b", {"seed": 3})
    generate_embedded(tmp_path / "c", {"seed": 4})
    a, b, c = (load_dataset(tmp_path / k) for k in "abc")
    p = EMBEDDED_DEFAULTS
    q = p["n_groups"] * p["labels_per_group"]
    assert a.meta["task"] == "multilabel" and a.meta["n_classes"] == q
    assert a.meta["splits"] == {"train": p["n_train"], "test": p["n_test"]}
    x, y = a.split("train")
    assert x.shape == (p["n_train"], p["n_features"]) and y.shape == (p["n_train"], q)
    assert set(np.unique(y)) <= {0, 1}
    for k in a.arrays:
        assert np.array_equal(a.arrays[k], b.arrays[k])
    assert not np.array_equal(a.arrays["X_train"], c.arrays["X_train"])
    manifest = json.loads((tmp_path / "a" / "MANIFEST.json").read_text())
    assert manifest["params"]["seed"] == 3
    assert manifest["files"]["data.npz"] == hashlib.sha256((tmp_path / "a" / "data.npz").read_bytes()).hexdigest()


def test_embedded_labels_are_correlated():
    x, y, group = generate_latent({**EMBEDDED_DEFAULTS, "n_train": 3000, "n_test": 0})
    y = y.astype(bool)
    head = np.flatnonzero(np.tile(np.arange(EMBEDDED_DEFAULTS["labels_per_group"]) == 0, EMBEDDED_DEFAULTS["n_groups"]))
    for j in range(y.shape[1]):
        h = head[group[j]]
        if j == h:
            continue
        # a tail label implies its head (up to the flip and background noise) ...
        assert y[y[:, j], h].mean() > 0.85
        # ... and is far more frequent with its head than without
        assert y[y[:, h], j].mean() > 5 * y[~y[:, h], j].mean()
        other = head[(group[j] + 1) % EMBEDDED_DEFAULTS["n_groups"]]
        assert abs(y[y[:, j], other].mean() - y[:, other].mean()) < 0.1  # topics independent


def test_embedded_rejects_unknown_params(tmp_path):
    with pytest.raises(KeyError, match="unknown multilabel/embedded params \\['n_label'\\]"):
        generate_embedded(tmp_path / "x", {"n_label": 3})


ARFF_DENSE = """% a comment
@relation 'toy: dense'
@attribute f1 numeric
@attribute 'label one' {0,1}
@attribute f2 REAL
@attribute lab2 {0,1}
@attribute word {0,1}

@data
1.5,1,-2,0,1
0,0,3e-1,1,0
"""

ARFF_SPARSE = """@relation toy
@attribute f1 numeric
@attribute 'label one' {0,1}
@attribute f2 numeric
@attribute lab2 {0,1}
@attribute word {0,1}
@data
{0 1.5,1 1,2 -2,4 1}
{2 0.3,3 1}
"""

XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="lab2"></label>
<label name="label one"></label>
</labels>
"""


def test_read_arff_dense_and_sparse_agree(tmp_path):
    (tmp_path / "d.arff").write_text(ARFF_DENSE)
    (tmp_path / "s.arff").write_text(ARFF_SPARSE)
    names, dense = read_arff(tmp_path / "d.arff")
    names_s, sparse = read_arff(tmp_path / "s.arff")
    assert names == names_s == ["f1", "label one", "f2", "lab2", "word"]
    expected = np.array([[1.5, 1, -2, 0, 1], [0, 0, 0.3, 1, 0]])
    assert np.allclose(dense, expected) and np.allclose(sparse, expected)
    (tmp_path / "l.xml").write_text(XML)
    assert read_label_names(tmp_path / "l.xml") == ["lab2", "label one"]


@pytest.mark.parametrize(("body", "match"), [
    ("@attribute a string\n@data\nx\n", "unsupported type"),
    ("@attribute a numeric\n@data\n?\n", "missing value"),
    ("@attribute a {0,1}\n@data\n2\n", "not among the nominal values"),
    ("@attribute a numeric\n@attribute b numeric\n@data\n1\n", "1 values, expected 2"),
    ("@attribute a numeric\n", "no @data section"),
])
def test_read_arff_errors_name_file_and_line(tmp_path, body, match):
    (tmp_path / "bad.arff").write_text("@relation r\n" + body)
    with pytest.raises(ValueError, match=match):
        read_arff(tmp_path / "bad.arff")


def _write_mulan(folder, name, n_train, n_test, seed=0, sparse=False):
    """Fixture files in Mulan's layout: <name>-train.arff, <name>-test.arff (or one file), <name>.xml,
    with the real set's feature and label counts and the labels last (as in Mulan's releases)."""
    train_f, test_f, xml_f, d, q = MULAN[name]
    rng = np.random.default_rng(seed)
    labels = [f"{name}_L{j}" for j in range(q)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / xml_f).write_text('<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">\n'
                                + "".join(f'<label name="{lab}"></label>\n' for lab in labels) + "</labels>\n")
    data = {}
    for fname, n in ((train_f, n_train), (test_f, n_test)):
        if fname is None:
            continue
        X = (rng.random((n, d)) < 0.1).astype(int) if sparse else rng.normal(size=(n, d)).round(4)
        Y = (rng.random((n, q)) < 0.3).astype(int)
        head = ([f"@relation {name}"] + [f"@attribute feat{k} {'{0,1}' if sparse else 'numeric'}" for k in range(d)]
                + [f"@attribute {lab} {{0,1}}" for lab in labels] + ["@data"])
        rows = []
        for x, y in zip(X, Y):
            v = np.concatenate([x, y])
            if sparse:
                rows.append("{" + ",".join(f"{k} {v[k]:g}" for k in np.flatnonzero(v)) + "}")
            else:
                rows.append(",".join(f"{t:g}" for t in v))
        (folder / fname).write_text("\n".join(head + rows) + "\n")
        data[fname] = (X, Y)
    return data


def test_fetch_mulan_from_file_mirror(tmp_path):
    data = _write_mulan(tmp_path / "mirror", "yeast", 30, 20)
    DATASETS.get("mulan/yeast")(tmp_path / "out", {"base_url": (tmp_path / "mirror").as_uri()})
    ds = load_dataset(tmp_path / "out")
    xtr, ytr = ds.split("train")
    assert xtr.shape == (30, 103) and ytr.shape == (30, 14) and ds.split("test")[0].shape == (20, 103)
    assert np.allclose(xtr, data["yeast-train.arff"][0]) and np.array_equal(ytr, data["yeast-train.arff"][1])
    manifest = json.loads((tmp_path / "out" / "MANIFEST.json").read_text())
    for f in ("yeast-train.arff", "yeast-test.arff", "yeast.xml"):
        assert manifest["downloads"][f]["sha256"] == hashlib.sha256((tmp_path / "mirror" / f).read_bytes()).hexdigest()
    assert ds.meta["label_names"][0] == "yeast_L0" and "Mulan release" in ds.meta["split"]
    assert not (tmp_path / ".out.downloads").exists()


def test_fetch_mulan_sparse_enron(tmp_path):
    data = _write_mulan(tmp_path / "mirror", "enron", 12, 8, sparse=True)
    DATASETS.get("mulan/enron")(tmp_path / "out", {"base_url": (tmp_path / "mirror").as_uri()})
    xte, yte = load_dataset(tmp_path / "out").split("test")
    assert xte.shape == (8, 1001) and np.array_equal(xte, data["enron-test.arff"][0])
    assert np.array_equal(yte, data["enron-test.arff"][1])


def test_fetch_image_makes_a_seeded_split(tmp_path):
    _write_mulan(tmp_path / "mirror", "image", 30, 0)
    url = (tmp_path / "mirror").as_uri()
    DATASETS.get("mulan/image")(tmp_path / "a", {"base_url": url, "test_fraction": 0.3, "split_seed": 1})
    DATASETS.get("mulan/image")(tmp_path / "b", {"base_url": url, "test_fraction": 0.3, "split_seed": 1})
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert a.meta["splits"] == {"train": 21, "test": 9}
    assert np.array_equal(a.arrays["X_test"], b.arrays["X_test"])


def test_fetch_mulan_errors(tmp_path):
    _write_mulan(tmp_path / "mirror", "scene", 10, 5)
    url = (tmp_path / "mirror").as_uri()
    fetch = DATASETS.get("mulan/scene")
    with pytest.raises(ValueError, match="set exactly one of datasets.mulan/scene.url .* got neither"):
        fetch(tmp_path / "out", {"base_url": None})
    with pytest.raises(ValueError, match="got both"):
        fetch(tmp_path / "out", {"base_url": url, "url": url + "/scene.rar"})
    with pytest.raises(ValueError, match="sha256 mismatch for scene.xml"):
        fetch(tmp_path / "out", {"base_url": url, "sha256": {"scene.xml": "0" * 64}})
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.downloads").exists()
    with pytest.raises(KeyError, match="unknown mulan/scene params"):
        fetch(tmp_path / "out", {"base_url": url, "mirror": 1})
    # the wrong dataset's files under scene's names: the shape check refuses them
    _write_mulan(tmp_path / "y", "yeast", 10, 5)
    for src, dst in (("yeast-train.arff", "scene-train.arff"), ("yeast-test.arff", "scene-test.arff"),
                     ("yeast.xml", "scene.xml")):
        (tmp_path / "y" / dst).write_bytes((tmp_path / "y" / src).read_bytes())
    with pytest.raises(ValueError, match="expected 294 features and 6 labels, got 103 features and 14 labels"):
        fetch(tmp_path / "out", {"base_url": (tmp_path / "y").as_uri()})
    assert not (tmp_path / "out").exists()


def _rar4(path, files: dict, method: int = 0x30):
    """A RAR 4.x archive of ``files`` (name -> bytes), entries *stored* (method 0x30) unless
    ``method`` says otherwise (the bytes are then not really compressed: only tools would notice).
    Layout (RAR 4 technote): marker block, archive header, one file header + data per file, end block;
    each header starts with the low 16 bits of the CRC-32 of the rest of the header."""
    def block(kind, flags, body, data=b""):
        head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data
    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, b"\x00" * 6)
    dos_time = ((2009 - 1980) << 25) | (1 << 21) | (1 << 16)  # 2009-01-01 00:00
    for name, data in files.items():
        raw = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data), dos_time, 20, method,
                           len(raw), 0x20) + raw
        out += block(0x74, 0x8000, body, data)
    path.write_bytes(out + block(0x7B, 0x4000, b""))
    return path


def test_fetch_mulan_from_a_rar_release(tmp_path):
    """Mulan's own release: one .rar per set holding the ARFF and XML files (here in a folder)."""
    data = _write_mulan(tmp_path / "files", "yeast", 30, 20)
    files = {f"yeast/{f}": (tmp_path / "files" / f).read_bytes() for f in MULAN["yeast"][:3]}
    rar = _rar4(tmp_path / "yeast.rar", {"yeast/readme.txt": b"fixture", **files})
    digest = hashlib.sha256(rar.read_bytes()).hexdigest()
    DATASETS.get("mulan/yeast")(tmp_path / "out", {"url": rar.as_uri(), "sha256": {"yeast.rar": digest}})
    ds = load_dataset(tmp_path / "out")
    assert np.allclose(ds.split("train")[0], data["yeast-train.arff"][0])
    assert np.array_equal(ds.split("test")[1], data["yeast-test.arff"][1])
    manifest = json.loads((tmp_path / "out" / "MANIFEST.json").read_text())
    assert manifest["downloads"] == {"yeast.rar": {"url": rar.as_uri(), "sha256": digest}}
    assert manifest["source"] == rar.as_uri() and not (tmp_path / ".out.downloads").exists()
    # a wrong digest: nothing written, nothing left behind
    with pytest.raises(ValueError, match="sha256 mismatch for yeast.rar"):
        DATASETS.get("mulan/yeast")(tmp_path / "bad", {"url": rar.as_uri(), "sha256": {"yeast.rar": "0" * 64}})
    assert not (tmp_path / "bad").exists() and not (tmp_path / ".bad.downloads").exists()
    with pytest.raises(KeyError, match="sha256 names unknown file.*yeast.rar"):
        DATASETS.get("mulan/yeast")(tmp_path / "bad", {"url": rar.as_uri(), "sha256": {"yeast.xml": digest}})
    # SourceForge's form of the address: .../yeast.rar/download
    sf = tmp_path / "sf" / "yeast.rar" / "download"
    sf.parent.mkdir(parents=True)
    sf.write_bytes(rar.read_bytes())
    DATASETS.get("mulan/yeast")(tmp_path / "sf_out", {"url": sf.as_uri(), "sha256": {"yeast.rar": digest}})
    assert load_dataset(tmp_path / "sf_out").split("train")[0].shape == (30, 103)


def test_fetch_mulan_archive_errors(tmp_path):
    _write_mulan(tmp_path / "files", "scene", 10, 5)
    fetch = DATASETS.get("mulan/scene")
    for sub in ("page", "partial", "unsafe", "gz"):
        (tmp_path / sub).mkdir()
    (tmp_path / "page" / "scene.rar").write_text("<html>Problems downloading?</html>")  # a mirror's error page
    with pytest.raises(ValueError, match="is not a RAR archive"):
        fetch(tmp_path / "out", {"url": (tmp_path / "page" / "scene.rar").as_uri()})
    partial = _rar4(tmp_path / "partial" / "scene.rar", {"scene.xml": (tmp_path / "files" / "scene.xml").read_bytes()})
    with pytest.raises(ValueError, match="holds 0 files named scene-train.arff"):
        fetch(tmp_path / "out", {"url": partial.as_uri()})
    unsafe = _rar4(tmp_path / "unsafe" / "scene.rar", {"../x.arff": b"1"})
    with pytest.raises(ValueError, match="unsafe path"):
        fetch(tmp_path / "out", {"url": unsafe.as_uri()})
    (tmp_path / "gz" / "scene.tar.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unknown archive type '\.gz'"):
        fetch(tmp_path / "out", {"url": (tmp_path / "gz" / "scene.tar.gz").as_uri()})
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.downloads").exists()


@pytest.mark.skipif(any(shutil.which(t) for t in ("unrar", "unar", "bsdtar", "7z", "7zz")),
                    reason="a RAR tool is installed: it would try to decompress the fake entries")
def test_compressed_rar_without_a_tool_says_what_to_install(tmp_path):
    rar = _rar4(tmp_path / "yeast.rar", {"yeast.xml": b"not really compressed"}, method=0x33)
    with pytest.raises(RuntimeError, match="no RAR tool was found; install one of unrar, unar, bsdtar"):
        DATASETS.get("mulan/yeast")(tmp_path / "out", {"url": rar.as_uri()})
