"""Learner ``generalized_ure``: a linear model or MLP with K+1 outputs trained on labelled data of
the K known classes plus the unlabelled mixture (``X_unlabeled``) by the generalised URE, with or
without NRPR's risk penalty (``repro.studies.nrpr.risk``). The study's methods are configurations
of it (config/studies/nrpr.yaml): ``ure`` (λ = 0), ``nrpr`` (λ = 1.2, t = 1) and ``eulac`` (the
URE with the one-vs-rest logistic loss, EULAC's estimator).

Training follows the authors' loop (``algorithms.py``): each mini-batch is drawn from the labelled
and unlabelled rows shuffled together (a batch as large as both = full-batch, as on UCI); Adam.
Per epoch ``train_log.csv`` records the objective, the URE, the risk term r = Ê_U[ℓ(·,K)] −
θ·Ê_L[ℓ(·,K)] and the share of batches where r < 0 (before the penalty acts).

The paper reports metrics averaged over the last 10 epochs' models. Here the fitted arrays hold the
weights of the last ``average_last`` epochs and ``predict`` scores with the mean of their class
probabilities (one averaged predictor; see the README's deviations).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from repro.classic.family import Fitted, TrainConfig
from repro.studies.nrpr.params import UREParams
from repro.studies.nrpr.risk import LOSSES

#: ``prior`` -> the meta.json key holding θ (``given`` reads ``theta`` from the params instead)
PRIOR_KEYS = {"km1": "theta_km1", "km2": "theta_km2", "true": "theta_true"}
ARCH_KINDS = ("linear", "mlp")


def hidden_sizes(arch: dict[str, Any]) -> list[int]:
    """Hidden widths of ``arch`` (``{"kind": "linear"}`` or ``{"kind": "mlp", "hidden": [500]}``)."""
    kind = arch.get("kind")
    if kind not in ARCH_KINDS:
        raise ValueError(f"model config kind {kind!r}: allowed {', '.join(ARCH_KINDS)}")
    hidden = list(arch.get("hidden", [])) if kind == "mlp" else []
    if kind == "mlp" and (not hidden or any(not isinstance(h, int) or h < 1 for h in hidden)):
        raise ValueError(f"model config kind mlp needs `hidden`: a non-empty list of positive ints, "
                         f"got {arch.get('hidden')!r}")
    return hidden


def theta_of(meta: dict[str, Any], params: UREParams) -> float:
    if params.prior == "given":
        return params.theta
    key = PRIOR_KEYS[params.prior]
    if key not in meta:
        raise KeyError(f"dataset meta.json has no {key!r} (prior: {params.prior}); keys: {', '.join(sorted(meta))}")
    return float(meta[key])


class GeneralizedURE:
    """``registry.LEARNERS['generalized_ure']`` (see the module docstring)."""

    Params = UREParams

    def fit(self, data, arch: dict[str, Any], params: UREParams, cfg: TrainConfig, seed: int, log_row) -> Fitted:
        import torch  # noqa: PLC0415

        from repro.studies.nrpr.risk import lac_risk  # noqa: PLC0415

        # tiny matrices: extra intra-op threads only contend (as repro.rl.trainer; cpus: 1 per job)
        torch.set_num_threads(max(1, int(os.environ.get("REPRO_TORCH_THREADS", "1"))))

        x_l, y_l = data.split("train")
        x_u = data.get("X_unlabeled")
        n_out = int(data.meta["n_classes"])
        if y_l.size and y_l.max() >= n_out - 1:
            raise ValueError(f"{data.folder}: labelled examples must be of the known classes 0..{n_out - 2}")
        theta = theta_of(data.meta, params)
        if cfg.epochs < 1:
            raise ValueError("train.epochs must be >= 1 for generalized_ure")
        torch.manual_seed(seed)
        widths = [x_l.shape[1], *hidden_sizes(arch), n_out]
        layers: list[torch.nn.Module] = []
        for i in range(len(widths) - 1):
            layers += [torch.nn.Linear(widths[i], widths[i + 1])] + ([torch.nn.ReLU()] if i < len(widths) - 2 else [])
        model = torch.nn.Sequential(*layers)
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        opt_cls = {"adam": lambda p: torch.optim.Adam(p, lr=cfg.lr, weight_decay=cfg.weight_decay),
                   "sgd": lambda p: torch.optim.SGD(p, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)}
        opt = opt_cls[cfg.optimizer](model.parameters())
        x_all = torch.as_tensor(np.concatenate([x_l, x_u]), dtype=torch.float32)
        y_all = torch.as_tensor(np.concatenate([y_l, np.zeros(len(x_u), np.int64)]), dtype=torch.long)
        n_l, n = len(x_l), len(x_l) + len(x_u)
        gen = torch.Generator().manual_seed(seed)
        loss_fn = LOSSES.get(params.loss)
        keep = min(params.average_last, cfg.epochs)
        snaps: list[list[tuple[np.ndarray, np.ndarray]]] = []
        neg_epochs = 0
        for epoch in range(1, cfg.epochs + 1):
            # --- one epoch over labelled + unlabelled rows shuffled together ---
            order = torch.randperm(n, generator=gen) if cfg.batch_size < n else torch.arange(n)
            stats = []
            for idx in order.split(cfg.batch_size):
                is_l = idx < n_l
                logits = model(x_all[idx])
                terms = lac_risk(logits[is_l], y_all[idx[is_l]], logits[~is_l], theta, loss_fn, params.q,
                                 params.penalty_lambda, params.penalty_t)
                opt.zero_grad()
                terms["objective"].backward()
                opt.step()
                stats.append(torch.stack([terms[k].detach() for k in ("objective", "ure", "r", "penalty")]))
            s = torch.stack(stats)  # [batches, 4]
            neg_frac = float((s[:, 2] < 0).float().mean())
            neg_epochs += neg_frac > 0
            log_row({"epoch": epoch, "train/objective": float(s[:, 0].mean()), "train/ure": float(s[:, 1].mean()),
                     "train/risk_term": float(s[:, 2].mean()), "train/risk_term_min": float(s[:, 2].min()),
                     "train/negative_risk_frac": neg_frac, "train/penalty": float(s[:, 3].mean())})
            if epoch > cfg.epochs - keep:
                snaps.append([(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears])
        arrays = {}
        for i in range(len(linears)):
            arrays[f"W{i}"] = np.stack([s[i][0] for s in snaps])  # [k, out, in]
            arrays[f"b{i}"] = np.stack([s[i][1] for s in snaps])  # [k, out]
        return Fitted(arrays, {"theta": theta, "prior": params.prior, "epochs_with_negative_risk": int(neg_epochs),
                               "snapshots": keep, "n_labeled": n_l, "n_unlabeled": n - n_l})

    def predict(self, fitted: Fitted, X: np.ndarray, arch: dict[str, Any], params: UREParams
                ) -> tuple[np.ndarray, np.ndarray]:
        """Mean class probabilities [n, K+1] of the kept epochs' models, and their argmax [n]."""
        n_layers = len(hidden_sizes(arch)) + 1
        h = np.broadcast_to(np.asarray(X, np.float64), (fitted.arrays["W0"].shape[0], *np.shape(X)))  # [k, n, d]
        for i in range(n_layers):
            h = np.einsum("snd,sod->sno", h, fitted.arrays[f"W{i}"]) + fitted.arrays[f"b{i}"][:, None, :]
            if i < n_layers - 1:
                h = np.maximum(h, 0.0)
        h = h - h.max(-1, keepdims=True)
        p = np.exp(h)
        p /= p.sum(-1, keepdims=True)
        scores = p.mean(0)
        return scores, scores.argmax(1)


LEARNER = GeneralizedURE()  # registered lazily by repro.studies.nrpr
