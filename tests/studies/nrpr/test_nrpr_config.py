"""The nrpr study config: valid at both scales, paper values sourced, and benchmarks with a null
dataset at a scale (the paper-only UCI and image sets) absent from that scale's run table."""

from __future__ import annotations

import copy

import pytest
import yaml

from repro import config as rc
from repro.studies.nrpr.learner import UREParams


@pytest.mark.parametrize(("scale", "benchmarks", "n_methods"), [
    ("embedded", {"optdigits"}, 4),
    ("paper", {"optdigits", "msplice", "normal", "texture", "har", "usps", "mnist", "fashion_mnist", "kmnist"}, 7),
])
def test_run_table_per_scale(workflow_config, root, scale, benchmarks, n_methods):
    cfg = {**workflow_config, "scale": scale, "studies": ["nrpr"], "seeds": None,
           "ablations": scale == "paper"}
    runs = rc.run_table(rc.load(cfg, root))
    assert {r.benchmark for r in runs} == benchmarks
    assert len(runs) == len(benchmarks) * n_methods * 5
    models = {r.benchmark: r.model for r in runs}
    if scale == "paper":
        assert models["mnist"] == "nrpr-mlp" and models["texture"] == "nrpr-linear"


def test_image_sets_use_the_authors_fixed_prior(workflow_config, root):
    loaded = rc.load({**workflow_config, "scale": "paper", "studies": ["nrpr"]}, root)
    mnist = rc.run_config(loaded, "nrpr", "nrpr", "mnist")
    assert mnist["params"]["prior"] == "given" and mnist["params"]["theta"] == 0.8
    assert mnist["train"]["batch_size"] == 500
    assert rc.run_config(loaded, "nrpr", "nrpr_true_prior", "mnist")["params"]["prior"] == "true"
    uci = rc.run_config(loaded, "nrpr", "nrpr", "optdigits")["params"]
    assert rc.check_dataclass(UREParams, uci, "params").prior == "km1"  # the default: KM1 on UCI


def test_null_dataset_still_needs_a_registered_one_elsewhere(workflow_config, root, tmp_path):
    """A dataset key that is not null must still exist in config.yaml `datasets`."""
    study = yaml.safe_load((root / "config/studies/nrpr.yaml").read_text())
    bad = copy.deepcopy(study)
    bad["benchmarks"]["msplice"]["embedded"] = "lac_uci/nope"
    (tmp_path / "config/studies").mkdir(parents=True)
    (tmp_path / "config/studies/nrpr.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(rc.ConfigError, match="benchmarks.msplice.embedded: dataset 'lac_uci/nope'"):
        rc.load({**workflow_config, "studies": ["nrpr"]}, tmp_path)


def test_the_light_params_module_names_every_loss():
    """``params.LOSS_NAMES`` (checked while parsing, without torch) is the loss registry's names."""
    from repro.studies.nrpr.params import LOSS_NAMES
    from repro.studies.nrpr.risk import LOSSES

    assert sorted(LOSS_NAMES) == LOSSES.names()
