"""HGPO's training diagnostic ``context_inconsistency`` (``registry.DIAGNOSTICS``): the context
inconsistency of GiGPO's step groups, measured on each iteration's rollout batch (HGPO's motivation).
It runs where a study's train config names it (``diagnostics: {context_inconsistency: {...}}``),
on every method's batch with the same params, and writes the ``context/*`` columns of train_log.csv.

GiGPO groups the steps of one task that share the current observation (anchor), wherever they
occur. The policy, however, acted on a prompt holding the last K (observation, action) pairs, so
two members of one step group may have been in different contexts. HGPO's deepest level groups
only steps whose last K + 1 observations agree (reference/agentic-rl.md §3.4.1). This module
measures, per batch:

- ``inconsistent_group_frac``: among GiGPO step groups with >= 2 rows, the fraction whose rows do
  not all share the same K previous observations (a missing step before the episode start counts
  as its own value);
- ``inconsistent_row_frac``: the fraction of rows in multi-row step groups that sit in such a group;
- ``adv_gap_inconsistent`` / ``adv_gap_consistent``: mean |A^S_GiGPO - A_HGPO| over the rows of
  inconsistent / consistent multi-row step groups (NaN when there are none), with A^S GiGPO's
  step-level term and A_HGPO HGPO's aggregated advantage on the same batch and parameters;
- ``adv_gap_{inconsistent,consistent}_mean_norm``: the same under ``mode: mean_norm``. Under
  ``mean_std_norm`` a consistent group's gap is only GiGPO's Bessel std against HGPO's population
  std; under ``mean_norm`` it is 0 up to HGPO's 1e-6 weight guard, so the inconsistent gap is the
  whole of what HGPO's finer groups change, in units of the return;
- ``return_context_share`` / ``return_context_share_null``: the comparison that can fail. Over the
  rows of inconsistent step groups, the share of the penalised step return's within-group variance
  that lies between the groups' contexts (their previous K observations),
  eta^2 = sum_c n_c (mean_c - mean_g)^2 / sum_rows (R - mean_g)^2, and its mean over
  ``PERMUTATIONS`` shuffles of the context labels inside each step group (a fixed RNG). HGPO's premise,
  that an action's value in a GiGPO step group depends on the context, predicts observed > null;
  returns that do not depend on the history give observed ~ null.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from repro import registry
from repro.rl.advantages.common import (
    combine_codes,
    dense_codes,
    resolve,
    segments,
    step_returns,
)
from repro.rl.advantages.gigpo import step_advantage
from repro.rl.advantages.hgpo import HGPOParams, hgpo_advantage
from repro.rl.batch import StepBatch

KEYS = ("inconsistent_group_frac", "inconsistent_row_frac", "adv_gap_inconsistent", "adv_gap_consistent",
        "adv_gap_inconsistent_mean_norm", "adv_gap_consistent_mean_norm",
        "return_context_share", "return_context_share_null")
PERMUTATIONS = 50  # shuffles of the context labels for the null share (~1 ms each at ~850 rows)


def history_key(batch: StepBatch, k: int) -> tuple[np.ndarray, int]:
    """Dense code int64[N] of each row's previous ``k`` anchors (o_{t-k}, ..., o_{t-1}) within its
    trajectory; steps before the start take the code ``n_anchor`` (none). Needs chronological rows."""
    batch.check_order()
    anchor, n_anchor = dense_codes(batch.anchor)
    key, n_key = np.zeros(len(batch), dtype=np.int64), 1
    rows = np.arange(len(batch))
    for j in range(1, k + 1):
        prev = np.full(len(batch), n_anchor, dtype=np.int64)
        has = batch.step >= j
        prev[has] = anchor[rows[has] - j]
        key, n_key = combine_codes(key, n_key, prev, n_anchor + 1)
    return key, n_key


def between_share(x: np.ndarray, group: np.ndarray, label: np.ndarray) -> float:
    """eta^2 of ``x`` float64[M] explained by ``label`` int64[M] within ``group`` int64[M]: the
    between-label sum of squares about each group's mean over the within-group total (NaN if 0)."""
    g = segments(group)
    lab = segments(g.ids, label)
    g_mean = np.bincount(g.ids, x, g.n) / g.count
    lab_group = np.zeros(lab.n, dtype=np.int64)
    lab_group[lab.ids] = g.ids
    lab_mean = np.bincount(lab.ids, x, lab.n) / lab.count
    total = float(((x - g_mean[g.ids]) ** 2).sum())
    between = float((lab.count * (lab_mean - g_mean[lab_group]) ** 2).sum())
    return between / total if total > 0 else float("nan")


def shuffled_within(label: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``label`` int64[M] permuted at random among the rows of each ``group`` (one draw)."""
    by_group = np.argsort(group, kind="stable")
    shuffled = np.lexsort((rng.random(len(group)), group))  # each group's rows, in random order
    out = np.empty_like(label)
    out[by_group] = label[shuffled]
    return out


def context_inconsistency(batch: StepBatch, params: Any = None) -> dict[str, float]:
    """The measures above for one batch (``HGPOParams``: K = ``history_length``, and the GiGPO /
    HGPO params both advantages use)."""
    p = resolve(HGPOParams, params)
    nan = float("nan")
    if len(batch) == 0:
        return dict.fromkeys(KEYS, nan)
    hist, _ = history_key(batch, int(p.history_length))
    step_groups = segments(batch.group, batch.anchor)
    contexts = segments(step_groups.ids, hist)  # (step group, history) pairs
    first = np.zeros(contexts.n, dtype=np.int64)
    first[contexts.ids] = step_groups.ids  # the step group of each pair
    n_contexts = np.bincount(first, minlength=step_groups.n)  # distinct histories per step group
    multi = step_groups.count >= 2
    bad = multi & (n_contexts > 1)
    row_multi, row_bad = multi[step_groups.ids], bad[step_groups.ids]
    gap = np.abs(step_advantage(batch, p) - hgpo_advantage(batch, p))
    p_mn = replace(p, mode="mean_norm")
    gap_mn = np.abs(step_advantage(batch, p_mn) - hgpo_advantage(batch, p_mn))

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else nan

    share, null = nan, nan
    if row_bad.any():
        ret = step_returns(batch, p.gamma, p.invalid_penalty)[row_bad]
        group, label = step_groups.ids[row_bad], hist[row_bad]
        share = between_share(ret, group, label)
        rng = np.random.default_rng(0)
        null = float(np.mean([between_share(ret, group, shuffled_within(label, group, rng))
                              for _ in range(PERMUTATIONS)]))
    return {
        "inconsistent_group_frac": float(bad.sum() / multi.sum()) if multi.any() else nan,
        "inconsistent_row_frac": mean(row_bad[row_multi].astype(float)),
        "adv_gap_inconsistent": mean(gap[row_bad]),
        "adv_gap_consistent": mean(gap[row_multi & ~row_bad]),
        "adv_gap_inconsistent_mean_norm": mean(gap_mn[row_bad]),
        "adv_gap_consistent_mean_norm": mean(gap_mn[row_multi & ~row_bad]),
        "return_context_share": share,
        "return_context_share_null": null,
    }


@registry.DIAGNOSTICS.register("context_inconsistency", params=HGPOParams,
                               columns=tuple(f"context/{k}" for k in KEYS))
def context_diagnostic(rollout, params: HGPOParams) -> dict[str, float]:
    """The hook: :func:`context_inconsistency` of the rollout's step rows, as ``context/*`` columns."""
    return {f"context/{k}": v for k, v in context_inconsistency(rollout.batch, params).items()}
