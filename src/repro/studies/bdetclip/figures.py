"""BDetCLIP figures: the detection table (BDetCLIP vs STRIP, SCALE-UP and TeCo per attack) beside
the paper's numbers ('n/f': none were available, other-papers.md §3.2), and ROC curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.style import COLORS, method_order, new_figure, save_figure, scale_note, write_table
from repro.figures.tables import lowest_seed_runs, model_bars, paired_claim, per_seed, reported_rows, reproduced_rows

ORDER = ["bdetclip", "strip", "scaleup", "teco", "bdetclip_fixed"]
METRICS = [("auroc_pct", "AUROC %", True), ("auprc_pct", "AUPRC %", True), ("f1_pct", "F1 %", True),
           ("precision_pct", "precision %", True), ("recall_pct", "recall %", True),
           ("accuracy_pct", "accuracy %", True), ("ms_per_image", "ms / image", False)]


def _note(scale: str) -> str:
    return scale_note(scale, "a tiny open_clip CLIP trained on generated shapes and backdoored by poisoned "
                             "fine-tuning (BadNets patch, blended noise); CPU; see src/repro/studies/bdetclip/README.md",
                      "backdoored CLIP checkpoints on ImageNet-1K / Food-101 / Caltech-101")


@registry.FIGURES.register("bdetclip/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Detection quality per attack (base model) and detector, mean ± std over seeds; claims: BDetCLIP's
    AUROC above each baseline's (paired over seeds: the same evaluation draw per seed)."""
    rep, rep_notes = reported_rows(reported, METRICS, digits=1)
    df = pd.concat([reproduced_rows(summary, ORDER, METRICS, digits=1), rep], ignore_index=True)
    seeds = per_seed(train_logs)
    claims = [line for base in ("strip", "scaleup", "teco")
              for line in paired_claim(seeds, "bdetclip", base, "auroc_pct", f"BDetCLIP's AUROC beats {base}'s",
                                       digits=2)]
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "BDetCLIP: test-time backdoor detection, BDetCLIP vs STRIP, SCALE-UP and TeCo",
                [_note(scale),
                 "reproduced: mean ± std over seeds from eval.json (test split, 30% of the images triggered, "
                 "drawn from the non-target classes; a seed redraws which). Threshold: flagged when more "
                 "suspicious than every clean reference image (§3.4's rule; F1, precision, recall, accuracy); "
                 "AUROC / AUPRC are threshold-free. ms / image: the detector's own cost on this CPU.",
                 "reported: " + ("; ".join(rep_notes) if rep_notes else "paper_figures/reported/bdetclip.csv"),
                 *[f"claim: {c}" for c in claims]])
    model_bars(summary, ORDER, [("auroc_pct", "AUROC % (test)")], out_dir / "main_table.png",
               f"BDetCLIP, {scale} scale: detection AUROC per attack (mean ± std over seeds)")


@registry.FIGURES.register("bdetclip/roc")
def roc(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str,
        evals: list[Path]) -> None:
    """ROC curves of every detector per attack, from each run's eval.json (the lowest seed)."""
    runs = lowest_seed_runs(evals)
    models = sorted({m for m, _ in runs})
    fig, axes = new_figure(4.0 * max(len(models), 1), 3.6, ncols=max(len(models), 1))
    axes = np.atleast_1d(axes)
    rows = []
    for ax, model in zip(axes, models):
        for k, meth in enumerate(method_order([m for mo, m in runs if mo == model], ORDER)):
            res = runs[(model, meth)]["splits"]["test"]
            ax.plot(res["roc"]["fpr"], res["roc"]["tpr"], color=COLORS[k % len(COLORS)],
                    label=f"{meth} ({res['metrics']['auroc_pct']:.1f})")
            rows += [{"model": model, "method": meth, "seed": runs[(model, meth)]["seed"], "fpr": f, "tpr": t}
                     for f, t in zip(res["roc"]["fpr"], res["roc"]["tpr"])]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(model, fontsize=8)
        ax.legend(frameon=False, fontsize=7, title="AUROC %", title_fontsize=7)
    fig.suptitle(f"BDetCLIP, {scale} scale: ROC on the test split (backdoor ratio 0.3)", fontsize=9)
    save_figure(fig, out_dir / "roc.png")
    write_table(pd.DataFrame(rows), out_dir / "roc.csv", out_dir / "roc.md",
                "BDetCLIP: ROC curves (false / true positive rate per detector and attack)",
                [_note(scale), "from each run's eval.json (up to 200 points of the curve, lowest seed per run)"])
