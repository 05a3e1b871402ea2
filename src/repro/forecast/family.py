"""The ``forecast`` trainer family: multi-step forecasting on a sensor graph (LTE-ODE and its
baselines, other-papers.md §8).

A study with ``family: forecast`` names a registered forecaster per method (``methods.<m>.impl``, a
``registry.FORECASTERS`` item with ``Params``, ``fit`` and ``predict``); its benchmark's dataset is a
``traffic/*`` folder (``repro.data.traffic``: series T x N, adjacency, shock flags, chronological
splits) and its base model an ``architecture`` folder (``config.json``: the network's sizes). The
family cuts windows (``input_len`` observed steps -> the next ``horizon``), z-scores them with the
train split's mean and std, and scores the forecaster's predictions in the data's units:

- MAE, RMSE and MAPE (%, over targets above ``mape_floor``) at every reported horizon step
  (``@k``) and over all K steps (``avg``);
- the same on **shock windows only** (``shock_*``: the sensors with a shock under way at the window's
  end, ``Windows``);
- whatever the forecaster adds (``extra_metrics``: e.g. LTE-ODE's mask share and activation memory).

Checkpoint: ``weights.safetensors`` + ``trainer_state.json`` (the method, its params, the
normalisation, info). Nothing here names a study.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from repro import io as rio
from repro import registry
from repro.families import EpochRows, RegistryFamily

log = logging.getLogger(__name__)

STATE_FILE, WEIGHTS_FILE = "trainer_state.json", "weights.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    input_len: int = 12
    horizon: int = 12
    max_windows: int = 0          # 0: every train window, else a seeded sample of that many per epoch

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.input_len, self.horizon) < 1 or self.lr <= 0 or self.max_windows < 0:
            raise ValueError("need epochs, batch_size, input_len, horizon >= 1, lr > 0, max_windows >= 0")


@dataclass(frozen=True)
class EvalConfig:
    splits: list[str] = field(default_factory=lambda: ["test"])
    horizons: list[int] = field(default_factory=lambda: [3, 6, 12])   # the @k columns (1-based)
    mape_floor: float = 1.0       # MAPE over targets above this (PEMS flows can be 0)

    def __post_init__(self) -> None:
        if not self.splits or not self.horizons or min(self.horizons) < 1:
            raise ValueError("evaluate needs splits and horizons >= 1")


class Windows:
    """The dataset's windows of one split: x B x N x L, y B x K x N (z-scored), the last input
    step's time of day, the shock flags B x K x N and the window's end step. A sensor's targets are
    shock targets when a shock is under way at the sensor at the window's end (the forecast is made
    inside it; [I]: the paper's 'shock windows' are not defined in what is known), for all K steps;
    a shock that starts inside the horizon is not one (nothing in the inputs announces it)."""

    def __init__(self, data: "TrafficData", split: str, input_len: int, horizon: int) -> None:
        if split not in data.splits:
            raise ValueError(f"{data.folder}: no split {split!r}; splits: {', '.join(data.splits)}")
        lo, hi = data.splits[split]
        ends = np.arange(max(lo, input_len - 1), hi - horizon)
        z = data.z(data.series)
        self.ends = ends
        self.x = np.stack([z[e - input_len + 1:e + 1].T for e in ends]).astype(np.float32)
        self.y = np.stack([z[e + 1:e + 1 + horizon] for e in ends]).astype(np.float32)
        self.shock = np.repeat(data.shock[ends][:, None, :], horizon, axis=1)
        self.tod = data.tod[ends].astype(np.float32)

    def __len__(self) -> int:
        return len(self.ends)


class TrafficData:
    """A ``traffic/*`` folder, normalised with its train split's mean and std."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.manifest = rio.read_json(self.folder / "MANIFEST.json")
        self.series = np.load(self.folder / "series.npy")
        self.adjacency = np.load(self.folder / "adjacency.npy")
        self.positions = np.load(self.folder / "positions.npy")
        self.shock = np.load(self.folder / "shock.npy")
        self.tod = np.load(self.folder / "time_of_day.npy")
        self.splits = self.manifest["splits"]
        lo, hi = self.splits["train"]
        self.mean, self.std = float(self.series[lo:hi].mean()), float(self.series[lo:hi].std())

    def z(self, v: np.ndarray) -> np.ndarray:
        return (v - self.mean) / self.std

    def unz(self, v: np.ndarray) -> np.ndarray:
        return v * self.std + self.mean


@dataclass
class Fitted:
    tensors: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


class Forecaster(Protocol):
    Params: type

    def fit(self, data: TrafficData, arch: dict[str, Any], params: Any, cfg: TrainConfig, seed: int,
            log_row: Callable[[dict[str, float]], None]) -> Fitted:
        """Train on the train windows (model selection on valid); one ``log_row`` per epoch."""

    def predict(self, data: TrafficData, fitted: Fitted, arch: dict[str, Any], params: Any, windows: Windows
                ) -> dict[str, np.ndarray]:
        """``pred`` B x K x N (z-scored) and any per-target diagnostics (B x K x N arrays)."""

    def extra_metrics(self, data: TrafficData, fitted: Fitted, arch: dict[str, Any], params: Any,
                      windows: Windows, out: dict[str, np.ndarray]) -> dict[str, Any]:
        """Method-specific metrics and records of a split (may be empty)."""


def scores(pred: np.ndarray, truth: np.ndarray, keep: np.ndarray | None, floor: float) -> dict[str, float]:
    """MAE, RMSE, MAPE (%) of ``pred`` vs ``truth`` (same shape, data units) over ``keep`` (bool)."""
    keep = np.ones(truth.shape, bool) if keep is None else keep
    if not keep.any():
        return {"mae": float("nan"), "rmse": float("nan"), "mape": float("nan")}
    err = (pred - truth)[keep]
    big = keep & (np.abs(truth) > floor)
    mape = 100 * float(np.mean(np.abs((pred - truth)[big]) / np.abs(truth[big]))) if big.any() else float("nan")
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())), "mape": mape}


def forecast_metrics(pred: np.ndarray, truth: np.ndarray, shock: np.ndarray, cfg: EvalConfig) -> dict[str, float]:
    """Every metric of the module docstring; arrays B x K x N in data units."""
    out = {}
    for prefix, keep in (("", None), ("shock_", shock)):
        for name, v in scores(pred, truth, keep, cfg.mape_floor).items():
            out[f"{prefix}{name}_avg"] = v
        for k in cfg.horizons:
            sl = (slice(None), k - 1)
            for name, v in scores(pred[sl], truth[sl], None if keep is None else keep[sl], cfg.mape_floor).items():
                out[f"{prefix}{name}_at{k}"] = v
    out["shock_target_pct"] = 100 * float(shock.mean())  # the share of targets in shock windows
    return out


class Forecast(RegistryFamily):
    """Trainer family ``forecast`` (``registry.FAMILIES``; the protocol is ``repro.families.Family``)."""

    name, train_type, eval_type, methods = "forecast", TrainConfig, EvalConfig, registry.FORECASTERS

    def train(self, run: dict[str, Any], *, dataset_dir: Path, model_dir: Path, out_dir: Path,
              log_csv: Path, work_dir: Path, tracker) -> None:
        import pandas as pd  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from safetensors.torch import save_file  # noqa: PLC0415

        cfg, method, params, seed = self.prepared(run)
        data, arch = TrafficData(dataset_dir), rio.read_json(Path(model_dir) / "config.json")
        torch.manual_seed(seed)
        rows = EpochRows(cfg.epochs)
        log.info("training %s (%s) on %s (%d sensors), seed %d", run["method"], run["impl"], dataset_dir.name,
                 data.series.shape[1], seed)
        t0 = time.perf_counter()
        fitted = method.fit(data, arch, params, cfg, seed, rows)
        seconds = round(time.perf_counter() - t0, 2)
        tracker.log_history(rows, "epoch")
        with rio.atomic_dir(out_dir) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in fitted.tensors.items()}, str(tmp / WEIGHTS_FILE))
            rio.write_json(tmp / STATE_FILE, {
                "iteration": cfg.epochs, "impl": run["impl"], "params": asdict(params), "train": asdict(cfg),
                "info": fitted.info, "fit_seconds": seconds, "arch": arch,
                "normalisation": {"mean": data.mean, "std": data.std}})
        rio.write_text(log_csv, pd.DataFrame(rows or [{"epoch": 0}]).to_csv(index=False))
        log.info("trained in %.1fs -> %s", seconds, out_dir)

    def evaluate(self, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
        from safetensors.torch import load_file  # noqa: PLC0415

        cfg = self.eval_config(run["evaluate"], "evaluate")
        state, method, params = self.restored(checkpoint_dir)
        train = TrainConfig(**state["train"])
        data = TrafficData(dataset_dir)
        fitted = Fitted(load_file(str(Path(checkpoint_dir) / WEIGHTS_FILE)), state["info"])
        if max(cfg.horizons) > train.horizon:
            raise ValueError(f"evaluate.horizons {cfg.horizons}: the model forecasts {train.horizon} steps")
        out = {}
        for split in cfg.splits:
            windows = Windows(data, split, train.input_len, train.horizon)
            t0 = time.perf_counter()
            got = method.predict(data, fitted, state["arch"], params, windows)
            seconds = time.perf_counter() - t0
            pred, truth = data.unz(got["pred"]), data.unz(windows.y)
            metrics = forecast_metrics(pred, truth, windows.shock, cfg)
            metrics["ms_per_window"] = 1000 * seconds / len(windows)
            extra = method.extra_metrics(data, fitted, state["arch"], params, windows, got)
            metrics.update(extra.pop("metrics", {}))
            log.info("%s %s: MAE@%d %.3f (shock %.3f), RMSE %.3f, MAPE %.2f %%", run["method"], split,
                     max(cfg.horizons), metrics[f"mae_at{max(cfg.horizons)}"], metrics[f"shock_mae_at{max(cfg.horizons)}"],
                     metrics[f"rmse_at{max(cfg.horizons)}"], metrics[f"mape_at{max(cfg.horizons)}"])
            out[split] = {"metrics": metrics, "n_windows": len(windows), **extra}
        return {"splits": out}


registry.FAMILIES.register("forecast")(Forecast())
