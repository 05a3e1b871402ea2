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
def tiny_alfworld():
    """``make(base, games) -> (dataset, model)``, see :func:`_tiny_alfworld`."""
    return _tiny_alfworld


def _tiny_alfworld(base: Path, games: dict[str, int]) -> tuple[Path, Path]:
    """(dataset, model) under ``base``: generated ALFWorld games (two seen rooms, one unseen) and a
    freshly initialised one-layer Qwen2 whose tokenizer is trained on their PDDL: the trainer's
    smallest real inputs."""
    from repro.data.alfworld import generate_embedded
    from repro.models.tiny import build_tiny_qwen2

    data, model = base / "data", base / "model"
    generate_embedded(data, {"seed": 1, "n_layouts_seen": 2, "n_layouts_unseen": 1, "num_workers": 1, "games": games})
    build_tiny_qwen2(model, {"seed": 0, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "num_key_value_heads": 1},
                     [p.read_text() for p in data.rglob("initial_state.pddl")])
    return data, model


@pytest.fixture(scope="session")
def tiny_math():
    """``make(base, sizes, build) -> (dataset, model)``, see :func:`_tiny_math`."""
    return _tiny_math


def _tiny_math(base: Path, sizes: dict[str, int], build) -> tuple[Path, Path]:
    """(dataset, model) under ``base``: generated word problems (``sizes`` per split) and a
    one-layer Qwen2 warm-started for one epoch by ``build`` (a math warm-start builder: the
    single-turn one or a team's)."""
    from repro.data import math_embedded

    data, model = base / "data", base / "model"
    math_embedded.build(data, {"seed": 0, **sizes})
    build(model, {"sft_epochs": 1, "model": {"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64}},
          data)
    return data, model


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture()
def workflow_config() -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture()
def hgpo_study() -> dict:
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "studies" / "hgpo.yaml").read_text()))


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 over a sqlite store in a temp folder; ``start()`` and
    ``stop()`` may alternate (the store and port survive a restart)."""

    def __init__(self, folder: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.proc = None

    def start(self) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError("mlflow server did not answer /health within 30 s")

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its workers
            self.proc.wait(30)


@pytest.fixture()
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path / "mlflow-server")
    server.folder.mkdir()
    yield server
    server.stop()
