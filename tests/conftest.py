"""Shared test fixtures. Tests compose the real config and shrink it (STYLE.md)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# alfworld creates $ALFWORLD_DATA at import time; keep it out of the home directory in tests
os.environ.setdefault("ALFWORLD_DATA", str(ROOT / ".pytest_cache" / "alfworld_data"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture()
def workflow_config() -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture()
def hgpo_study() -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "studies" / "hgpo.yaml").read_text()))
