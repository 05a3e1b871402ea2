"""LTE-ODE and its baselines as one forecaster of the ``forecast`` family (``graph_ode``), set apart by
params (``ode.ODEParams``): the plain neural ODE (no mask, no penalty), the same with an LTE penalty,
and LTE-ODE (a hard LTE mask and the compensation branch).

Training: Adam on the mean absolute error over all K steps (z-scored units) plus, for the penalised
ODE, lambda x the mean squared per-sensor local truncation error; the epoch with the lowest
validation MAE is kept ([I]). The architecture's sizes come from the base model folder
(``architecture``: ``hidden``). On CUDA when a GPU is visible (``repro.device``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from repro.device import default_device
from repro.forecast.family import Fitted, TrafficData, TrainConfig, Windows
from repro.studies.lteode.params import ODEParams

log = logging.getLogger(__name__)


def _model(data: TrafficData, arch: dict[str, Any], params: ODEParams, input_len: int):
    import torch  # noqa: PLC0415

    from repro.data.traffic import normalised_adjacency  # noqa: PLC0415
    from repro.studies.lteode.ode import GraphODE  # noqa: PLC0415

    adj = torch.from_numpy(normalised_adjacency(data.adjacency))
    return GraphODE(adj, input_len, int(arch.get("hidden", 32)), params)


def _batches(windows: Windows, idx: np.ndarray, size: int, device=None):
    import torch  # noqa: PLC0415

    for lo in range(0, len(idx), size):
        b = idx[lo:lo + size]
        yield tuple(torch.from_numpy(a[b]).to(device) for a in (windows.x, windows.tod, windows.y))


class GraphODEForecaster:
    Params = ODEParams

    def fit(self, data: TrafficData, arch: dict[str, Any], params: ODEParams, cfg: TrainConfig, seed: int,
            log_row) -> Fitted:
        import torch  # noqa: PLC0415

        torch.manual_seed(seed)
        rng = np.random.default_rng([seed, 11])
        train = Windows(data, "train", cfg.input_len, cfg.horizon)
        valid = Windows(data, "valid", cfg.input_len, cfg.horizon)
        device = default_device()
        model = _model(data, arch, params, cfg.input_len).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_state = float("inf"), None
        for _ in range(cfg.epochs):
            order = rng.permutation(len(train))
            if cfg.max_windows:
                order = order[: cfg.max_windows]
            model.train()
            parts = {"loss": [], "mae": [], "lte": [], "mask": []}
            for x, tod, y in _batches(train, order, cfg.batch_size, device):
                out = model(x, tod, cfg.horizon)
                mae = (out["pred"] - y).abs().mean()
                loss = mae + params.lte_penalty * (out["lte"] ** 2).mean() if params.lte_penalty else mae
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                for k, v in (("loss", loss), ("mae", mae), ("lte", out["lte"].mean()), ("mask", out["mask"].mean())):
                    parts[k].append(float(v.detach()))
            val = float(np.abs(self._predict(model, valid, cfg.batch_size)["pred"] - valid.y).mean())
            log_row({**{f"train_{k}": float(np.mean(v)) for k, v in parts.items()}, "valid_mae": val})
            if val < best:
                best, best_state = val, {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Fitted(best_state, {"valid_mae_best": best, "train_windows": len(train),
                                   "parameters": int(sum(p.numel() for p in model.parameters()))})

    @staticmethod
    def _predict(model, windows: Windows, batch_size: int) -> dict[str, np.ndarray]:
        import torch  # noqa: PLC0415

        model.eval()
        device = next(model.parameters()).device
        outs: dict[str, list[np.ndarray]] = {"pred": [], "lte": [], "mask": []}
        with torch.no_grad():
            for x, tod, _ in _batches(windows, np.arange(len(windows)), batch_size, device):
                out = model(x, tod, windows.y.shape[1])
                for k in outs:
                    outs[k].append(out[k].cpu().numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def _loaded(self, data: TrafficData, fitted: Fitted, arch: dict[str, Any], params: ODEParams, input_len: int):
        model = _model(data, arch, params, input_len)
        model.load_state_dict(fitted.tensors)
        return model.to(default_device())

    def predict(self, data, fitted, arch, params, windows: Windows) -> dict[str, np.ndarray]:
        model = self._loaded(data, fitted, arch, params, windows.x.shape[2])
        return self._predict(model, windows, 64)

    def extra_metrics(self, data, fitted, arch, params: ODEParams, windows: Windows, out) -> dict[str, Any]:
        """The mask's share in shock windows and elsewhere, the mean LTE in each, the vector field's
        evaluations per forward and the activation memory a training step saves per window
        (bytes of the tensors autograd keeps for backward, counted by a saved-tensors hook); and, for
        the figure, the test shock window with the strongest recovery ahead: its series, every
        method's forecast there, the mask over all sensors at the step of the largest rise and the
        share of the horizon's steps it fired per sensor."""
        import torch  # noqa: PLC0415

        shock = windows.shock
        metrics = {"mask_on_shock_pct": 100 * float(out["mask"][shock].mean()) if shock.any() else float("nan"),
                   "mask_off_shock_pct": 100 * float(out["mask"][~shock].mean()),
                   "lte_on_shock": float(out["lte"][shock].mean()) if shock.any() else float("nan"),
                   "lte_off_shock": float(out["lte"][~shock].mean())}
        model = self._loaded(data, fitted, arch, params, windows.x.shape[2])
        model.train()
        device = next(model.parameters()).device
        x = torch.from_numpy(windows.x[:16]).to(device)
        tod, k = torch.from_numpy(windows.tod[:16]).to(device), windows.y.shape[1]
        saved = 0

        def pack(t):
            nonlocal saved
            saved += t.numel() * t.element_size()
            return t
        model.field.nfe = 0
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x, tod, k)["pred"].abs().mean()
        metrics["nfe_per_forward"] = float(model.field.nfe)
        metrics["activation_mib_per_window"] = saved / 2**20 / len(x)
        # the shock window with the strongest recovery ahead (truth's rise above the last observed
        # value): the sensor's series around it
        truth = data.unz(windows.y)
        rise = np.where(shock, truth - data.unz(windows.x[:, :, -1])[:, None, :], -np.inf)
        w, step, node = np.unravel_index(int(np.argmax(rise)), rise.shape)
        example = {"window_end": int(windows.ends[w]), "node": int(node), "step": int(step),
                   "history": data.unz(windows.x[w, node]).round(3).tolist(),
                   "truth": truth[w, :, node].round(3).tolist(),
                   "forecast": data.unz(out["pred"][w, :, node]).round(3).tolist(),
                   "mask": out["mask"][w, step].round(3).tolist(), "lte": out["lte"][w, step].round(5).tolist(),
                   "mask_share": out["mask"][w].mean(0).round(3).tolist(),
                   "shock": shock[w, step].tolist(), "positions": data.positions.round(4).tolist()}
        return {"metrics": metrics, "example": example}


graph_ode = GraphODEForecaster()
