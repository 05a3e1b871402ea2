"""The vision-language family on a real (small) open_clip CLIP: a backdoored model fine-tuned from a
clean one, every registered method fitted and evaluated through the family's objects, and the
properties each must hold (detector thresholds, frozen weights under prompt tuning, paraphrase
splits, the trigger mix of the detection protocol)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("open_clip")

import torch  # noqa: E402

from repro import plugins, registry  # noqa: E402
from repro.data import shapes  # noqa: E402
from repro.multimodal import clip  # noqa: E402
from repro.multimodal.family import Clip, EvalConfig, TrainConfig  # noqa: E402

SMALL = {"embed_dim": 32, "vision_cfg": {"width": 32, "layers": 2, "head_width": 16},
         "text_cfg": {"width": 32, "heads": 2, "layers": 1}}
POISON = {"trigger": {"kind": "badnets", "size": 4, "seed": 0}, "rate": 0.1, "target": "star"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("mm")
    shapes.build(base / "data", {"train": 256, "shots": 2, "reference": 24, "test": 48})
    clip.build(base / "clean", {"model": SMALL, "epochs": 2, "batch_size": 64}, base / "data")
    clip.build(base / "badnets", {"epochs": 1, "batch_size": 64, "poison": POISON}, base / "data",
               base_dir=base / "clean")
    plugins.load(["repro.studies.bdetclip", "repro.studies.rvpt", "repro.studies.pta"])
    return base


def test_a_backdoored_model_fine_tunes_its_base(built, tmp_path):
    manifest = json.loads((built / "badnets" / "MANIFEST.json").read_text())
    base = json.loads((built / "clean" / "MANIFEST.json").read_text())
    assert manifest["base_model"]["manifest_sha256"] and manifest["poisoned_pairs"] == round(0.1 * 256)
    assert (built / "badnets" / clip.CONFIG_FILE).read_text() == (built / "clean" / clip.CONFIG_FILE).read_text()
    assert "attack_success_rate" in manifest["zero_shot_test"] and "attack_success_rate" not in base["zero_shot_test"]
    with pytest.raises(ValueError, match="the architecture is the base's"):
        clip.build(tmp_path / "x", {"model": SMALL, "epochs": 1}, built / "data", base_dir=built / "clean")


def test_a_clean_model_has_no_backdoor_target(built):
    c = Clip(built / "clean", built / "data")
    with pytest.raises(ValueError, match="clean model"):
        c.target  # noqa: B018


def test_backdoor_mix_triggers_the_ratio_from_non_target_classes(built):
    from repro.studies.bdetclip.methods import backdoor_mix

    c = Clip(built / "badnets", built / "data")
    images, labels, _ = c.split("test")
    mixed, is_bd = backdoor_mix(c, images, labels, 0.25, seed=3)
    assert is_bd.sum() == 12 and (labels[is_bd] != c.target).all()
    np.testing.assert_array_equal(mixed[~is_bd], images[~is_bd])
    np.testing.assert_array_equal(mixed[is_bd], c.trigger(images[is_bd]))
    again, is_bd2 = backdoor_mix(c, images, labels, 0.25, seed=3)
    assert (is_bd2 == is_bd).all() and not (backdoor_mix(c, images, labels, 0.25, seed=4)[1] == is_bd).all()


@pytest.mark.parametrize("name", ["bdetclip", "strip", "scaleup", "teco"])
def test_detectors_flag_no_clean_reference_at_the_papers_threshold(built, name):
    method = registry.MM_METHODS.get(name)
    params = method.Params()
    c = Clip(built / "badnets", built / "data")
    fitted = method.fit(c, params, TrainConfig(), 0, lambda row: None)
    ref = fitted.tensors["reference_anomaly"].numpy()
    assert len(ref) == 24 and fitted.info["threshold_anomaly"] == pytest.approx(float(ref.max()))
    res = method.evaluate(c, fitted, params, EvalConfig(), 0)["test"]
    m = res["metrics"]
    assert res["n"] == 48 and res["n_backdoor"] == round(0.3 * 48)
    assert 0 <= m["auroc_pct"] <= 100 and 0 <= m["f1_pct"] <= 100 and m["ms_per_image"] > 0
    assert res["roc"]["fpr"][0] == 0.0 and res["roc"]["tpr"][-1] == 1.0


def test_bdetclip_fixed_threshold_is_on_omega():
    from repro.studies.bdetclip.methods import BDetCLIP, BDetCLIPParams

    d = BDetCLIP()
    # flagged when Omega < 0.3, i.e. anomaly = -Omega > -0.3
    assert d.anomaly(np.array([0.3]))[0] == -0.3 and BDetCLIPParams(threshold="fixed", value=0.3).value == 0.3


def test_prompt_tuning_trains_only_the_prompts(built):
    from repro.studies.rvpt.methods import RVPTParams

    method = registry.MM_METHODS.get("rvpt")
    c = Clip(built / "badnets", built / "data")
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    params = RVPTParams(start=1, length=4, alpha=2.0)
    rows = []
    fitted = method.fit(c, params, TrainConfig(epochs=2, batch_size=8, lr=0.05), 0, rows.append)
    assert all(torch.equal(before[k], v) for k, v in c.model.state_dict().items())
    assert fitted.tensors["prompts"].shape == (1, 4, 32) and len(rows) == 2 and set(rows[0]) == {"ce", "fr"}
    m = method.evaluate(c, fitted, params, EvalConfig(), 0)["test"]["metrics"]
    assert set(m) == {"clean_accuracy_pct", "attack_success_rate_pct", "poisoned_accuracy_pct",
                      "perturbation_resistivity"}
    assert -1.0 <= m["perturbation_resistivity"] <= 1.0


@pytest.mark.parametrize("name,cfg", [
    ("no_defence", TrainConfig()),
    ("linear_probe", TrainConfig(epochs=3, batch_size=8, lr=0.01, schedule="constant")),
    ("cleanclip", TrainConfig(epochs=1, batch_size=32, lr=1e-4, optimizer="adamw", data_split="train",
                              max_examples=64)),
])
def test_baseline_defences_fit_and_evaluate(built, name, cfg):
    method = registry.MM_METHODS.get(name)
    c = Clip(built / "badnets", built / "data")
    fitted = method.fit(c, method.Params(), cfg, 0, lambda row: None)
    m = method.evaluate(Clip(built / "badnets", built / "data"), fitted, method.Params(), EvalConfig(), 0)
    assert 0 <= m["test"]["metrics"]["attack_success_rate_pct"] <= 100 and m["test"]["n_triggered"] == 42


def test_a_method_that_fits_nothing_trains_without_loading_the_model(built, tmp_path):
    """no_defence's train job writes the same empty fit from a model folder that has no weights (the
    model is never loaded); a method that overrides ``fit`` (the linear probe) still loads it."""
    import shutil

    from safetensors.torch import load_file, save_file

    from repro.multimodal.family import fits_nothing
    from repro.tracking import NullTracker

    weightless = tmp_path / "weightless"
    weightless.mkdir()
    shutil.copy(built / "badnets" / "MANIFEST.json", weightless / "MANIFEST.json")
    family = registry.FAMILIES.get("multimodal")

    def train(impl: str, model_dir, out):
        run = {"impl": impl, "method": impl, "seed": 0, "params": {}, "train": {}, "evaluate": {"splits": ["test"]}}
        family.train(run, dataset_dir=built / "data", model_dir=model_dir, out_dir=out, log_csv=out.with_suffix(".csv"),
                     work_dir=tmp_path / "work", tracker=NullTracker())

    assert fits_nothing(registry.MM_METHODS.get("no_defence")) and fits_nothing(registry.MM_METHODS.get("proxy_pgd"))
    assert not fits_nothing(registry.MM_METHODS.get("linear_probe"))
    train("no_defence", weightless, tmp_path / "skipped")
    assert load_file(str(tmp_path / "skipped" / "fitted.safetensors")) == {}
    save_file({}, str(tmp_path / "torch_writer.safetensors"))  # what the torch path writes for an empty fit
    assert (tmp_path / "skipped" / "fitted.safetensors").read_bytes() == (tmp_path / "torch_writer.safetensors").read_bytes()
    state = json.loads((tmp_path / "skipped" / "trainer_state.json").read_text())
    assert state["info"] == {} and state["impl"] == "no_defence"
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):  # it loads the (absent) model
        train("linear_probe", weightless, tmp_path / "probe")


def test_cleanclip_augmentations():
    from repro.studies.rvpt.methods import _crop, _drop_words

    rng = np.random.default_rng(0)
    images = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    out = _crop(images, 2, rng)
    assert out.shape == images.shape
    np.testing.assert_array_equal(_crop(images, 0, rng), images)
    assert _drop_words("a red star.", 1.0, rng) == "a" and _drop_words("a red star.", 0.0, rng) == "a red star."


def test_pta_paraphrases_hold_out_templates_and_attributes():
    from repro.studies.pta.methods import paraphrases

    attrs = {"colour": ["red", "green", "blue", "white"], "size": ["small", "large"], "position": ["left", "right"]}
    seen, held = paraphrases(shapes.SHAPES, attrs, 2)
    assert seen and held and not set(seen) & set(held)
    assert all("{}" in p for p in seen + held)
    assert not any(w in p for p in held for w in ("red", "green", "small", "left"))
    assert not any(w in p for p in seen for w in ("blue", "white", "large", "right"))
    with pytest.raises(ValueError, match="seen_templates"):
        paraphrases(shapes.SHAPES, attrs, 0)


def test_pta_attacks_stay_in_budget_and_report_every_metric(built):
    from repro.studies.pta.methods import PTAParams

    method = registry.MM_METHODS.get("proxy_pgd")
    c = Clip(built / "clean", built / "data")
    for kw in ({"targets": "exact"}, {"alpha": 2.0}, {"alpha": 2.0, "source": "nearest_clean"}):
        p = PTAParams(steps=3, n_images=6, gallery=10, k=3, n_source=4, examples=2, **kw)
        res = method.evaluate(c, method.fit(c, p, TrainConfig(), 0, None), p,
                              EvalConfig(reference_split="reference"), 0)["test"]
        assert res["n"] == 6 and res["metrics"]["linf_255"] <= 8.0 + 1e-3
        assert {"asr_heldout_ret_pct", "asrd_heldout_ret_pct", "asr_exact_cls_pct", "flagged_pct"} <= set(res["metrics"])
        for kind in ("exact_cls", "heldout_cls", "exact_ret", "heldout_ret"):
            assert res["metrics"][f"asrd_{kind}_pct"] <= res["metrics"][f"asr_{kind}_pct"]
        assert np.array(res["examples"]["adversarial"]).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="not a class"):
        method.evaluate(c, None, PTAParams(target="banana"), EvalConfig(), 0)
