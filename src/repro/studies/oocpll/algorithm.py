"""The OOC-PLL estimators (He, Feng and Yang, KDD 2023), as torch functions on whole batches.

Notation: N training examples (known-class and open-set), K known classes, logits ``z`` float[N, K],
candidate sets ``S`` {0,1}[N, K] (float). Step numbers refer to reference/other-papers.md §2.2,
which transcribes the authors' code (ShuoHe1995/OOC_PLL: ``train.py``, ``utils/utils_algo.py``);
the paper's own equation numbers were not available.

Selection and ground truth are kept apart: ``select_groups`` sees only outputs and candidate sets;
the true groups enter only ``selection_precision`` (a diagnostic, as the authors' ``eval_one_epoch``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASKED_NLL = 1000.0  # the authors' value for masked entries before the min (cal_wood_loss)
GROUPS = ("normal", "closed", "open")  # G codes 0, 1, 2: true label in S / known but not in S / open-set


def wooden_ce(logits: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Wooden cross-entropy, step 1: the smallest per-label loss (the barrel's shortest stave).

    c[i] = min_{k in S_i} -log softmax(z_i)_k,  n[i] = min_{k not in S_i} -log softmax(z_i)_k,
    a side with no labels gives ``MASKED_NLL``. Shapes: logits float[N, K], S {0,1}[N, K] ->
    (c float[N], n float[N]).
    """
    nll = -F.log_softmax(logits.float(), dim=1)
    inside = S > 0
    big = torch.full_like(nll, MASKED_NLL)
    c = torch.where(inside, nll, big).min(dim=1).values
    n = torch.where(inside, big, nll).min(dim=1).values
    return c, n


@dataclass
class Selection:
    """Boolean masks float[N] of the examples selected as each group (they may overlap: an example
    can be both in the top normal and the top open-set list, as in the authors' code)."""

    normal: torch.Tensor
    closed: torch.Tensor
    open: torch.Tensor

    def masks(self) -> dict[str, torch.Tensor]:
        return {"normal": self.normal, "closed": self.closed, "open": self.open}


def selection_sizes(n_known: int, cs_rate: float, os_rate: float) -> tuple[int, int, int]:
    """(normal, closed, open) selection sizes from the known proportions: (1 - cs_rate) n, cs_rate n
    and os_rate n, n = the number of known-class training examples (train.py: n = 50,000)."""
    return int((1 - cs_rate) * n_known), int(cs_rate * n_known), int(os_rate * n_known)


def select_groups(c: torch.Tensor, n: torch.Tensor, sizes: tuple[int, int, int]) -> Selection:
    """OOC selection, step 3, from wooden CE (c, n float[N]):

    normal = top ``sizes[0]`` by (n - c), descending; closed-set OOC = top ``sizes[1]`` by (n - c),
    ascending; open-set OOC = top ``sizes[2]`` by (n + c), descending. Ties keep index order.
    """
    N = c.shape[0]
    if any(s < 0 or s > N for s in sizes):
        raise ValueError(f"selection sizes {sizes} must lie in [0, N = {N}]")
    gap, total = n - c, n + c
    out = []
    for key, k, desc in ((gap, sizes[0], True), (gap, sizes[1], False), (total, sizes[2], True)):
        idx = torch.sort(key, descending=desc, stable=True).indices[:k]
        m = torch.zeros(N, dtype=torch.float32, device=c.device)
        m[idx] = 1.0
        out.append(m)
    return Selection(*out)


def selection_precision(sel: Selection, G: torch.Tensor) -> dict[str, float]:
    """Per-group precision |selected ∩ true group| / |selected| (NaN for an empty selection);
    ``G`` int[N] true group codes (0 normal, 1 closed-set OOC, 2 open-set OOC)."""
    out = {}
    for code, (name, m) in enumerate(sel.masks().items()):
        k = float(m.sum())
        out[name] = float(((G == code).float() * m).sum()) / k if k else float("nan")
    return out


def sharpened(p: torch.Tensor, mask: torch.Tensor, T: float) -> torch.Tensor:
    """Disambiguation target ∝ (p ⊙ mask)^(1/T), each row renormalised; a row with no mass is all
    zero (step 5; the authors zero the NaN rows of the reversed target). float[B, K] -> float[B, K]."""
    t = (p * mask) ** (1.0 / T)
    s = t.sum(dim=1, keepdim=True)
    return torch.where(s > 0, t / s.clamp_min(torch.finfo(t.dtype).tiny), torch.zeros_like(t))


def random_candidate_targets(B: int, K: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Random candidate regularisation, step 5: uniform targets over fresh random candidate sets,
    each label in with probability ``rate``, an empty set replaced by one random label
    (generate_random_candidate_labels). Draws on ``gen`` (CPU). -> float[B, K], rows summing to 1."""
    R = (torch.rand(B, K, generator=gen) < rate).float()
    empty = R.sum(dim=1) == 0
    pick = torch.randint(0, K, (B,), generator=gen)
    R[empty, pick[empty]] = 1.0
    return R / R.sum(dim=1, keepdim=True)


def ooc_targets(p_mean: torch.Tensor, S: torch.Tensor, sel_b: dict[str, torch.Tensor], T: float,
                random_targets: torch.Tensor) -> torch.Tensor:
    """Main-phase targets of one batch, step 5: normal -> sharpened p̄ over the candidates; closed-set
    OOC -> sharpened p̄ over the non-candidates (reversed label disambiguation); open-set OOC ->
    ``random_targets``. The three are summed with the selection masks as weights, as train.py does
    (an example in two selections gets both). p_mean, S, random_targets float[B, K]; masks float[B]."""
    return (sharpened(p_mean, S, T) * sel_b["normal"][:, None]
            + sharpened(p_mean, 1.0 - S, T) * sel_b["closed"][:, None]
            + random_targets * sel_b["open"][:, None])


def ooc_loss(logits: torch.Tensor, targets: torch.Tensor, sel: dict[str, torch.Tensor], alpha: float,
             beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Main-phase loss, step 5: mean CE(normal) + alpha mean CE(closed) + beta mean CE(open).

    As in train.py each group's mean runs over the whole batch (``(loss * mask).mean()``), so a
    group's weight grows with its share of the batch. logits, targets float[M, K] (both views
    stacked, M = 2B); sel masks float[M]. Returns (loss, per-group values for logging).
    """
    ce = -(F.log_softmax(logits, dim=1) * targets).sum(dim=1)
    parts = {g: (ce * sel[g]).mean() for g in GROUPS}
    loss = parts["normal"] + alpha * parts["closed"] + beta * parts["open"]
    return loss, {g: float(v.detach()) for g, v in parts.items()}


def soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_k targets_k log softmax(z)_k (the PRODEN warm-up loss, step 4)."""
    return -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()


def proden_confidence(p_mean: torch.Tensor, S: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """PRODEN confidence update, step 4: p̄ restricted to the candidates and renormalised; a row
    whose candidates all have probability 0 keeps ``previous``. float[B, K] -> float[B, K]."""
    t = p_mean * S
    s = t.sum(dim=1, keepdim=True)
    return torch.where(s > 0, t / s.clamp_min(torch.finfo(t.dtype).tiny), previous)


def cc_loss(logits: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """Classifier-consistent PLL loss (CC, Feng et al., NeurIPS 2020, uniform candidate generation):
    mean of -log sum_{k in S} softmax(z)_k. logits float[M, K], S {0,1}[M, K]."""
    masked = logits.masked_fill(S <= 0, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)).mean()


class OutputEnsemble:
    """Output ensembling for selection, step 2.

    Warm-up epochs store their evaluation-mode logits (only the last ``keep`` are needed) and select
    on the current logits; afterwards the reference is the mean of the last ``keep`` stored epochs,
    mixed as eta * reference + (1 - eta) * current. Nothing is stored after warm-up.
    """

    def __init__(self, keep: int, eta: float) -> None:
        if keep < 1 or not 0.0 <= eta <= 1.0:
            raise ValueError(f"need keep >= 1 and eta in [0, 1], got keep={keep}, eta={eta}")
        self.keep, self.eta = keep, eta
        self.stored: list[torch.Tensor] = []

    def __call__(self, current: torch.Tensor, warmup: bool) -> torch.Tensor:
        """current float[N, K] -> the logits selection uses, float[N, K]."""
        if warmup:
            self.stored = (self.stored + [current.detach().clone()])[-self.keep:]
            return current
        if not self.stored:
            raise RuntimeError("output ensembling needs at least one warm-up epoch (warmup >= 1)")
        ref = torch.stack(self.stored).mean(dim=0)
        return self.eta * ref + (1.0 - self.eta) * current
