"""RVPT figures: Table 1's layout (ASR with CA per attack and defence) beside the paper's ImageNet,
Caltech101 and OxfordPets numbers (Tables 1-3, other-papers.md §4.4), with PA and perturbation
resistivity, and the claims as measured."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro import registry
from repro.figures.style import scale_note, write_table
from repro.figures.tables import model_bars, paired_claim, per_seed, reported_rows, reproduced_rows

ORDER = ["no_defence", "cleanclip", "linear_probe", "vpt", "rvpt"]
METRICS = [("attack_success_rate_pct", "ASR %", False), ("clean_accuracy_pct", "CA %", True),
           ("poisoned_accuracy_pct", "PA %", True), ("perturbation_resistivity", "PR", True, 4)]
#: the trigger a backdoored model's name carries -> the paper's column
TRIGGER_COLUMNS = {"badnets": "BadNet", "blended": "Blended", "wanet": "WaNet"}


def attack(model: str) -> str:
    """The paper's column of a backdoored model: the trigger its name carries (``tiny-clip-badnets``,
    ``clip-vit-b32-wanet-samoyed``), else the name itself."""
    return next((col for trig, col in TRIGGER_COLUMNS.items() if trig in model.split("-")), model)


@registry.FIGURES.register("rvpt/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """ASR, CA, PA and PR per attack and defence (mean ± std over seeds) beside Table 1 / Table 3."""
    rep, rep_notes = reported_rows(reported, METRICS, digits=2, by=("benchmark", "model", "method"))
    ours = reproduced_rows(summary, ORDER, METRICS, digits=2)
    ours.insert(2, "attack", ours.model.map(attack))
    rep.insert(2, "attack", rep.model)
    df = pd.concat([ours, rep], ignore_index=True)
    seeds = per_seed(train_logs)
    claims = (paired_claim(seeds, "rvpt", "no_defence", "attack_success_rate_pct",
                           "RVPT lowers the ASR of the backdoored model", higher=False, digits=2)
              + paired_claim(seeds, "rvpt", "no_defence", "clean_accuracy_pct",
                             "RVPT keeps clean accuracy (a drop shows as 'no')", digits=2)
              + paired_claim(seeds, "rvpt", "vpt", "attack_success_rate_pct",
                             "the repelling term lowers ASR beyond plain VPT", higher=False, digits=2)
              + paired_claim(seeds, "rvpt", "cleanclip", "attack_success_rate_pct",
                             "RVPT's ASR below CleanCLIP's", higher=False, digits=2)
              + paired_claim(seeds, "rvpt", "linear_probe", "attack_success_rate_pct",
                             "RVPT's ASR below the linear probe's", higher=False, digits=2)
              + paired_claim(seeds, "rvpt", "no_defence", "perturbation_resistivity",
                             "RVPT raises perturbation resistivity", digits=4))
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "RVPT: ASR and clean accuracy of a backdoored CLIP per defence (Table 1 layout)",
                [scale_note(scale, "a tiny open_clip CLIP (4-block ViT) trained on generated shapes, backdoored by "
                                   "poisoned fine-tuning; 16 clean shots per class; CPU; see "
                                   "src/repro/studies/rvpt/README.md",
                            "backdoored CLIP ViT-B/32 on ImageNet-1K, 16 shots"),
                 "reproduced: mean ± std over seeds from eval.json (test split; ASR over triggered images of the "
                 "non-target classes; PR = mean cos(f(x), f(x + N(0, 0.05²))) of the defended image features). "
                 "vpt = RVPT with alpha = 0.",
                 "reported: ViT-B/32 on ImageNet-1K (Table 1: ASR with CA; Table 3: PA), Caltech101 and OxfordPets "
                 "(Table 2: ASR with CA); the paper reports no PR "
                 "table. " + ("; ".join(rep_notes) if rep_notes else ""),
                 *[f"claim: {c}" for c in claims]])
    model_bars(summary, ORDER, [("attack_success_rate_pct", "ASR % ↓"), ("clean_accuracy_pct", "CA % ↑")],
               out_dir / "main_table.png",
               f"RVPT, {scale} scale: ASR and clean accuracy per defence (mean ± std over seeds)",
               {m: attack(m) for m in pd.read_csv(summary).model.unique()})
