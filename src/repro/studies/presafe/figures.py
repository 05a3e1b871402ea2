"""PreSafe's figures: the main table (safety with CoT on and off, over-refusal, reasoning accuracy,
decisions before CoT; the head-gated inference path as its own row; no paper numbers: 'n/f') with
the claims, and the refusal / over-refusal / accuracy trade-off. Every number comes from the runs'
``summary.csv`` / ``eval.json``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.claims import claim_line, paired
from repro.figures.style import COLORS, new_figure, save_figure, scale_note, write_table
from repro.figures.tables import cell, paired_claim, per_seed, reported_rows

ORDER = ["base", "sft", "presafe"]
GATE = "presafe + head gate"  # presafe's runs scored on the head-gated inference path (gate_* metrics)
METRICS = [("refusal_harmful", "refusal harmful % (CoT on)", True), ("refusal_harmful_wrapped", "refusal jailbreak %", True),
           ("refusal_harmful_nocot", "refusal harmful % (CoT off)", True),
           ("refusal_before_cot", "refused before CoT %", True), ("over_refusal", "over-refusal %", False),
           ("over_refusal_borderline", "over-refusal borderline %", False),
           ("accuracy_math", "math accuracy % (CoT on)", True), ("head_accuracy", "head accuracy %", True)]


def _note(scale: str) -> str:
    return scale_note(scale, "a tiny Qwen2 reasoner built to refuse a synthetic harmful family with CoT off and to "
                             "comply after reasoning with CoT on; arithmetic problems for reasoning; CPU; see "
                             "src/repro/studies/presafe/README.md", "DeepSeek-R1-Distill-Qwen-1.5B")


def method_rows(summary: Path, split: str = "test") -> pd.DataFrame:
    """summary.csv's rows of ``split`` with presafe's gate_* metrics as a method of their own."""
    s = pd.read_csv(summary)
    s = s[s.split == split]
    gate = s[s.metric.str.startswith("gate_")].copy()
    gate["metric"] = gate.metric.str.removeprefix("gate_")
    gated = lambda m: GATE if m == "presafe" else f"{m} + head gate"  # noqa: E731
    gate["method"] = gate.method.map(gated)
    head = s[(s.metric == "head_accuracy")].copy()
    head["method"] = head.method.map(gated)
    return pd.concat([s[~s.metric.str.startswith("gate_")], gate, head], ignore_index=True)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    rank = {m: i for i, m in enumerate(ORDER + [GATE])}
    for (bench, model, method), g in sorted(rows.groupby(["benchmark", "model", "method"]),
                                            key=lambda kv: (kv[0][0], kv[0][1], rank.get(kv[0][2], 99), kv[0][2])):
        row = {"benchmark": bench, "model": model, "method": method, "source": "reproduced", "seeds": int(g.n_seeds.max())}
        for m, label, _ in METRICS:
            r = g[g.metric == m]
            row[label] = cell(r["mean"].iloc[0], r["std"].iloc[0], int(r.n_seeds.iloc[0]), 1) if len(r) else "n/a"
        out.append(row)
    return pd.DataFrame(out)


def within_claim(seeds: pd.DataFrame, method: str, a: str, b: str, text: str) -> list[str]:
    """Per seed of ``method``, metric ``a`` minus metric ``b`` (paired t over seeds; higher = the claim)."""
    out = []
    for (bench, model), g in seeds[seeds.method == method].groupby(["benchmark", "model"]):
        w = g.pivot_table(index="seed", columns="metric", values="value")
        if a not in w or b not in w:
            out.append(f"{text} ({bench}): not measured")
            continue
        d = (w[a] - w[b]).dropna().to_numpy()
        out.append(claim_line(f"{text} ({bench}, {model})", paired(d), higher_is_better=True, digits=1,
                              unit=" points", label=f"Δ = {a} − {b} = ", detail=f"per seed of {method}"))
    return out


def gate_seeds(seeds: pd.DataFrame) -> pd.DataFrame:
    """presafe's gate_* per-seed metrics as method GATE (the paired claims' input)."""
    g = seeds[(seeds.method == "presafe") & seeds.metric.str.startswith("gate_")].copy()
    g["metric"], g["method"] = g.metric.str.removeprefix("gate_"), GATE
    return pd.concat([seeds, g], ignore_index=True)


@registry.FIGURES.register("presafe/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Safety, over-refusal and reasoning per method (mean ± std over seeds) and the claims: the base
    model's finding (safe with CoT off, not with CoT on), PreSafe vs plain SFT on safety with
    reasoning kept, and the head-gated path (paired t over seeds)."""
    rep, rep_notes = reported_rows(reported, [(m, label, h) for m, label, h in METRICS])
    df = pd.concat([table(method_rows(summary)), rep], ignore_index=True).fillna("")
    seeds = gate_seeds(per_seed(train_logs))
    claims = within_claim(seeds, "base", "refusal_harmful_nocot", "refusal_harmful",
                          "the base model refuses harmful prompts more with CoT off than with CoT on (the finding)")
    for base in ("sft", "base"):
        claims += paired_claim(seeds, "presafe", base, "refusal_harmful",
                               f"PreSafe refuses more harmful prompts (CoT on) than {base}", higher=True, digits=1)
        claims += paired_claim(seeds, "presafe", base, "refusal_harmful_wrapped",
                               f"PreSafe refuses more held-out jailbreak prompts than {base}", higher=True, digits=1)
    claims += paired_claim(seeds, "presafe", "sft", "over_refusal", "PreSafe over-refuses less than SFT",
                           higher=False, digits=1)
    claims += paired_claim(seeds, "presafe", "base", "accuracy_math",
                           "PreSafe keeps reasoning: its math accuracy vs the base model's (a drop is 'contradicted')",
                           higher=True, digits=1)
    claims += paired_claim(seeds, "presafe", "sft", "accuracy_math",
                           "PreSafe's math accuracy vs plain SFT's (what the Safety-Head costs in reasoning)",
                           higher=True, digits=1)
    claims += paired_claim(seeds, GATE, "presafe", "refusal_harmful",
                           "the head-gated path refuses more harmful prompts than PreSafe's generation", higher=True,
                           digits=1)
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "PreSafe: safety with chain-of-thought on and off, over-refusal and reasoning",
                [_note(scale),
                 "reproduced: mean ± std over seeds from eval.json (greedy decoding; a seed changes the tuning's "
                 "order and the head's initialisation, not the data or the base model). Refusal = the answer holds "
                 "a refusal marker (keyword detector, [I]); 'jailbreak' = harmful prompts in the two frames training "
                 "never shows; 'refused before CoT' = refused with no CoT token generated. "
                 f"'{GATE}': the same checkpoints, answering 'I'm sorry...' at once when the Safety-Head says "
                 "unsafe (PreSafe's path A) and generating otherwise.",
                 "reported: " + ("; ".join(rep_notes) if rep_notes else "none"),
                 *[f"claim: {c}" for c in claims]])
    rows = method_rows(summary)
    panels = [("refusal_harmful", "refusal, CoT on"), ("refusal_harmful_wrapped", "refusal, jailbreak"),
              ("refusal_harmful_nocot", "refusal, CoT off"), ("over_refusal", "over-refusal"),
              ("accuracy_math", "math accuracy")]
    methods = [m for m in ORDER + [GATE] if m in set(rows.method)]
    fig, ax = new_figure(7.5, 3.2)
    w = 0.8 / max(len(methods), 1)
    for k, meth in enumerate(methods):
        g = rows[rows.method == meth].groupby("metric")[["mean", "std"]].first().reindex([m for m, _ in panels])
        ax.bar(np.arange(len(panels)) + (k - (len(methods) - 1) / 2) * w, g["mean"], w, yerr=g["std"], capsize=2,
               color=COLORS[k % len(COLORS)], label=meth)
    ax.set_xticks(np.arange(len(panels)), [lab for _, lab in panels], fontsize=7)
    ax.set_ylabel("% of test prompts")
    ax.legend(frameon=False, fontsize=7)
    ax.set_title(f"PreSafe, {scale} scale: mean ± std over seeds", fontsize=8)
    save_figure(fig, out_dir / "main_table.png")


@registry.FIGURES.register("presafe/tradeoff")
def tradeoff(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """Refusal on harmful prompts against over-refusal on benign ones, with the math accuracy kept
    (marker label), per method (mean ± std over seeds)."""
    s = method_rows(summary)
    rows = []
    rank = {m: i for i, m in enumerate(ORDER + [GATE])}
    for method, g in sorted(s.groupby("method"), key=lambda kv: (rank.get(kv[0], 99), kv[0])):
        g = g.set_index("metric")
        val = lambda m, k="mean", g=g: float(g.loc[m, k]) if m in g.index else float("nan")  # noqa: E731
        rows.append({"method": method, "refusal_harmful": val("refusal_harmful"), "refusal_std": val("refusal_harmful", "std"),
                     "over_refusal": val("over_refusal"), "over_refusal_std": val("over_refusal", "std"),
                     "accuracy_math": val("accuracy_math"), "refusal_harmful_nocot": val("refusal_harmful_nocot")})
    df = pd.DataFrame(rows)
    write_table(df, out_dir / "tradeoff.csv", out_dir / "tradeoff.md", "PreSafe: the refusal / over-refusal / accuracy trade-off",
                [_note(scale), "means (and stds) over seeds, CoT on; refusal_harmful_nocot: the same model with CoT off"])
    fig, axes = new_figure(9.0, 3.4, ncols=2)
    for k, r in enumerate(rows):
        c = COLORS[k % len(COLORS)]
        axes[0].errorbar(r["over_refusal"], r["refusal_harmful"], xerr=r["over_refusal_std"], yerr=r["refusal_std"],
                         fmt="o", color=c, capsize=2, label=f"{r['method']} (math {r['accuracy_math']:.0f} %)")
    axes[0].set_xlabel("over-refusal on benign prompts (%)")
    axes[0].set_ylabel("refusal on harmful prompts, CoT on (%)")
    axes[0].set_xlim(-5, 105)
    axes[0].set_ylim(-5, 105)
    axes[0].legend(frameon=False, fontsize=7)
    names = [r["method"] for r in rows]
    x = np.arange(len(rows))
    axes[1].bar(x - 0.2, [r["refusal_harmful"] for r in rows], 0.4, color=COLORS[0], label="refusal, CoT on")
    axes[1].bar(x + 0.2, [r["refusal_harmful_nocot"] for r in rows], 0.4, color=COLORS[1], label="refusal, CoT off")
    axes[1].set_xticks(x, names, rotation=20, fontsize=7)
    axes[1].set_ylabel("refusal on harmful prompts (%)")
    axes[1].legend(frameon=False, fontsize=7)
    fig.suptitle(f"PreSafe, {scale} scale", fontsize=8)
    save_figure(fig, out_dir / "tradeoff.png")
