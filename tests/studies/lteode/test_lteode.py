"""LTE-ODE: the embedded Runge-Kutta pair's error is the difference of its two solutions and costs no
extra vector-field evaluation; the hard mask and the compensation branch stay inactive where no
sensor's error stands out; the generated network and the PEMS reader; the family's scores; and the
study through the real workflow, shrunk."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from repro.data import traffic
from repro.forecast.family import EvalConfig, TrafficData, Windows, forecast_metrics, scores
from repro.studies.lteode.ode import GraphODE, VectorField, rk_step, tableau
from repro.studies.lteode.params import ODEParams

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
from smokerun import snakemake  # noqa: E402  (tests/workflow/smokerun.py, the shared runner)


def _ring(n: int) -> torch.Tensor:
    a = np.zeros((n, n), np.float32)
    for i in range(n):
        a[i, (i + 1) % n] = a[(i + 1) % n, i] = 1.0
    return torch.from_numpy(traffic.normalised_adjacency(a))


def test_the_embedded_error_is_the_difference_of_the_two_solutions_at_no_extra_evaluation():
    torch.manual_seed(0)
    f = VectorField(_ring(7), 5).double()
    h = torch.randn(3, 7, 5, dtype=torch.float64)
    tab = tableau(torch.float64, "cpu")
    f.nfe = 0
    f0 = f(0.0, h)
    y1, f1, err = rk_step(f, h, f0, 0.0, 0.5, tab)
    assert f.nfe == 1 + 3  # f0, then the stages at 1/2 and 3/4 and the last (first-same-as-last) one
    # the stages, recomputed by hand; the 2nd-order solution from the same stages
    k1 = f0
    k2 = f(0.25, h + 0.5 * 0.5 * k1)
    k3 = f(0.375, h + 0.5 * 0.75 * k2)
    y_main = h + 0.5 * (2 / 9 * k1 + 1 / 3 * k2 + 4 / 9 * k3)
    k4 = f(0.5, y_main)
    y_low = h + 0.5 * (7 / 24 * k1 + 1 / 4 * k2 + 1 / 3 * k3 + 1 / 8 * k4)
    torch.testing.assert_close(y1, y_main, rtol=0, atol=1e-13)
    torch.testing.assert_close(f1, k4, rtol=0, atol=1e-13)  # reused as the next step's first stage
    torch.testing.assert_close(err, y_main - y_low, rtol=0, atol=1e-13)


def test_lteode_evaluates_the_field_as_often_as_the_plain_ode():
    torch.manual_seed(0)
    x, tod = torch.randn(2, 6, 12), torch.rand(2)
    counts = {}
    for name, p in {"plain": ODEParams(), "penalty": ODEParams(lte_penalty=0.1),
                    "mask only": ODEParams(mask="hard", kappa=1e9)}.items():
        m = GraphODE(_ring(6), 12, 8, p)
        m.field.nfe = 0
        m(x, tod, 12)
        counts[name] = m.field.nfe
    assert counts == {"plain": 37, "penalty": 37, "mask only": 37}  # 1 + 3 per step, 12 steps


def test_mask_and_compensation_are_inactive_where_no_error_stands_out():
    """Identical sensors on a ring (a shock-free, symmetric series): every sensor's error is the
    same, so the thresholded mask is 0 everywhere and LTE-ODE's forecast is the plain ODE's, at the
    plain ODE's cost; a planted outlier sensor fires it."""
    torch.manual_seed(0)
    lte = GraphODE(_ring(8), 12, 8, ODEParams(mask="hard", kappa=2.0, compensation=True))
    plain = GraphODE(_ring(8), 12, 8, ODEParams())
    plain.load_state_dict({k: v for k, v in lte.state_dict().items() if not k.startswith("jump.")})
    x = torch.sin(torch.linspace(0, 3, 12)).expand(2, 8, 12).clone()
    tod = torch.tensor([0.3, 0.7])
    lte.field.nfe = plain.field.nfe = 0
    a, b = lte(x, tod, 12), plain(x, tod, 12)
    assert float(a["mask"].abs().max()) == 0.0
    torch.testing.assert_close(a["pred"], b["pred"], rtol=0, atol=0)
    assert lte.field.nfe == plain.field.nfe == 37
    # the mapping: a sensor whose error is more than kappa x the mean fires, hard or soft
    e = torch.tensor([[1.0, 1.0, 1.0, 10.0], [2.0, 2.0, 2.0, 2.0]])
    torch.testing.assert_close(lte.mask_of(e), torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    soft = GraphODE(_ring(8), 12, 8, ODEParams(mask="soft", kappa=2.0, tau=0.25)).mask_of(e)
    assert soft[0, 3] > 0.98 and float(soft[0, :3].max()) < 0.01 and torch.allclose(soft[1], soft[1, :1])


def test_the_adaptive_integrator_solves_the_same_ode():
    torch.manual_seed(0)
    fixed = GraphODE(_ring(5), 12, 6, ODEParams(substeps=8))
    adaptive = GraphODE(_ring(5), 12, 6, ODEParams(integrator="adaptive", rtol=1e-7, atol=1e-9))
    adaptive.load_state_dict(fixed.state_dict())
    x, tod = torch.randn(2, 5, 12), torch.rand(2)
    torch.testing.assert_close(fixed(x, tod, 4)["pred"], adaptive(x, tod, 4)["pred"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("kw, match", [({"compensation": True}, "needs a mask"),
                                       ({"integrator": "adaptive", "lte_penalty": 0.1}, "no per-step error"),
                                       ({"substeps": 0}, "substeps >= 1")])
def test_bad_params_say_what_is_wrong(kw, match):
    with pytest.raises(ValueError, match=match):
        ODEParams(**kw)


def test_the_generated_network(tmp_path):
    a = traffic.generate({"nodes": 30, "days": 2})
    assert a["series"].shape == (192, 30) and a["adjacency"].shape == (30, 30)
    assert np.allclose(a["adjacency"], a["adjacency"].T) and np.all(np.diag(a["adjacency"]) == 0)
    assert 0 < a["shock"].mean() < 0.5 and a["series"].min() > 0
    calm = traffic.generate({"nodes": 30, "days": 2, "shock_rate": 0.0})
    assert not calm["shock"].any()
    np.testing.assert_array_equal(traffic.generate({"nodes": 30, "days": 2})["series"], a["series"])
    traffic.build(tmp_path / "t", {"nodes": 30, "days": 2})
    m = json.loads((tmp_path / "t" / "MANIFEST.json").read_text())
    assert m["splits"] == {"train": [0, 115], "valid": [115, 153], "test": [153, 192]}
    w = Windows(TrafficData(tmp_path / "t"), "test", 12, 12)
    assert w.x.shape == (len(w), 30, 12) and w.y.shape == (len(w), 12, 30) and w.ends[0] == 153
    with pytest.raises(ValueError, match="unknown params"):
        traffic.generate({"sensors": 3})


def _shock_runs(flags: np.ndarray) -> np.ndarray:
    """Lengths of the runs of active shock steps (T x N flags) that end before the series does."""
    padded = np.pad(flags.astype(np.int8), ((1, 1), (0, 0)))
    starts = np.argwhere(np.diff(padded, axis=0) == 1)
    ends = np.argwhere(np.diff(padded, axis=0) == -1)
    starts, ends = starts[np.lexsort(starts.T)], ends[np.lexsort(ends.T)]
    keep = ends[:, 0] < len(flags)
    return (ends[:, 0] - starts[:, 0])[keep]


def test_held_shocks_are_incidents_that_clear_at_once():
    base = {"nodes": 30, "days": 4, "shock_rate": 0.5, "shock_depth": [0.5, 0.5], "recovery": 0.5}
    quick = _shock_runs(traffic.generate(base)["shock"])
    held = _shock_runs(traffic.generate({**base, "shock_hold": 10})["shock"])
    # a drop of 0.5 (0.25 at the neighbours) is flagged while above 0.05: two steps of recovery 0.5
    # (e^-2 x 0.5 = 0.068, e^-4 x 0.5 < 0.05); held for ten more steps, every run lasts >= 11 steps
    assert len(quick) and len(held) and quick.max() < 11 <= held.min()
    # the default (no hold) is the generator it was before the option
    np.testing.assert_array_equal(traffic.generate({"nodes": 30, "days": 2, "shock_hold": 0})["series"],
                                  traffic.generate({"nodes": 30, "days": 2})["series"])


def test_pems_release_from_local_files(tmp_path):
    data = np.random.default_rng(0).uniform(0, 300, size=(40, 5, 3)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, data=data)
    (tmp_path / "PEMS08.npz").write_bytes(buf.getvalue())
    (tmp_path / "PEMS08.csv").write_text("from,to,cost\n0,1,100.0\n1,2,250.5\n3,4,80.0\n")
    out = tmp_path / "pems"
    traffic.build_pems(out, {"name": "PEMS08", "npz": {"url": (tmp_path / "PEMS08.npz").as_uri()},
                             "csv": {"url": (tmp_path / "PEMS08.csv").as_uri()}})
    np.testing.assert_array_equal(np.load(out / "series.npy"), data[..., 0])
    adj = np.load(out / "adjacency.npy")
    assert adj[0, 1] == adj[1, 0] > 0 and adj[0, 2] == 0 and adj[3, 4] > adj[1, 2]
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert len(manifest["sources"]["npz"]["sha256"]) == 64 and not np.load(out / "shock.npy").any()
    bad = tmp_path / "bad.npz"
    np.savez(bad, flow=data)
    with pytest.raises(ValueError, match="no 'data' array"):
        traffic.build_pems(tmp_path / "x", {"npz": {"url": bad.as_uri()}, "csv": {"url": (tmp_path / "PEMS08.csv").as_uri()}})
    assert not (tmp_path / "x").exists()


def test_largest_release_from_local_files(tmp_path):
    """LargeST's CA files laid out as the Kaggle release (a pandas HDF frame of 5-minute flow, sensor
    ids as columns; ca_meta.csv; ca_rn_adj.npy), processed as the release's notebooks: the SD subset
    (district 11) in meta order, 15-minute means rounded, gaps 0, the adjacency rows by ID2."""
    import pandas as pd

    times = pd.date_range("2019-01-01", periods=24, freq="5min")
    ids = [7001, 8002, 9003, 9004]
    flow = pd.DataFrame(np.arange(24 * 4, dtype=float).reshape(24, 4), index=times, columns=[str(i) for i in ids])
    flow.iloc[3:6, 1] = np.nan  # a 15-minute gap at sensor 8002
    flow.to_hdf(tmp_path / "ca_his_raw_2019.h5", key="t", mode="w")
    pd.DataFrame({"ID": [9004, 7001, 8002, 9003], "Lat": [32.1, 34.0, 32.7, 37.5], "Lng": [-117.1, -118.2, -117.0, -122.0],
                  "District": [11, 7, 11, 4], "ID2": [3, 0, 1, 2]}).to_csv(tmp_path / "ca_meta.csv", index=False)
    full = np.arange(16, dtype=np.float32).reshape(4, 4) / 16
    np.save(tmp_path / "ca_rn_adj.npy", full)
    files = {"his": "ca_his_raw_2019.h5", "meta": "ca_meta.csv", "adj": "ca_rn_adj.npy"}
    out = tmp_path / "sd"
    traffic.build_largest(out, {"subset": "sd", **{k: {"url": (tmp_path / f).as_uri()} for k, f in files.items()}})
    series = np.load(out / "series.npy")
    expected = flow[["9004", "8002"]].resample("15min").mean().round(0).fillna(0).to_numpy(np.float32)
    np.testing.assert_array_equal(series, expected)
    assert series.shape == (8, 2) and series[1, 1] == 0  # the gap
    adj = np.load(out / "adjacency.npy")
    np.testing.assert_array_equal(adj, np.array([[0, full[3, 1]], [full[1, 3], 0]], np.float32))
    np.testing.assert_array_equal(np.load(out / "positions.npy"), np.array([[-117.1, 32.1], [-117.0, 32.7]], np.float32))
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["steps_per_day"] == 96 and manifest["splits"]["test"] == [6, 8]
    np.testing.assert_allclose(np.load(out / "time_of_day.npy")[:2], [0.0, 15 / 1440])
    with pytest.raises(ValueError, match="subset 'la'"):
        traffic.build_largest(tmp_path / "x", {"subset": "la", **{k: {"url": (tmp_path / f).as_uri()} for k, f in files.items()}})
    with pytest.raises(ValueError, match="no url for"):
        traffic.build_largest(tmp_path / "x", {"subset": "sd"})


def test_scores_by_hand():
    truth = np.array([[10.0, 0.5], [20.0, 40.0]])
    pred = np.array([[12.0, 0.5], [20.0, 30.0]])
    s = scores(pred, truth, None, floor=1.0)
    assert s["mae"] == pytest.approx(3.0) and s["rmse"] == pytest.approx(np.sqrt(104 / 4))
    assert s["mape"] == pytest.approx(100 * (0.2 + 0 + 0.25) / 3)  # the 0.5 target is below the floor
    only = scores(pred, truth, np.array([[False, False], [False, True]]), floor=1.0)
    assert only == {"mae": 10.0, "rmse": 10.0, "mape": 25.0}
    m = forecast_metrics(pred[None], truth[None], np.array([[[False, False], [False, True]]]),
                         EvalConfig(horizons=[2]))
    assert m["mae_at2"] == 5.0 and m["shock_mae_at2"] == 10.0 and m["shock_target_pct"] == 25.0


@pytest.mark.workflow
def test_lteode_through_the_workflow(root, tmp_path):
    shutil.copytree(root / "config", tmp_path / "config")
    shutil.copytree(root / "paper_figures" / "reported", tmp_path / "paper_figures" / "reported")
    path = tmp_path / "config" / "studies" / "lteode.yaml"
    data = yaml.safe_load(path.read_text())
    data["datasets"]["traffic/embedded"] = {"seed": 0, "per_seed": "seed", "nodes": 20, "days": 3}
    data["scales"]["embedded"]["train"].update(epochs=2, max_windows=32)
    path.write_text(yaml.safe_dump(data))
    cfg = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    cfg["seeds"] = {"lteode": [0, 1]}
    cfg["ablations"] = True
    cfg["methods"] = {"lteode": ["node", "node_penalty", "lteode", "lteode_sub2"]}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(root, tmp_path, "--cores", "2", "--config", "studies=[lteode]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = pd.read_csv(tmp_path / "results/embedded/lteode/summary.csv")
    assert set(s.method) == {"node", "node_penalty", "lteode", "lteode_sub2"} and (s.n_seeds == 2).all()
    for fig in ("main_table", "shock_forecast", "integration_steps"):
        for ext in ("csv", "md", "png"):
            assert (tmp_path / f"paper_figures/embedded/lteode/{fig}.{ext}").stat().st_size > 0
    md = (tmp_path / "paper_figures/embedded/lteode/main_table.md").read_text()
    assert "claim: LTE-ODE has a lower MAE@12 than node (traffic, graph-ode-32): " in md and "2 paired" in md
    assert "each seed generates its own network, daily rhythm and shocks (per-seed data, 2 draws here)" in md  # per_seed
    steps = pd.read_csv(tmp_path / "paper_figures/embedded/lteode/integration_steps.csv").set_index("method")
    assert steps.loc["lteode_sub2", "f evals"] > steps.loc["lteode", "f evals"]
    shock = pd.read_csv(tmp_path / "paper_figures/embedded/lteode/shock_forecast.csv")
    assert shock.groupby("method").node.nunique().eq(1).all() and shock.node.nunique() == 1  # one shock for all
