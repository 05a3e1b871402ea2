"""Fixtures shared by the WebShop test modules: the default embedded catalog, generated once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def webshop_root(tmp_path_factory):
    from repro.data.webshop import generate_embedded

    root = tmp_path_factory.mktemp("webshop") / "embedded"
    generate_embedded(root, {"seed": 0})
    return root


@pytest.fixture(scope="session")
def webshop_catalog(webshop_root):
    from repro.envs.webshop import Catalog

    return Catalog(webshop_root)
