"""``summarize`` puts runs into one table only when the same package versions and dataset produced
them (ALFWorld's December 2024 release changed its command grammar; a silent mix of versions is how
several agent projects lost their own numbers)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from repro.cli import main
from repro.figures.summary import ProvenanceError, summarize

EVAL = {
    "study": "hgpo", "scale": "embedded", "benchmark": "alfworld", "model": "m", "method": "grpo",
    "seed": 0,
    "splits": {"valid_seen": {"success_rate": 0.5, "temperature": 1.0,
                              "per_task_type": {"pick_and_place_simple": 0.5}}},
    "provenance": {"versions": {"alfworld": "0.4.2", "textworld": "1.7.0", "torch": "2.13.0+cpu",
                                "transformers": "5.23.0", "tokenizers": "0.23.3", "numpy": "2.4.6"},
                   "dataset": {"manifest_sha256": "a" * 64}, "model": {"manifest_sha256": "c" * 64},
                   "git_commit": "abc",
                   "config_hash": "0123"},
}


def _write(folder: Path, seed: int, **changes) -> Path:
    e = copy.deepcopy(EVAL)
    e["seed"] = seed
    e["splits"]["valid_seen"]["success_rate"] = 0.25 * (seed + 1)
    for dotted, value in changes.items():
        d = e
        *keys, last = dotted.split(".")
        for k in keys:
            d = d[k]
        if value is None:
            del d[last]
        else:
            d[last] = value
    p = folder / f"seed{seed}" / "eval.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(e))
    return p


def test_same_provenance_summarizes(tmp_path):
    paths = [_write(tmp_path, 0), _write(tmp_path, 1, **{"provenance.git_commit": "def"})]
    df = summarize(paths)
    row = df[(df.task_type == "all")].iloc[0]
    assert row["mean"] == 37.5 and row["n_seeds"] == 2


@pytest.mark.parametrize("change,expected", [
    ({"provenance.versions.alfworld": "0.3.5"}, "alfworld versions differ: 0.3.5 in 1 run(s)"),
    ({"provenance.versions.torch": "2.14.1+cu126"}, "torch versions differ"),
    ({"provenance.dataset.manifest_sha256": "b" * 64}, "alfworld dataset digests differ: aaaaaaaaaaaa"),
    ({"provenance.model.manifest_sha256": "d" * 64}, "m base model digests differ: cccccccccccc in 1 run(s)"),
    ({"provenance.model": None}, "m base model digests differ: cccccccccccc in 1 run(s), e.g. "),
    ({"provenance": None}, "no provenance recorded"),
])
def test_mixed_provenance_is_refused_by_name(tmp_path, change, expected):
    paths = [_write(tmp_path, 0), _write(tmp_path, 1, **change)]
    with pytest.raises(ProvenanceError) as err:
        summarize(paths)
    assert expected in str(err.value)
    assert "--allow-mixed-provenance" in str(err.value)
    assert len(summarize(paths, allow_mixed_provenance=True)) > 0


def test_different_models_may_have_different_digests(tmp_path):
    paths = [_write(tmp_path, 0), _write(tmp_path, 1, **{"model": "other", "provenance.model.manifest_sha256": "d" * 64})]
    assert set(summarize(paths).model) == {"m", "other"}


def test_cli_exits_2_with_the_reason_and_writes_nothing(tmp_path):
    paths = [_write(tmp_path, 0), _write(tmp_path, 1, **{"provenance.versions.alfworld": "0.3.5"})]
    out, log = tmp_path / "summary.csv", tmp_path / "summarize.log"
    assert main(["--log", str(log), "summarize", "--evals", *map(str, paths), "--out", str(out)]) == 2
    assert not out.exists() and "alfworld versions differ" in log.read_text()
    assert main(["--log", str(log), "summarize", "--evals", *map(str, paths), "--out", str(out),
                 "--allow-mixed-provenance"]) == 0
    assert out.exists() and "mixed provenance allowed: alfworld versions differ" in log.read_text()


def test_a_table_of_mixed_cpu_kernels_says_so(tmp_path, caplog):
    """Runs computed with other CPU kernels (here: torch dispatching AVX512 in one training, AVX2
    in the other) still summarize, and the log names both kernel sets and the CPU models."""
    import torch  # noqa: F401  (the record then describes torch's kernels)

    from repro.provenance import cpu_record

    cpu = cpu_record()
    other = copy.deepcopy(cpu)
    other["torch"]["capability"] = "AVX512" if cpu["torch"]["capability"] != "AVX512" else "AVX2"
    other["model"] = "Some Other CPU"
    same = [_write(tmp_path / "a", s, **{"provenance.cpu": cpu, "provenance.train": {"cpu": cpu}}) for s in (0, 1)]
    with caplog.at_level("WARNING"):
        summarize(same)
    assert "CPU kernels" not in caplog.text
    mixed = [same[0], _write(tmp_path / "b", 1, **{"provenance.cpu": cpu, "provenance.train": {"cpu": other}})]
    with caplog.at_level("WARNING"):
        assert len(summarize(mixed)) > 0
    assert "mixes results computed with different CPU kernels" in caplog.text
    t = cpu["torch"]
    assert "\n  torch: " in caplog.text and f"{t['capability']} {t['blas']} in 3 record(s)" in caplog.text
    assert f"{other['torch']['capability']} {t['blas']} in 1 record(s) on Some Other CPU" in caplog.text
    # a job that never loaded torch, or loaded OpenBLAS twice (numpy's and scipy's), is no mixture
    caplog.clear()
    no_torch = {**cpu, "torch": None, "blas_libraries": cpu["blas_libraries"] * 2}
    with caplog.at_level("WARNING"):
        summarize([same[0], _write(tmp_path / "c", 1, **{"provenance.cpu": no_torch})])
    assert "CPU kernels" not in caplog.text


def test_summary_carries_run_settings_and_joins_the_matching_reported_number(tmp_path):
    """Each method's impl and the settings that set it apart come from its eval.json config; a
    reported number joins the row whose task type and resolved settings its `setting` names (here
    K = 2 vs K = 4, though K does not tell the main methods apart)."""
    paths = []
    for method, k, alpha in (("hgpo", 2, 1.0), ("hgpo_k4", 4, 1.0), ("hgpo_a0", 2, 0.0)):
        cfg = {"impl": "hgpo", "ablation": method != "hgpo",
               "params": {"length_weight_alpha": alpha, "mode": "mean_std_norm"},
               "train": {"history_length": k, "lr": 1e-4}}
        paths.append(_write(tmp_path / method, 0, method=method, config=cfg))
    rep = tmp_path / "hgpo.csv"
    rep.write_text(
        "study,table,benchmark,model,method,metric,split,setting,value,std,source,confidence,note\n"
        "hgpo,t1,alfworld,,hgpo,success_rate_pct,valid_seen,history_length=2; task_type=all,92.77,,T1,secondary,\n"
        "hgpo,t1,alfworld,,hgpo,success_rate_pct,valid_seen,history_length=4; task_type=all,94.85,,T1,secondary,\n")
    s = summarize(paths, reported=rep)
    assert {"params.length_weight_alpha", "train.history_length"} <= set(s.columns)
    assert "train.lr" not in s and "params.mode" not in s  # the same for every method: not shown
    row = s[(s.task_type == "all")].set_index("method")
    assert row.loc["hgpo", "reported_value"] == 92.77 and row.loc["hgpo", "train.history_length"] == 2
    assert set(row.impl) == {"hgpo"} and row.loc["hgpo_k4", "ablation"]
    # hgpo_k4 is impl hgpo at K = 4, but its method name is not in the reported file: no join
    assert row[["reported_value"]].isna().sum().item() == 2
    only_main = summarize(paths[:1], reported=rep)  # one method: K is no column, still matched
    assert "train.history_length" not in only_main
    assert only_main[only_main.task_type == "all"].reported_value.tolist() == [92.77]
