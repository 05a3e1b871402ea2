"""Traffic sensor networks for LTE-ODE (other-papers.md §8): ``traffic/embedded`` (generated),
``traffic/pems`` (a PEMS release) and ``traffic/largest`` (LargeST's CA release and its SD / GBA / GLA
subsets), the paper scale's.

``traffic/embedded``: ``nodes`` sensors on a random geometric graph in the unit square (edges
within ``radius``, weights exp(-d^2 / radius^2)); a speed-like signal per sensor: a free-flow speed
times (1 - a daily congestion profile with a morning and an evening peak, its depth and timing
varying by sensor), smoothed over the graph by ``diffusion`` steps of the normalised adjacency, plus
Gaussian noise; and **shocks**: at Poisson times (``shock_rate`` per sensor per day) a sensor's
speed drops by a factor drawn from ``shock_depth``, holds for ``shock_hold`` further steps (0: none)
and then recovers geometrically (``recovery`` steps to e^-1), its neighbours dropping half as much one
step later. ``shock_hold: 10, recovery: 0.5`` turns the shocks into incidents: eleven steps at full
depth, then cleared within two, a jump ahead that the inputs time when the onset is in them. Shocks
are the discrete regime a Lipschitz vector field smooths over (§8.1).

Files (both variants): ``series.npy`` (T x N float32), ``adjacency.npy`` (N x N float32, weighted,
zero diagonal), ``positions.npy`` (N x 2, for plots; PEMS: sensors on a circle; LargeST: longitude,
latitude),
``shock.npy`` (T x N bool: a shock is active; PEMS: all False, no labels), ``time_of_day.npy``
(T, fraction of the day) and ``MANIFEST.json`` (params, steps per day, the chronological
``splits`` as [start, end) step ranges: 60 / 20 / 20 %).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from repro import io as rio
from repro.registry import DATASETS

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {"seed": 0, "nodes": 100, "days": 8, "steps_per_day": 96, "radius": 0.18,
                            "diffusion": 2, "noise": 0.01, "shock_rate": 0.25, "shock_depth": [0.35, 0.65],
                            "recovery": 4.0, "shock_hold": 0}
SPLITS = (0.6, 0.2, 0.2)


def _splits(t: int) -> dict[str, list[int]]:
    a, b = int(SPLITS[0] * t), int((SPLITS[0] + SPLITS[1]) * t)
    return {"train": [0, a], "valid": [a, b], "test": [b, t]}


def normalised_adjacency(adjacency: np.ndarray) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2 (the GCN propagation matrix)."""
    a = adjacency + np.eye(len(adjacency), dtype=adjacency.dtype)
    d = 1.0 / np.sqrt(a.sum(1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


def generate(params: dict[str, Any]) -> dict[str, np.ndarray]:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"traffic/embedded: unknown params {unknown}; allowed: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    rng = np.random.default_rng(p["seed"])
    n, spd = int(p["nodes"]), int(p["steps_per_day"])
    t = int(p["days"]) * spd
    pos = rng.uniform(0, 1, size=(n, 2))
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    adj = np.where((d < p["radius"]) & (d > 0), np.exp(-(d / p["radius"]) ** 2), 0.0).astype(np.float32)
    tod = (np.arange(t) % spd) / spd
    # daily congestion: two Gaussian peaks (about 8:00 and 17:30), depth and timing per sensor
    shift = rng.normal(0, 0.02, size=(2, n))
    depth = rng.uniform(0.2, 0.5, size=(2, n))
    peaks = sum(depth[k] * np.exp(-0.5 * ((tod[:, None] - (c + shift[k])) / 0.05) ** 2)
                for k, c in enumerate((8 / 24, 17.5 / 24)))
    free = rng.uniform(55, 70, size=n)
    base = free[None] * (1 - peaks)
    prop = normalised_adjacency(adj)
    for _ in range(int(p["diffusion"])):
        base = 0.5 * base + 0.5 * base @ prop.T
    # shocks: onsets per sensor, a drop that holds, then recovers geometrically, half the drop at
    # the neighbours
    drop = np.zeros((t, n))
    onsets = rng.random((t, n)) < p["shock_rate"] / spd
    lo, hi = p["shock_depth"]
    decay = np.exp(-np.maximum(np.arange(t) - int(p["shock_hold"]), 0) / p["recovery"])
    nb = adj > 0
    for step, node in zip(*np.nonzero(onsets)):
        size = rng.uniform(lo, hi)
        drop[step:, node] = np.maximum(drop[step:, node], size * decay[: t - step])
        if step + 1 < t:
            near = nb[node]
            drop[step + 1:, near] = np.maximum(drop[step + 1:, near], 0.5 * size * decay[: t - step - 1, None])
    series = base * (1 - drop) + rng.normal(0, p["noise"] * free.mean(), size=(t, n))
    return {"series": series.astype(np.float32), "adjacency": adj, "positions": pos.astype(np.float32),
            "shock": drop > 0.05, "time_of_day": tod.astype(np.float32)}


def _write(out_dir: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    with rio.atomic_dir(Path(out_dir)) as tmp:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        rio.write_json(tmp / "MANIFEST.json", {**manifest, "nodes": int(arrays["series"].shape[1]),
                                               "steps": int(arrays["series"].shape[0]),
                                               "splits": _splits(int(arrays["series"].shape[0])),
                                               "files": rio.sha256_tree(tmp)})


@DATASETS.register("traffic/embedded")
def build(out_dir: Path, params: dict[str, Any]) -> None:
    arrays = generate(params)
    log.info("traffic/embedded: %d sensors, %d steps, %d edges, shocks active on %.1f %% of (step, sensor)",
             arrays["series"].shape[1], arrays["series"].shape[0], int((arrays["adjacency"] > 0).sum() // 2),
             100 * arrays["shock"].mean())
    _write(out_dir, arrays, {"dataset": "traffic/embedded", "params": {**DEFAULTS, **params},
                             "steps_per_day": int({**DEFAULTS, **params}["steps_per_day"])})


def read_pems(npz: Path, csv: Path, nodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(series T x N: the first channel, flow, of PEMS0x.npz's ``data`` T x N x C; adjacency N x N
    from the edge list ``from,to,cost``: weights exp(-(cost / std)^2), symmetric)."""
    import pandas as pd  # noqa: PLC0415

    with np.load(npz) as z:
        if "data" not in z:
            raise ValueError(f"{npz}: no 'data' array (found {sorted(z.files)})")
        data = z["data"]
    series = (data[..., 0] if data.ndim == 3 else data).astype(np.float32)
    n = series.shape[1] if nodes is None else nodes
    edges = pd.read_csv(csv)
    cols = list(edges.columns)
    if len(cols) < 3:
        raise ValueError(f"{csv}: expected columns from,to,cost; got {cols}")
    i, j, cost = edges[cols[0]].to_numpy(int), edges[cols[1]].to_numpy(int), edges[cols[2]].to_numpy(float)
    if max(i.max(), j.max()) >= n:
        raise ValueError(f"{csv}: a sensor index {max(i.max(), j.max())} beyond the {n} sensors of {npz.name}")
    adj = np.zeros((n, n), np.float32)
    w = np.exp(-((cost / (cost.std() or 1.0)) ** 2))
    adj[i, j] = w
    adj[j, i] = w
    np.fill_diagonal(adj, 0)
    return series, adj


@DATASETS.register("traffic/pems")
def build_pems(out_dir: Path, params: dict[str, Any]) -> None:
    """``params``: ``name`` (e.g. PEMS08), ``npz`` and ``csv`` (``{url, sha256}``: a ``file://`` or
    HTTP URL of the release's ``PEMS0x.npz`` and ``PEMS0x.csv``), ``steps_per_day`` (288: 5 min)."""
    from repro.data.download import download  # noqa: PLC0415

    unknown = sorted(set(params) - {"name", "npz", "csv", "steps_per_day"})
    if unknown or not params.get("npz") or not params.get("csv"):
        raise ValueError(f"traffic/pems: needs npz and csv ({{url, sha256}}), optional name, steps_per_day; "
                         f"unknown {unknown}")
    spd = int(params.get("steps_per_day", 288))
    with tempfile.TemporaryDirectory() as scratch:
        digests = {}
        for key in ("npz", "csv"):
            digests[key] = download(params[key]["url"], Path(scratch) / f"data.{key}", params[key].get("sha256"))
        series, adj = read_pems(Path(scratch) / "data.npz", Path(scratch) / "data.csv")
    t, n = series.shape
    angle = 2 * np.pi * np.arange(n) / n  # no coordinates in the release: sensors on a circle for plots
    _write(out_dir, {"series": series, "adjacency": adj,
                     "positions": np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32),
                     "shock": np.zeros((t, n), bool), "time_of_day": ((np.arange(t) % spd) / spd).astype(np.float32)},
           {"dataset": "traffic/pems", "params": params, "steps_per_day": spd,
            "sources": {k: {"url": params[k]["url"], "sha256": v} for k, v in digests.items()}})


#: LargeST's sub-datasets as PeMS districts of the CA release (the generate_<subset>_dataset notebooks
#: of liuxu77/LargeST @ b7c6ff5: SD = district 11, GBA = 4, GLA = 7, 8, 12); CA: every sensor
LARGEST_DISTRICTS: dict[str, tuple[int, ...] | None] = {"ca": None, "sd": (11,), "gba": (4,), "gla": (7, 8, 12)}


def read_largest(his: Path, meta: Path, adj: Path, subset: str, resample_min: int = 15
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(series T x N flow, adjacency N x N, positions N x 2 (Lng, Lat), step times (datetime64)) of
    a LargeST subset, processed as the release's scripts do: the raw 5-minute flow (a pandas HDF
    frame, sensor ids as columns) averaged over ``resample_min`` minutes and rounded, gaps set to 0
    (process_ca_his.ipynb); the sensors of the subset's districts in ``ca_meta.csv`` order, their
    rows and columns of ``ca_rn_adj.npy`` by the meta's ``ID2`` (generate_<subset>_dataset.ipynb)."""
    import pandas as pd  # noqa: PLC0415

    if subset not in LARGEST_DISTRICTS:
        raise ValueError(f"traffic/largest: subset {subset!r}; allowed: {', '.join(LARGEST_DISTRICTS)}")
    m = pd.read_csv(meta)
    missing = {"ID", "ID2", "Lat", "Lng", "District"} - set(m.columns)
    if missing:
        raise ValueError(f"{meta}: no column(s) {sorted(missing)} (LargeST's ca_meta.csv has ID, Lat, Lng, District, ..., ID2)")
    if LARGEST_DISTRICTS[subset] is not None:
        m = m[m.District.isin(LARGEST_DISTRICTS[subset])].reset_index(drop=True)
    frame = pd.read_hdf(his)
    frame.columns = frame.columns.astype(str)
    ids = m.ID.astype(str).tolist()
    absent = [i for i in ids if i not in frame.columns]
    if absent:
        raise ValueError(f"{his}: sensors of {meta.name} not in the flow data: {absent[:5]} ({len(absent)} in all)")
    frame = frame[ids]
    if resample_min:
        frame = frame.resample(f"{int(resample_min)}min").mean().round(0)
    frame = frame.fillna(0)
    full = np.load(adj)
    rows = m.ID2.to_numpy(int)
    if rows.max() >= len(full):
        raise ValueError(f"{adj}: {len(full)} sensors, but {meta.name} indexes row {rows.max()}")
    a = full[np.ix_(rows, rows)].astype(np.float32)
    np.fill_diagonal(a, 0)
    return (frame.to_numpy(np.float32), a, m[["Lng", "Lat"]].to_numpy(np.float32), frame.index.to_numpy())


@DATASETS.register("traffic/largest")
def build_largest(out_dir: Path, params: dict[str, Any]) -> None:
    """``params``: ``subset`` (ca, sd, gba, gla), ``his`` / ``meta`` / ``adj`` (``{url, sha256}`` of
    ``ca_his_raw_<year>.h5``, ``ca_meta.csv``, ``ca_rn_adj.npy``: the Kaggle release
    liuxu77/largest needs a login, so the URLs are ``file://`` paths to a manual download, or a
    mirror's), ``resample_min`` (15, as the release's processing)."""
    from repro.data.download import download  # noqa: PLC0415

    allowed = {"subset", "his", "meta", "adj", "resample_min"}
    unknown = sorted(set(params) - allowed)
    absent = [k for k in ("his", "meta", "adj") if not (params.get(k) or {}).get("url")]
    if unknown or absent:
        raise ValueError(f"traffic/largest: unknown {unknown}, no url for {absent}; needs his, meta, adj as {{url, "
                         f"sha256}} (download https://www.kaggle.com/datasets/liuxu77/largest, then file:// paths), "
                         f"subset ({', '.join(LARGEST_DISTRICTS)}), optional resample_min")
    subset, minutes = params.get("subset", "sd"), int(params.get("resample_min", 15))
    with tempfile.TemporaryDirectory() as scratch:
        names = {"his": "his.h5", "meta": "meta.csv", "adj": "adj.npy"}
        digests = {k: download(params[k]["url"], Path(scratch) / f, params[k].get("sha256")) for k, f in names.items()}
        series, adj, pos, times = read_largest(*(Path(scratch) / names[k] for k in ("his", "meta", "adj")), subset, minutes)
    day = (times - times.astype("datetime64[D]")) / np.timedelta64(1, "D")
    spd = int(round(24 * 60 / (minutes or 5)))
    log.info("traffic/largest %s: %d sensors, %d steps of %d min", subset, series.shape[1], series.shape[0], minutes or 5)
    _write(out_dir, {"series": series, "adjacency": adj, "positions": pos, "shock": np.zeros(series.shape, bool),
                     "time_of_day": day.astype(np.float32)},
           {"dataset": "traffic/largest", "params": params, "steps_per_day": spd,
            "sources": {k: {"url": params[k]["url"], "sha256": v} for k, v in digests.items()}})
