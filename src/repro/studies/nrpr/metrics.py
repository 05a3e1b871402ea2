"""``macro_auc_ovr``: the AUC NRPR's evaluation code reports (other-papers.md §1.2).

The third-party PyTorch copy of the authors' routine calls ``roc_auc_score(one_hot(y), softmax,
multi_class='ovo')``; with a one-hot (indicator) ``y_true`` scikit-learn treats the task as
multi-label and ignores ``multi_class``, so the number is the **macro mean of the per-class
one-vs-rest AUCs** over the K+1 classes, which is what this metric computes.
"""

from __future__ import annotations

import numpy as np

from repro.classic.metrics import one_hot, register_metric


@register_metric("macro_auc_ovr", True,
                 "mean over classes of the one-vs-rest ROC AUC of that class's score (ties count 1/2); "
                 "classes absent from, or the only class of, y are skipped")
def macro_auc_ovr(y, scores, labels) -> float:
    """y int[n] (or {0,1}[n, q]), scores float[n, q] -> mean_k AUC(scores[:, k], y == k)."""
    pos = one_hot(y, scores.shape[1])  # [n, q]
    n_pos = pos.sum(0)
    n_neg = len(pos) - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        raise ValueError("macro_auc_ovr: no class has both positive and negative examples")
    from scipy.stats import rankdata  # scipy: only when a score is computed, not while parsing

    r = rankdata(scores, method="average", axis=0)  # [n, q] mid-ranks per class column
    auc = ((r * pos).sum(0) - n_pos * (n_pos + 1) / 2.0) / np.maximum(n_pos * n_neg, 1)  # Mann-Whitney U
    return float(auc[ok].mean())
