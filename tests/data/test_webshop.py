"""WebShop datasets: the embedded catalog generator and the Google Drive fetcher (tested against
a local file:// mirror and a local HTTP server that answers like Drive, confirmation page
included)."""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest

from repro.data import webshop as ws
from repro.data.webshop import (
    DRIVE_IDS,
    FAMILIES,
    VARIANT_FILES,
    check_families,
    drive_confirm_url,
    fetch_full,
    fetch_small,
    generate_embedded,
)
from repro.registry import DATASETS
from repro.envs.webshop import WebshopBatchEnv


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws") / "embedded"
    generate_embedded(root, {"seed": 5})
    return root


@pytest.fixture(scope="module")
def mirror(embedded, tmp_path_factory) -> Path:
    """A folder laid out like the Drive files (the embedded catalog under the paper's names)."""
    m = tmp_path_factory.mktemp("mirror")
    for small in ("", "_1000"):
        shutil.copy(embedded / "items_shuffle.json", m / f"items_shuffle{small}.json")
        shutil.copy(embedded / "items_ins_v2.json", m / f"items_ins_v2{small}.json")
    shutil.copy(embedded / "items_human_ins.json", m / "items_human_ins.json")
    return m


def test_registered():
    assert DATASETS.get("webshop/embedded") is generate_embedded
    assert DATASETS.get("webshop/small") is fetch_small
    assert DATASETS.get("webshop/full") is fetch_full


# ------------------------------------------------------------------------------------------
# embedded generator
# ------------------------------------------------------------------------------------------


def test_files_and_manifest(embedded):
    manifest = json.loads((embedded / "MANIFEST.json").read_text())
    names = {"items_shuffle.json", "items_ins_v2.json", "items_human_ins.json"}
    assert set(manifest["files"]) == names == {p.name for p in embedded.iterdir()} - {"MANIFEST.json"}
    for name, digest in manifest["files"].items():
        assert sha(embedded / name) == digest
    counts = manifest["counts"]
    assert counts["products"] == 120 and counts["families"] == len(FAMILIES)
    assert manifest["params"]["seed"] == 5 and manifest["dataset"] == "webshop/embedded"
    env = WebshopBatchEnv(embedded, eval_goals=0.2)
    assert len(env.goals()) == counts["synthetic_goals"]
    assert len(WebshopBatchEnv(embedded, human_goals=True).goals()) == counts["human_goals"]


def test_generation_is_deterministic(embedded, tmp_path):
    generate_embedded(tmp_path / "again", {"seed": 5})
    generate_embedded(tmp_path / "other", {"seed": 6})
    files = json.loads((embedded / "MANIFEST.json").read_text())["files"]
    assert json.loads((tmp_path / "again" / "MANIFEST.json").read_text())["files"] == files
    assert json.loads((tmp_path / "other" / "MANIFEST.json").read_text())["files"] != files


def test_raw_schemas_and_variety(embedded):
    products = json.loads((embedded / "items_shuffle.json").read_text())
    attrs = json.loads((embedded / "items_ins_v2.json").read_text())
    human = json.loads((embedded / "items_human_ins.json").read_text())
    required = {"asin", "name", "category", "query", "product_category", "full_description",
                "small_description", "pricing", "customization_options", "images"}
    asins = [p["asin"] for p in products]
    assert len({p["query"] for p in products[:12]}) > 2  # shuffled, as items_shuffle is
    assert len(set(asins)) == len(asins) and all(re.fullmatch(r"B0[0-9A-Z]{8}", a) for a in asins)
    for p in products:
        assert required <= set(p) and isinstance(p["pricing"], str)
        assert " › " in p["product_category"]
        for values in p["customization_options"].values():
            assert all(set(v) == {"value", "image"} for v in values)
        a = attrs[p["asin"]]
        assert set(a) == {"attributes", "instruction", "instruction_attributes"}
        assert set(a["instruction_attributes"]) <= set(a["attributes"])
    pricing = [p["pricing"] for p in products]
    assert any(re.fullmatch(r"\$[\d,]+\.\d\d - \$[\d,]+\.\d\d", x) for x in pricing)
    assert "" in pricing and "$1,049.00" in pricing
    assert any(isinstance(p["small_description"], str) for p in products)
    assert any("brand" in p and "list_price" in p for p in products)
    assert any("/" in v["value"] for p in products for vals in p["customization_options"].values()
               for v in vals)
    assert {p["category"] for p in products} == {"beauty", "electronics", "fashion", "food", "furniture"}
    entries = [h for v in human.values() for h in v]
    assert all({"instruction", "instruction_attributes", "instruction_options"} <= set(h) for h in entries)
    assert any(not h["instruction_attributes"] for h in entries)


def test_title_words_never_cross_families(embedded):
    """So a wrong-family purchase has title_score 0 under any noun tagger."""
    products = json.loads((embedded / "items_shuffle.json").read_text())
    owner: dict[str, str] = {}
    for p in products:
        for w in set(re.findall(r"[^\W_]+", p["name"].lower())) - {"with", "for", "and", "of", "in"}:
            assert owner.setdefault(w, p["query"]) == p["query"], w


def test_family_checks_reject_bad_specs():
    check_families()
    fams = copy.deepcopy(FAMILIES)
    fams[1]["extras"].append("Running Formula")
    with pytest.raises(ValueError, match="title word 'running'"):
        check_families(fams)
    fams = copy.deepcopy(FAMILIES)
    fams[0]["options"]["Color"].append("Standard")  # normalize_color -> 'tan': never matches
    with pytest.raises(ValueError, match="'standard' does not match itself"):
        check_families(fams)
    fams = copy.deepcopy(FAMILIES)
    fams[0]["options"]["Width"].append("Buy Now")
    with pytest.raises(ValueError, match="'buy now' collides"):
        check_families(fams)


def test_params_are_validated(tmp_path):
    with pytest.raises(KeyError, match="unknown webshop/embedded params \\['nproducts'\\]"):
        generate_embedded(tmp_path / "x", {"nproducts": 3})
    with pytest.raises(ValueError, match="values_min"):
        generate_embedded(tmp_path / "x", {"values_min": 3, "values_max": 2})
    assert not (tmp_path / "x").exists()
    generate_embedded(tmp_path / "tiny", {"products_per_family": 1})
    assert len(json.loads((tmp_path / "tiny" / "items_shuffle.json").read_text())) == len(FAMILIES)


# ------------------------------------------------------------------------------------------
# paper-scale fetcher
# ------------------------------------------------------------------------------------------


def test_fetch_small_from_file_mirror(mirror, tmp_path):
    out = tmp_path / "data" / "small"
    digests = {n: sha(mirror / n) for n in VARIANT_FILES["small"]}
    fetch_small(out, {"base_url": mirror.as_uri(), "sha256": digests})
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["files"] == digests and manifest["dataset"] == "webshop/small"
    assert {p.name for p in out.iterdir()} == set(VARIANT_FILES["small"]) | {"MANIFEST.json"}
    assert manifest["downloads"]["items_human_ins.json"]["url"] == f"{mirror.as_uri()}/items_human_ins.json"
    assert not (tmp_path / "data" / ".small.downloads").exists()
    env = WebshopBatchEnv(out, use_small=True, eval_goals=0.2)
    obs, adm, infos = env.reset([0])
    assert obs[0].startswith("WebShop [SEP] Instruction: [SEP] ")


def test_fetch_full_has_all_five_files(mirror, tmp_path):
    fetch_full(tmp_path / "full", {"base_url": mirror.as_uri()})
    manifest = json.loads((tmp_path / "full" / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == set(DRIVE_IDS) == set(VARIANT_FILES["full"])
    assert all(manifest["files"][n] == sha(mirror / n) for n in DRIVE_IDS)
    assert WebshopBatchEnv(tmp_path / "full", use_small=False).catalog.files["products"].name == \
        "items_shuffle.json"


def test_wrong_checksum_leaves_nothing_behind(mirror, tmp_path):
    out = tmp_path / "data" / "small"
    bad = {"items_ins_v2_1000.json": "0" * 64}
    with pytest.raises(ValueError, match="sha256 mismatch for items_ins_v2_1000.json: expected 0{64}"):
        fetch_small(out, {"base_url": mirror.as_uri(), "sha256": bad})
    assert not out.exists() and list((tmp_path / "data").iterdir()) == []


def test_non_json_content_is_refused(mirror, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(mirror, broken)
    (broken / "items_shuffle_1000.json").write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="items_shuffle_1000.json: expected JSON starting with '\\['"):
        fetch_small(tmp_path / "data" / "small", {"base_url": broken.as_uri()})
    assert list((tmp_path / "data").iterdir()) == []


class _DriveLike(http.server.BaseHTTPRequestHandler):
    """``/uc?export=download&id=X`` answers Drive's virus-scan page, whose form leads to
    ``/download?id=X&export=download&confirm=t&uuid=...`` serving the file; ``/uc?id=bare``
    answers an HTML page without a form."""

    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/uc" and q.get("id") == "bare":
            body, ctype = b"<!DOCTYPE html><html><body>Quota exceeded</body></html>", "text/html"
        elif url.path == "/uc":
            body = (f'<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>'
                    f'<body><form id="download-form" action="/download" method="get">'
                    f'<input type="hidden" name="id" value="{q["id"]}">'
                    f'<input type="hidden" name="export" value="download">'
                    f'<input type="hidden" name="confirm" value="t">'
                    f'<input type="hidden" name="uuid" value="0f-1e"></form></body></html>').encode()
            ctype = "text/html"
        elif url.path == "/download" and q.get("confirm") == "t" and q.get("uuid") == "0f-1e":
            body, ctype = self.files[q["id"]], "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def drive(mirror):
    handler = type("H", (_DriveLike,), {"files": {f"id-{n}": (mirror / n).read_bytes() for n in DRIVE_IDS}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=functools.partial(server.serve_forever, 0.05), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_follows_drive_confirmation_page(drive, mirror, tmp_path):
    params = {"url_template": drive + "/uc?export=download&id={id}",
              "drive_ids": {n: f"id-{n}" for n in DRIVE_IDS}}
    fetch_small(tmp_path / "small", params)
    manifest = json.loads((tmp_path / "small" / "MANIFEST.json").read_text())
    for n in VARIANT_FILES["small"]:
        assert manifest["files"][n] == sha(mirror / n)
        url = manifest["downloads"][n]["url"]
        assert url.startswith(f"{drive}/download?id=") and "confirm=t" in url
    with pytest.raises(OSError, match="HTML page without a download form"):
        fetch_small(tmp_path / "bare", {**params, "files": ["items_human_ins.json"],
                                        "drive_ids": {"items_human_ins.json": "bare"}})
    assert not (tmp_path / "bare").exists() and not (tmp_path / ".bare.downloads").exists()


def test_drive_confirm_url_forms():
    page = ('<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
            '<input type="hidden" name="id" value="ABC"><input type="hidden" name="confirm" value="t">'
            '<input type="submit" value="Download anyway"></form>')
    assert drive_confirm_url(page, "https://drive.google.com/uc?id=ABC") == \
        "https://drive.usercontent.google.com/download?id=ABC&confirm=t"
    old = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=Xy1z&amp;id=ABC">Download</a>'
    assert drive_confirm_url(old, "https://drive.google.com/uc?id=ABC") == \
        "https://drive.google.com/uc?export=download&confirm=Xy1z&id=ABC"
    assert drive_confirm_url("<html>nothing</html>", "https://x") is None
    assert ws.DRIVE_URL.format(id="1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib").startswith("https://drive.google.com/uc?")
