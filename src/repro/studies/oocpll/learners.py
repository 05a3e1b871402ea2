"""OOC-PLL and its partial-label baselines as ``classic`` learners (registry.LEARNERS).

- ``oocpll``: PRODEN warm-up, then per epoch wooden-CE OOC selection on ensembled outputs and the
  three-part loss (reference/other-papers.md §2.2 steps 1-5; the authors' ``train.py``).
- ``proden``: the PRODEN-only control, the warm-up for every epoch (§2.4).
- ``cc``: the classifier-consistent PLL loss (Feng et al., NeurIPS 2020), a cheap second baseline.

All three share one training session (network, input pipeline, optimiser, cosine schedule, two
augmented views per batch) and log the same per-epoch row: the selection the OOC-PLL rule makes
from the current outputs (ensembled for ``oocpll``), its per-group precision against the true
groups, wooden CE per true group, and test accuracy. Ground-truth groups ``G_train`` are read only
for those diagnostics, never for training.

Dataset arrays (``repro.studies.oocpll.data``): ``X_train`` (known then open-set inputs),
``S_train`` {0,1}[N, K] candidate sets, ``G_train`` group codes, ``X_test``/``Y_test``; ``meta``
gives ``n_classes``, ``n_known_train``, ``cs_rate`` and ``os_rate`` (the proportions the selection
assumes known, as the paper does).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from repro.classic.family import Fitted, TrainConfig
from repro.studies.oocpll import algorithm as A
from repro.studies.oocpll.candidates import CLOSED, NORMAL, OPEN
from repro.studies.oocpll.nets import InputPipeline, build_net
from repro.studies.oocpll.params import BaselineParams, OocPllParams

GROUP_CODES = {"normal": NORMAL, "closed": CLOSED, "open": OPEN}


class Session:
    """One training run's state: tensors on the device, network, pipeline, optimiser, RNG."""

    def __init__(self, data, arch: dict[str, Any], cfg: TrainConfig, seed: int, lr_min_factor: float,
                 eval_batch_size: int) -> None:
        if cfg.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1 for the oocpll learners, got {cfg.epochs}")
        meta = data.meta
        missing = [k for k in ("n_classes", "n_known_train", "cs_rate", "os_rate") if k not in meta]
        if missing:
            raise KeyError(f"{data.folder}/meta.json lacks {missing}: not an OOC partial-label dataset")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)  # batches, views, random candidate sets
        X, _ = data.split("train")
        Xte, Yte = data.split("test")
        dev = self.device
        self.X = torch.from_numpy(np.ascontiguousarray(X)).to(dev)
        self.S = torch.from_numpy(data.get("S_train").astype(np.float32)).to(dev)
        self.G = torch.from_numpy(data.get("G_train").astype(np.int64)).to(dev)
        self.Xte, self.Yte = torch.from_numpy(np.ascontiguousarray(Xte)).to(dev), torch.from_numpy(Yte).to(dev)
        self.N, self.K = self.S.shape
        if int(meta["n_classes"]) != self.K or len(X) != self.N:
            raise ValueError(f"{data.folder}: S_train is {tuple(self.S.shape)}, X_train has {len(X)} rows, "
                             f"meta n_classes = {meta['n_classes']}")
        self.input_shape = tuple(int(s) for s in X.shape[1:])
        self.net = build_net(arch, self.input_shape, self.K).to(dev)
        self.pipe = InputPipeline(arch, dev)
        params = self.net.parameters()
        self.opt = (torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
                    if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
        self.cfg, self.lr_min_factor, self.eval_batch_size = cfg, lr_min_factor, eval_batch_size
        self.sizes = A.selection_sizes(int(meta["n_known_train"]), float(meta["cs_rate"]), float(meta["os_rate"]))
        self.chance = {g: float((self.G == c).float().mean()) for g, c in GROUP_CODES.items()}

    # --- schedule and batches ------------------------------------------------------------------
    def set_lr(self, epoch: int) -> float:
        """Cosine from lr to lr x lr_min_factor over the epochs (train.py adjust_learning_rate)."""
        lr0 = self.cfg.lr
        lo = lr0 * self.lr_min_factor
        lr = lo + (lr0 - lo) * (1 + math.cos(math.pi * epoch / self.cfg.epochs)) / 2
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr

    def batches(self):
        """Shuffled index batches (LongTensor on the device), the last one possibly smaller."""
        perm = torch.randperm(self.N, generator=self.gen).to(self.device)
        return perm.split(self.cfg.batch_size)

    def two_views(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of two independently augmented views of the batch, one forward pass each (as
        train.py: BatchNorm sees each view alone). -> (z1, z2) float[B, K]."""
        self.net.train()
        x = self.X[idx]
        return self.net(self.pipe(x, self.gen)), self.net(self.pipe(x, self.gen))

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def logits(self, X: torch.Tensor) -> torch.Tensor:
        """Evaluation-mode logits (no augmentation), float[n, K] on the device."""
        self.net.eval()
        return torch.cat([self.net(self.pipe(x)) for x in X.split(self.eval_batch_size)]).float()

    # --- diagnostics ---------------------------------------------------------------------------
    def select(self, logits: torch.Tensor) -> tuple[A.Selection, dict[str, float]]:
        """The OOC selection from ``logits`` [N, K] and its diagnostics against the true groups."""
        c, n = A.wooden_ce(logits, self.S)
        sel = A.select_groups(c, n, self.sizes)
        row = {f"select/precision_{g}": v for g, v in A.selection_precision(sel, self.G).items()}
        row.update({f"select/chance_{g}": v for g, v in self.chance.items()})
        for g, code in GROUP_CODES.items():
            m = self.G == code
            row[f"wood/c_{g}"] = float(c[m].mean()) if m.any() else float("nan")
            row[f"wood/n_{g}"] = float(n[m].mean()) if m.any() else float("nan")
        return sel, row

    def test_accuracy(self) -> float:
        return float((self.logits(self.Xte).argmax(1) == self.Yte).float().mean())

    def fitted(self, info: dict[str, Any]) -> Fitted:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        return Fitted(arrays, {"n_classes": self.K, "input_shape": list(self.input_shape),
                               "selection_sizes": list(self.sizes), "device": str(self.device), **info})


# --- epochs of each phase ------------------------------------------------------------------------
def proden_epoch(s: Session, conf: torch.Tensor) -> dict[str, float]:
    """One PRODEN epoch (step 4): soft CE against the confidences ``conf`` [N, K] on both views;
    each batch's confidences are then replaced by p̄ over its candidates (updated in place)."""
    total, nb = 0.0, 0
    for idx in s.batches():
        z1, z2 = s.two_views(idx)
        loss = A.soft_ce(torch.cat([z1, z2]), torch.cat([conf[idx], conf[idx]]))
        s.step(loss)
        with torch.no_grad():
            p = (F.softmax(z1, 1) + F.softmax(z2, 1)) / 2
            conf[idx] = A.proden_confidence(p, s.S[idx], conf[idx])
        total, nb = total + float(loss.detach()), nb + 1
    return {"train/loss": total / nb}


def ooc_epoch(s: Session, sel: A.Selection, p: OocPllParams) -> dict[str, float]:
    """One main-phase epoch (step 5) with the epoch's selection ``sel``."""
    masks = sel.masks()
    sums = {"train/loss": 0.0, **{f"train/loss_{g}": 0.0 for g in A.GROUPS}}
    nb = 0
    for idx in s.batches():
        z1, z2 = s.two_views(idx)
        with torch.no_grad():
            pbar = (F.softmax(z1, 1) + F.softmax(z2, 1)) / 2
            sel_b = {g: m[idx] for g, m in masks.items()}
            rand = A.random_candidate_targets(len(idx), s.K, p.random_candidate_rate, s.gen).to(s.device)
            t = A.ooc_targets(pbar, s.S[idx], sel_b, p.temperature, rand)
        loss, parts = A.ooc_loss(torch.cat([z1, z2]), torch.cat([t, t]),
                                 {g: torch.cat([m, m]) for g, m in sel_b.items()}, p.alpha, p.beta)
        s.step(loss)
        sums["train/loss"] += float(loss.detach())
        for g, v in parts.items():
            sums[f"train/loss_{g}"] += v
        nb += 1
    return {k: v / nb for k, v in sums.items()}


def cc_epoch(s: Session) -> dict[str, float]:
    """One CC epoch: -log sum_{k in S} p_k on both views."""
    total, nb = 0.0, 0
    for idx in s.batches():
        z1, z2 = s.two_views(idx)
        loss = A.cc_loss(torch.cat([z1, z2]), torch.cat([s.S[idx], s.S[idx]]))
        s.step(loss)
        total, nb = total + float(loss.detach()), nb + 1
    return {"train/loss": total / nb}


def _finish(s: Session, test_acc: list[float], last: dict[str, float]) -> Fitted:
    return s.fitted({"last10_test_accuracy": float(np.mean(test_acc[-10:])),
                     "final_test_accuracy": test_acc[-1],
                     "final_selection_precision": {g: last[f"select/precision_{g}"] for g in A.GROUPS}})


def _predict(fitted: Fitted, X: np.ndarray, arch: dict[str, Any], eval_batch_size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores float[n, K] and argmax labels int[n] of the saved network."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = build_net(arch, tuple(fitted.info["input_shape"]), int(fitted.info["n_classes"]))
    net.load_state_dict({k[4:]: torch.from_numpy(np.asarray(v)) for k, v in fitted.arrays.items()
                         if k.startswith("net.")})
    net.to(device).eval()
    pipe = InputPipeline(arch, device)
    with torch.no_grad():
        Xt = torch.from_numpy(np.ascontiguousarray(X))
        z = torch.cat([net(pipe(x.to(device))).float().cpu() for x in Xt.split(eval_batch_size)])
    scores = F.softmax(z, 1).numpy()
    return scores, scores.argmax(1)


class _Base:
    def predict(self, fitted: Fitted, X: np.ndarray, arch: dict[str, Any], params) -> tuple[np.ndarray, np.ndarray]:
        return _predict(fitted, X, arch, params.eval_batch_size)


class OocPll(_Base):
    """OOC-PLL (§2.2): warm-up epochs train then select; main epochs select then train."""

    Params = OocPllParams

    def fit(self, data, arch, params: OocPllParams, cfg: TrainConfig, seed: int,
            log_row: Callable[[dict[str, float]], None]) -> Fitted:
        s = Session(data, arch, cfg, seed, params.lr_min_factor, params.eval_batch_size)
        conf = s.S / s.S.sum(dim=1, keepdim=True)  # uniform over each candidate set
        ensemble = A.OutputEnsemble(params.ensemble_epochs, params.eta)
        test_acc, row = [], {}
        for epoch in range(cfg.epochs):
            lr = s.set_lr(epoch)
            warm = epoch < params.warmup
            if warm:  # --- warm-up: PRODEN, then select (diagnostic) and store the outputs ---
                losses = proden_epoch(s, conf)
                sel, diag = s.select(ensemble(s.logits(s.X), warmup=True))
            else:     # --- main phase: select on ensembled outputs, then train on the selection ---
                sel, diag = s.select(ensemble(s.logits(s.X), warmup=False))
                losses = ooc_epoch(s, sel, params)
            test_acc.append(s.test_accuracy())
            row = {"epoch": epoch + 1, "train/lr": lr, "train/warmup": float(warm), **losses, **diag,
                   "eval/test_accuracy": test_acc[-1]}
            log_row(row)
        return _finish(s, test_acc, row)


class _Baseline(_Base):
    """A PLL baseline with OOC-PLL's network, views and schedule: ``epoch(session, state)`` trains
    one epoch and returns its losses (``state``: what ``start`` made for the run); the OOC-PLL
    selection is computed from its outputs and logged only."""

    Params = BaselineParams
    warmup = 0.0  # the ``train/warmup`` flag its rows carry

    def start(self, s: Session) -> Any:
        return None

    def epoch(self, s: Session, state: Any) -> dict[str, float]:
        raise NotImplementedError

    def fit(self, data, arch, params: BaselineParams, cfg: TrainConfig, seed: int, log_row) -> Fitted:
        s = Session(data, arch, cfg, seed, params.lr_min_factor, params.eval_batch_size)
        state, test_acc, row = self.start(s), [], {}
        for epoch in range(cfg.epochs):
            lr = s.set_lr(epoch)
            losses = self.epoch(s, state)
            _, diag = s.select(s.logits(s.X))
            test_acc.append(s.test_accuracy())
            row = {"epoch": epoch + 1, "train/lr": lr, "train/warmup": self.warmup, **losses, **diag,
                   "eval/test_accuracy": test_acc[-1]}
            log_row(row)
        return _finish(s, test_acc, row)


class Proden(_Baseline):
    """PRODEN-only control: the OOC-PLL warm-up for every epoch (§2.4)."""

    warmup = 1.0

    def start(self, s: Session) -> torch.Tensor:
        return s.S / s.S.sum(dim=1, keepdim=True)  # confidences: uniform over each candidate set

    def epoch(self, s: Session, state: torch.Tensor) -> dict[str, float]:
        return proden_epoch(s, state)


class CC(_Baseline):
    """CC baseline (Feng et al., NeurIPS 2020)."""

    def epoch(self, s: Session, state: Any) -> dict[str, float]:
        return cc_epoch(s)


# registered lazily by repro.studies.oocpll
OOCPLL, PRODEN, CC_LEARNER = OocPll(), Proden(), CC()
