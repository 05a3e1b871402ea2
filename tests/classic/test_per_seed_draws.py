"""Issue 21 item 3: where a paper re-splits its data per trial, a run seed draws the split (and, for
generated data, the sample and its weak labels); one seed draws the same data twice. Each dataset
here is declared ``per_seed: seed`` in its study's config (tests/test_config.py checks the wiring)."""

from __future__ import annotations

import numpy as np
import pytest

from repro import plugins, registry
from repro.classic.data import load_dataset
from repro.config import load, run_table

# dataset -> (a plugin declaring it, the arrays whose rows each draw takes from one fixed pool;
# None: a generated sample, drawn anew)
DRAWN = {"lac_digits/embedded": ("repro.studies.nrpr", ("X_train", "X_unlabeled", "X_test")),
         "oocpll-digits/embedded": ("repro.studies.oocpll", None),
         "multilabel/embedded": ("repro.studies.mcc", None)}


def _draw(tmp_path, key: str, seed: int, tag: str):
    out = tmp_path / f"{key.replace('/', '_')}-{tag}"
    registry.DATASETS.get(key)(out, {"seed": seed})
    return load_dataset(out).arrays


@pytest.mark.parametrize("key", list(DRAWN))
def test_a_seed_redraws_the_split_and_one_seed_draws_it_again(tmp_path, key):
    plugins.load([DRAWN[key][0]])
    a, again, other = _draw(tmp_path, key, 1, "a"), _draw(tmp_path, key, 1, "b"), _draw(tmp_path, key, 2, "c")
    assert sorted(a) == sorted(again) == sorted(other)
    for name in a:
        np.testing.assert_array_equal(a[name], again[name], err_msg=f"{key}: {name} differs under one seed")
    for split in ("X_train", "X_test"):
        assert a[split].shape == other[split].shape
        assert not np.array_equal(a[split], other[split]), f"{key}: seeds 1 and 2 draw the same {split}"
    if pool := DRAWN[key][1]:  # drawn from one fixed pool (sklearn's 1,797 digits): many rows recur
        rows = [{r.tobytes() for k in pool for r in d[k]} for d in (a, other)]
        assert len(rows[0] & rows[1]) > 0.4 * len(rows[0])
        assert len({r.tobytes() for r in a["X_test"]} & {r.tobytes() for r in other["X_test"]}) < len(a["X_test"])


def test_every_such_dataset_is_declared_per_seed(root, workflow_config):
    """The embedded datasets above are drawn per run seed by the default configuration."""
    workflow_config["studies"] = ["nrpr", "oocpll", "mcc", "camel"]
    loaded = load(workflow_config, root)
    embedded = {key for key in loaded["per_seed"] if key.endswith("/embedded")}
    assert embedded == set(DRAWN) and set(loaded["per_seed"].values()) == {"seed"}
    assert all(r.dataset == f"{r.dataset.rsplit('.seed', 1)[0]}.seed{r.seed}" for r in run_table(loaded))


# the other studies' generated data, drawn per seed since their models are too (per_seed models):
# dataset -> (a plugin declaring it, small generator params); the one file a seed does not change:
# the traffic clock (time of day of each step)
GENERATED = {
    "shapes/embedded": ("repro.studies.bdetclip", {"train": 64, "shots": 2, "reference": 8, "test": 16}),
    "traffic/embedded": ("repro.studies.lteode", {"nodes": 20, "days": 3}),
    "safety/embedded": ("repro.studies.presafe", {
        "warmstart": {"harmful": 8, "math": 8, "benign": 4, "borderline": 4},
        "judge": {"harmful": 4, "math": 2, "benign": 2, "borderline": 2},
        "train": {"harmful": 4, "math": 4, "benign": 2, "borderline": 2},
        "test": {"harmful": 8, "math": 4, "benign": 2, "borderline": 2}}),
}


@pytest.mark.parametrize("key", list(GENERATED))
def test_a_seed_regenerates_every_file_and_one_seed_generates_it_again(tmp_path, key):
    from repro import io as rio

    plugin, params = GENERATED[key]
    plugins.load([plugin])
    trees = []
    for seed, tag in ((1, "a"), (1, "b"), (2, "c")):
        registry.DATASETS.get(key)(tmp_path / tag, {**params, "seed": seed})
        trees.append(rio.sha256_tree(tmp_path / tag))
    assert trees[0] == trees[1] and set(trees[0]) == set(trees[2])
    data = [f for f in trees[0] if not f.endswith(".json") and f != "time_of_day.npy"]
    assert data and all(trees[0][f] != trees[2][f] for f in data), f"{key}: seed 2 left files as seed 1's"


def test_the_models_learnt_from_them_are_built_per_seed(root, workflow_config):
    workflow_config["studies"] = ["bdetclip", "rvpt", "pta", "cleansight", "lteode", "presafe"]
    loaded = load(workflow_config, root)
    assert {k for k in loaded["per_seed"] if k.endswith("/embedded")} == set(GENERATED)
    assert set(loaded["per_seed_models"]) == {"tiny-clip-clean", "tiny-clip-badnets", "tiny-clip-blended",
                                              "tiny-llava-badnets", "tiny-reasoner", "tiny-reasoner-judged"}
