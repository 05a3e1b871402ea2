"""Fixtures of the workflow tests: one local run of the shrunk DAG, shared by every module."""

from __future__ import annotations

from pathlib import Path

import pytest
from smokerun import shrink, snakemake


@pytest.fixture(scope="session")
def smoke(root, tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("smoke")
    shrink(root, wd)
    snakemake(root, wd, "--cores", "2")
    return wd
