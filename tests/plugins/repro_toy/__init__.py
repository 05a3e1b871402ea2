"""A third trainer family, as a plugin that lives outside ``src/repro`` (``tests/plugins`` on
PYTHONPATH): one-step-ahead forecasting of a generated noisy sine series by a last-value baseline
and a ridge-regularised autoregressive model. It registers, through the public registries only,
the family ``toy_forecast``, its own method registry, a dataset generator and a figure; the base
"model" is the core ``architecture`` builder. ``tests/test_plugin_family.py`` runs it through
real Snakemake; ``docs/extending.md`` walks through it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import io as rio
from repro import registry
from repro.config import check_dataclass
from repro.families import FamilyDefaults, check_impl, item_params, refuse_keys
from repro.registry import Registry

FORECASTERS = Registry("toy forecaster")  # the family's own extension point: impl -> Forecaster


@dataclass(frozen=True)
class TrainConfig:
    ridge: float = 1e-3  # L2 penalty of the least-squares fit

    def __post_init__(self) -> None:
        if self.ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {self.ridge}")


@dataclass(frozen=True)
class EvalConfig:
    splits: list[str] = field(default_factory=lambda: ["test"])


@dataclass(frozen=True)
class LastValueParams:
    pass


@dataclass(frozen=True)
class ARParams:
    order: int = 3  # lags

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ValueError(f"order must be >= 1, got {self.order}")


def _lags(x, order: int):
    """x float[T] -> (X float[T-order, order] of the previous values, y float[T-order])."""
    import numpy as np

    X = np.stack([x[i: len(x) - order + i] for i in range(order)], axis=1)
    return X, x[order:]


@FORECASTERS.register("last_value", params=LastValueParams)
class LastValue:
    def fit(self, x, params, cfg, seed):
        return {}

    def predict(self, state, x, params):
        return x[:-1]


@FORECASTERS.register("ar", params=ARParams)
class AR:
    def fit(self, x, params, cfg, seed):
        import numpy as np

        X, y = _lags(x, params.order)
        w = np.linalg.solve(X.T @ X + cfg.ridge * np.eye(params.order), X.T @ y)
        return {"w": w.tolist()}

    def predict(self, state, x, params):
        import numpy as np

        X, _ = _lags(x, params.order)
        pred = X @ np.asarray(state["w"])
        return np.concatenate([x[: params.order - 1], pred])  # the first lags: the last value


class ToyForecast(FamilyDefaults):
    """Trainer family ``toy_forecast`` (``repro.families.Family``; the split check, conda env and
    ``resolve`` inherited from ``FamilyDefaults``)."""

    def train_config(self, values: dict, source: str) -> TrainConfig:
        return check_dataclass(TrainConfig, values, source)

    def eval_config(self, values: dict, source: str) -> EvalConfig:
        return check_dataclass(EvalConfig, values, source)

    def check_method(self, spec: dict, source: str) -> None:
        refuse_keys(spec, set(), source, "toy_forecast")
        check_impl(FORECASTERS, spec, source)

    def method_params(self, spec: dict, values: dict, source: str) -> Any:
        return item_params(FORECASTERS, spec["impl"], values, source)


    def train(self, run: dict[str, Any], *, dataset_dir: Path, model_dir: Path, out_dir: Path,
              log_csv: Path, work_dir: Path, tracker) -> None:
        import numpy as np

        cfg = self.train_config(run["train"], "train")
        params = self.method_params(run, run["params"], "params")
        x = np.load(Path(dataset_dir) / "train.npy")
        t0 = time.perf_counter()
        state = FORECASTERS.get(run["impl"])().fit(x, params, cfg, int(run["seed"]))
        mse = float(np.mean((FORECASTERS.get(run["impl"])().predict(state, x, params) - x[1:]) ** 2))
        tracker.log_metrics({"train/mse": mse}, step=1)
        with rio.atomic_dir(out_dir) as tmp:
            rio.write_json(tmp / "trainer_state.json", {"iteration": 1, "impl": run["impl"],
                                                        "params": asdict(params), "state": state,
                                                        "base_model": rio.manifest_record(model_dir)})
        rio.write_text(log_csv, f"iteration,train/mse,seconds\n1,{mse},{time.perf_counter() - t0:.4f}\n")

    def evaluate(self, run: dict[str, Any], *, dataset_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
        import numpy as np

        ecfg = self.eval_config(run["evaluate"], "evaluate")
        st = rio.read_json(Path(checkpoint_dir) / "trainer_state.json")
        params = item_params(FORECASTERS, st["impl"], st["params"], "trainer_state.json: params")
        out = {}
        for split in ecfg.splits:
            x = np.load(Path(dataset_dir) / f"{split}.npy")
            err = FORECASTERS.get(st["impl"])().predict(st["state"], x, params) - x[1:]
            out[split] = {"metrics": {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))},
                          "n": int(len(err))}
        return {"splits": out}


registry.FAMILIES.register("toy_forecast")(ToyForecast())
# a forecaster whose module needs a package that is not installed: registering it costs nothing,
# parsing the workflow never imports it, and only the jobs that use it fail (naming the package)
FORECASTERS.lazy("needs_missing", "repro_toy.missing:Forecaster", params=ARParams)


@registry.MODELS.register("toy_derived")
def derive(out_dir: Path, params: dict, dataset_dir: Path | None, base_dir: Path) -> None:
    """A model derived from another declared model (``base`` in its entry): the base's spec plus
    ``params``, with the base's digest recorded (as a backdoored CLIP would record its clean one)."""
    with rio.atomic_dir(out_dir) as tmp:
        rio.write_json(tmp / "config.json", {**rio.read_json(Path(base_dir) / "config.json"), **params})
        rio.write_json(tmp / "MANIFEST.json", {"builder": "toy_derived", "params": params,
                                               "base": rio.manifest_record(base_dir),
                                               "files": rio.sha256_tree(tmp)})


@registry.DATASETS.register("toyseries/embedded")
def generate(out_dir: Path, params: dict) -> None:
    """A noisy sine, 400 train / 200 test points, from ``params["seed"]``."""
    import numpy as np

    rng = np.random.default_rng(params.get("seed", 0))
    t = np.arange(600)
    x = np.sin(2 * np.pi * t / params.get("period", 25)) + params.get("noise", 0.1) * rng.standard_normal(600)
    with rio.atomic_dir(out_dir) as tmp:
        np.save(tmp / "train.npy", x[:400])
        np.save(tmp / "test.npy", x[400:])
        rio.write_json(tmp / "MANIFEST.json", {"generator": "toyseries", "params": params,
                                               "files": rio.sha256_tree(tmp)})


@registry.FIGURES.register("toy/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str,
               evals: list[Path]) -> None:
    import pandas as pd

    from repro.reported import load
    from repro.figures.style import new_figure, save_figure, write_table

    s = pd.read_csv(summary)
    rep = load(reported)
    rep = rep[rep.metric == "mse"][["method", "value"]].rename(columns={"value": "mse (reported)"})
    table = s.pivot_table(index="method", columns="metric", values="mean").reset_index()
    table = table.merge(rep, on="method", how="left")
    per_seed = {}
    for e in map(rio.read_json, evals):  # per-sample outputs live in eval.json (here: per-seed MSE)
        per_seed.setdefault(e["method"], []).append(round(e["splits"]["test"]["metrics"]["mse"], 6))
    table["mse per seed"] = table.method.map(lambda m: " ".join(map(str, sorted(per_seed.get(m, [])))))
    write_table(table, out_dir / "main_table.csv", out_dir / "main_table.md", "Toy forecasting",
                [f"scale: {scale}", f"{len(train_logs)} runs"])
    fig, ax = new_figure()
    ax.bar(table["method"], table["mse"])
    ax.set_ylabel("test MSE")
    save_figure(fig, out_dir / "main_table.png")
