"""LTE-ODE's figures: the main table (no paper numbers: 'n/f'), a forecast around a shock with the
LTE mask on the graph at that step, and the integration-step ablation (accuracy vs the activation
memory a training step keeps). Every number comes from the runs' ``summary.csv`` / ``eval.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from repro import registry
from repro.figures.claims import claim_line, paired
from repro.figures.style import COLORS, method_order, new_figure, save_figure, scale_note, write_table
from repro.figures.tables import lowest_seed_runs, paired_claim, per_seed, reported_rows, reproduced_rows

ORDER = ["node", "node_penalty", "lteode", "lteode_soft", "lteode_sub2", "lteode_sub4", "node_adaptive"]
METRICS = [("mae_at12", "MAE@12", False), ("rmse_at12", "RMSE@12", False), ("mape_at12", "MAPE@12 %", False),
           ("mae_avg", "MAE avg", False), ("shock_mae_at12", "shock MAE@12", False),
           ("shock_rmse_at12", "shock RMSE@12", False), ("shock_mape_at12", "shock MAPE@12 %", False),
           ("mask_on_shock_pct", "mask on shock %", True), ("mask_off_shock_pct", "mask elsewhere %", False),
           ("nfe_per_forward", "f evals", False), ("activation_mib_per_window", "activation MiB / window", False)]


def _note(scale: str) -> str:
    return scale_note(scale, "a graph neural ODE on a generated 100-sensor network with a daily rhythm and "
                             "Poisson shocks, 15-minute steps, 12 in -> 12 ahead; CPU; see "
                             "src/repro/studies/lteode/README.md", "PEMS08")


def _seed_note(evals: list[Path]) -> str:
    """What a seed changes: the data too where the runs read per-seed draws (``per_seed``: dataset
    folders ``traffic/embedded.seed<k>``), as their eval.json files record."""
    names = {json.loads(p.read_text())["provenance"]["dataset"]["name"] for p in evals}
    if names and all(re.search(r"\.seed\d+$", n) for n in names):
        return (f"each seed generates its own network, daily rhythm and shocks (per-seed data, {len(names)} "
                f"draw{'s' if len(names) > 1 else ''} here) and its own initialisation and batch order")
    return "a seed changes the initialisation and the batch order, not the data"


def relative_gain_claim(seeds: pd.DataFrame, a: str, b: str) -> list[str]:
    """Is ``a``'s relative MAE@12 gain over ``b`` larger on shock windows than overall (per seed:
    (b - a) / b on shock windows minus the same over all windows; paired t over seeds)?"""
    out = []
    for (bench, model), g in seeds.groupby(["benchmark", "model"]):
        w = g.pivot_table(index=["seed"], columns=["method", "metric"], values="value")
        need = [(m, k) for m in (a, b) for k in ("mae_at12", "shock_mae_at12")]
        if any(c not in w.columns for c in need):
            out.append(f"{a} gains most on shock windows ({bench}): not measured")
            continue
        gain = {k: (w[(b, k)] - w[(a, k)]) / w[(b, k)] for k in ("mae_at12", "shock_mae_at12")}
        d = (gain["shock_mae_at12"] - gain["mae_at12"]).dropna().to_numpy()
        out.append(claim_line(f"{a} gains more over {b} on shock windows than overall ({bench}, {model})",
                              paired(d), higher_is_better=True, scale=100, digits=2, unit=" points",
                              label="Δ relative MAE@12 gain = ",
                              detail="per seed: relative gain on shock windows minus relative gain on all windows"))
    return out


@registry.FIGURES.register("lteode/main_table")
def main_table(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str,
               evals: list[Path]) -> None:
    """MAE / RMSE / MAPE at 12 steps overall and on shock targets per method (mean ± std over seeds);
    claims: LTE-ODE beats the plain and the penalised ODE, most on shock windows (paired t)."""
    rep, rep_notes = reported_rows(reported, [("mae_at12", "MAE@12", False)])
    df = pd.concat([reproduced_rows(summary, ORDER, METRICS), rep], ignore_index=True).fillna("")
    seeds = per_seed(train_logs)
    claims = []
    for base in ("node", "node_penalty"):
        for metric, what in (("mae_at12", "MAE@12"), ("shock_mae_at12", "MAE@12 on shock windows")):
            claims += paired_claim(seeds, "lteode", base, metric, f"LTE-ODE has a lower {what} than {base}",
                                   higher=False, digits=4)
        claims += relative_gain_claim(seeds, "lteode", base)
    write_table(df, out_dir / "main_table.csv", out_dir / "main_table.md",
                "LTE-ODE: 12-step traffic forecasts, overall and on shock windows",
                [_note(scale),
                 "reproduced: mean ± std over seeds from eval.json (test split: the last 20 % of the series; "
                 f"{_seed_note(evals)}). Shock windows: the sensors "
                 "with a shock under way (drop > 5 %) at the window's last observed step, all 12 targets [I]. "
                 "'mask' = the share of targets whose "
                 "last integration step's LTE mask fired; 'f evals' = vector-field evaluations per forward "
                 "over 12 steps; activation MiB = the tensors one training forward keeps for backward.",
                 "reported: " + ("; ".join(rep_notes) if rep_notes else "none"),
                 *[f"claim: {c}" for c in claims]])
    s = pd.read_csv(summary)
    s = s[s.split == "test"]
    methods = [m for m in method_order(s.method, ORDER) if m in ORDER[:3]] or method_order(s.method, ORDER)
    fig, ax = new_figure(5.5, 3.2)
    cols = [("mae_at12", "all windows"), ("shock_mae_at12", "shock windows")]
    w = 0.8 / max(len(methods), 1)
    for k, meth in enumerate(methods):
        g = s[s.method == meth].set_index("metric").reindex([c for c, _ in cols])
        ax.bar(np.arange(len(cols)) + (k - (len(methods) - 1) / 2) * w, g["mean"], w, yerr=g["std"], capsize=2,
               color=COLORS[k % len(COLORS)], label=meth)
    ax.set_xticks(np.arange(len(cols)), [c for _, c in cols])
    ax.set_ylabel("MAE at 12 steps (data units)")
    ax.legend(frameon=False, fontsize=7)
    ax.set_title(f"LTE-ODE, {scale} scale: mean ± std over seeds", fontsize=8)
    save_figure(fig, out_dir / "main_table.png")


@registry.FIGURES.register("lteode/shock_forecast")
def shock_forecast(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str,
                   evals: list[Path]) -> None:
    """The test shock window with the strongest recovery ahead (chosen from the data, so the same for
    every method): the sensor's last 12 observations, the truth and each method's forecast (lowest
    seed); and, on the sensor graph, the share of the window's 12 steps LTE-ODE's mask fired."""
    runs = lowest_seed_runs(evals, ("benchmark", "model", "method"))
    rows, examples = [], {}
    for (bench, model, method), e in sorted(runs.items()):
        ex = e["splits"]["test"].get("example")
        if not ex:
            continue
        examples[method] = ex
        for k, v in enumerate(ex["forecast"], 1):
            rows.append({"benchmark": bench, "model": model, "method": method, "seed": e["seed"], "node": ex["node"],
                         "window_end": ex["window_end"], "step": k, "truth": ex["truth"][k - 1], "forecast": v,
                         "mask_share_at_node": ex.get("mask_share", [""] * (ex["node"] + 1))[ex["node"]]})
    df = pd.DataFrame(rows)
    write_table(df, out_dir / "shock_forecast.csv", out_dir / "shock_forecast.md",
                "LTE-ODE: a forecast around the largest test shock",
                [_note(scale), "each method's lowest seed; the window and sensor are chosen from the data "
                 "(the shock window whose truth rises most above the last observation), so every method is "
                 "shown on the same shock"])
    fig, axes = new_figure(9.0, 3.4, ncols=2)
    ref = examples.get("lteode") or next(iter(examples.values()), None)
    if ref is not None:
        hist, truth = ref["history"], ref["truth"]
        x_in, x_out = np.arange(-len(hist) + 1, 1), np.arange(1, len(truth) + 1)
        axes[0].plot(x_in, hist, color="0.4", label="observed")
        axes[0].plot(x_out, truth, color="black", lw=2, label="truth")
        for k, meth in enumerate(m for m in method_order(examples, ORDER) if m in examples):
            axes[0].plot(x_out, examples[meth]["forecast"], color=COLORS[k % len(COLORS)], ls="--", label=meth)
        axes[0].set_xlabel(f"steps after the window end (sensor {ref['node']})")
        axes[0].set_ylabel("speed")
        axes[0].legend(frameon=False, fontsize=7)
        pos = np.asarray(ref["positions"])
        lte = examples.get("lteode", ref)
        mask = np.asarray(lte.get("mask_share", lte["mask"]))
        sc = axes[1].scatter(pos[:, 0], pos[:, 1], c=mask, cmap="viridis", vmin=0, vmax=1, s=25)
        shocked = np.asarray(ref["shock"], bool)
        axes[1].scatter(pos[shocked, 0], pos[shocked, 1], facecolors="none", edgecolors="red", s=70, lw=0.8,
                        label="shock under way")
        axes[1].scatter(pos[ref["node"], 0], pos[ref["node"], 1], marker="x", color="red", s=60, label="shown sensor")
        axes[1].set_title("LTE-ODE: share of the 12 steps its mask fired, per sensor", fontsize=8)
        axes[1].set_xticks([])
        axes[1].set_yticks([])
        axes[1].legend(frameon=False, fontsize=7, loc="lower right")
        fig.colorbar(sc, ax=axes[1], fraction=0.04)
    save_figure(fig, out_dir / "shock_forecast.png")


@registry.FIGURES.register("lteode/integration_steps")
def integration_steps(*, summary: Path, train_logs: list[Path], reported: Path, out_dir: Path, scale: str) -> None:
    """The integration-step ablation: MAE@12 (overall, shock) against the activation memory per
    window and the vector-field evaluations, for 1, 2 and 4 steps per horizon step (and the plain
    ODE, fixed and adaptive, for reference)."""
    s = pd.read_csv(summary)
    s = s[s.split == "test"]
    keep = [m for m in method_order(s.method, ORDER) if m in ("node", "node_adaptive", "lteode", "lteode_sub2",
                                                               "lteode_sub4")]
    rows = []
    for meth in keep:
        g = s[s.method == meth].set_index("metric")
        rows.append({"method": meth, "seeds": int(g["n_seeds"].max()),
                     **{lab: round(float(g.loc[m, "mean"]), 4) if m in g.index else float("nan")
                        for m, lab in (("mae_at12", "MAE@12"), ("shock_mae_at12", "shock MAE@12"),
                                       ("activation_mib_per_window", "activation MiB / window"),
                                       ("nfe_per_forward", "f evals"), ("ms_per_window", "ms / window"))}})
    df = pd.DataFrame(rows)
    write_table(df, out_dir / "integration_steps.csv", out_dir / "integration_steps.md",
                "LTE-ODE: integration steps vs accuracy and memory",
                [_note(scale), "means over seeds; memory = the bytes of the tensors one training forward keeps "
                 "for backward (a saved-tensors hook), per window"])
    fig, ax = new_figure(4.8, 3.2)
    for k, r in enumerate(rows):
        ax.scatter(r["activation MiB / window"], r["MAE@12"], color=COLORS[k % len(COLORS)], label=r["method"])
    ax.set_xlabel("activation memory per window (MiB)")
    ax.set_ylabel("MAE@12")
    ax.legend(frameon=False, fontsize=7)
    save_figure(fig, out_dir / "integration_steps.png")
