"""CleanSight figures: ASR, clean and poisoned-sample utility per defence with the detector's TPR,
FPR and AUROC, beside the secondary note's ASR table (other-papers.md §5.4, [S])."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro import registry
from repro.figures.style import scale_note, write_table
from repro.figures.tables import model_bars, paired_claim, per_seed, reported_rows, reproduced_rows

ORDER = ["no_defence", "jpeg", "blur", "cleansight"]
METRICS = [("attack_success_rate_pct", "ASR %", False), ("clean_accuracy_pct", "clean acc. %", True),
           ("poisoned_accuracy_pct", "poisoned acc. %", True), ("tpr_pct", "TPR %", True),
           ("fpr_pct", "FPR %", False), ("auroc_pct", "AUROC %", True), ("pruned_tokens", "pruned tokens", False)]


@registry.FIGURES.register("cleansight/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Per attack (base model) and defence: ASR, utilities, detection; claims as measured."""
    rep, rep_notes = reported_rows(reported, METRICS, digits=2, by=("benchmark", "model", "method"))
    df = pd.concat([reproduced_rows(summary, ORDER, METRICS, digits=1), rep], ignore_index=True)
    seeds = per_seed(train_logs)
    claims = []
    for base in ("no_defence", "jpeg", "blur"):
        claims += paired_claim(seeds, "cleansight", base, "attack_success_rate_pct",
                               f"CleanSight's ASR below {base}'s", higher=False, digits=2)
    claims += paired_claim(seeds, "cleansight", "no_defence", "clean_accuracy_pct",
                           "CleanSight keeps clean utility (a drop shows as 'no')", digits=2)
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "CleanSight: test-time attention purification of a backdoored LLaVA-architecture model",
                [scale_note(scale, "a tiny LLaVA (CLIP-ViT tower + Llama, transformers configs) fine-tuned on "
                                   "generated shape VQA with 5% poisoned items; CPU; see "
                                   "src/repro/studies/cleansight/README.md",
                            "LLaVA-1.5-7B with a poisoned LoRA"),
                 "reproduced: mean ± std over seeds from eval.json (test split, one question per image drawn "
                 "with the seed; the trigger on every image for ASR / poisoned accuracy / TPR). TPR / FPR: "
                 "CleanSight's detector at the 99th percentile of 200 clean calibration scores; AUROC of its "
                 "score d; pruned tokens: visual tokens pruned per flagged input (of 16).",
                 "reported: " + ("; ".join(rep_notes) if rep_notes else "paper_figures/reported/cleansight.csv"),
                 *[f"claim: {c}" for c in claims]])
    model_bars(summary, ORDER, [("attack_success_rate_pct", "ASR % ↓"), ("clean_accuracy_pct", "clean accuracy % ↑")],
               out_dir / "main_table.png",
               f"CleanSight, {scale} scale: ASR and clean utility per defence (mean ± std over seeds)")
