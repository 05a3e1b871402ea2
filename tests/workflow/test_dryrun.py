"""Dry runs of both scales through real Snakemake, lint, and a config error surfacing before any job."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.workflow


def _jobs(out: str, rule: str, study: str = "hgpo") -> int:
    """Jobs of ``rule`` for ``study`` in a dry run's output (other studies run beside HGPO)."""
    return sum(1 for b in out.split("\nrule ") if b.startswith(f"{rule}:") and f"study={study}" in b)


def _snakemake(root, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), *args],
                          cwd=cwd or root, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def clean_dir(root, tmp_path):
    """A working directory with the repo's config and nothing produced yet."""
    shutil.copytree(root / "config", tmp_path / "config")
    shutil.copytree(root / "workflow" / "profiles", tmp_path / "workflow" / "profiles")
    shutil.copytree(root / "paper_figures" / "reported", tmp_path / "paper_figures" / "reported")
    return tmp_path


def test_paper_scale_dag_on_slurm_profile(root, clean_dir):
    p = _snakemake(root, "-n", "--configfile", "config/paper.yaml", "--profile", "workflow/profiles/slurm",
                   cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    # 2 benchmarks x 2 models x 3 seeds x (6 methods of the main table + 6 ablation runs: HGPO
    # K = 0, 1, 4, alpha = 0, 2 and GiGPO K = 4)
    assert _jobs(out, "train") == 144 and _jobs(out, "evaluate") == 144
    assert "resources/models/qwen2.5-7b-instruct" in out and "resources/datasets/webshop/small" in out
    assert _jobs(out, "plot_figure") == 5  # the four figures and the ablation figure
    for method in ("ppo", "rloo", "hgpo_k0", "hgpo_k1", "hgpo_k4", "gigpo_k4", "hgpo_a0", "hgpo_a2"):
        for bench in ("alfworld", "webshop"):
            assert f"results/paper/hgpo/{bench}/qwen2.5-1.5b-instruct/{method}/seed2/eval.json" in out
    assert "paper_figures/paper/hgpo/ablation.png" in out
    for model, gpus in (("qwen2.5-1.5b-instruct", 2), ("qwen2.5-7b-instruct", 4)):
        jobs = [b for b in out.split("\nrule ") if b.startswith("train:") and f"model={model}," in b]
        assert jobs and all(f"gpu={gpus}," in b for b in jobs)
        # one trainer process per GPU
        assert all(f"torchrun --standalone --nproc_per_node={gpus} -m repro.cli --log-file" in b for b in jobs)
    assert "results/paper/hgpo/alfworld/qwen2.5-7b-instruct/hgpo/seed2/eval.json" in out
    # GraphGPO: its own baselines at the paper scale (its 150-iteration protocol), 2 x 2 x 3 x 4 runs
    assert _jobs(out, "train", "graphgpo") == 48 and _jobs(out, "plot_figure", "graphgpo") == 3
    assert "results/paper/graphgpo/webshop/qwen2.5-7b-instruct/gigpo/seed2/eval.json" in out
    graph = [b for b in out.split("\nrule ") if b.startswith("train:") and "study=graphgpo" in b]
    assert all(("gpu=2," if "model=qwen2.5-1.5b-instruct," in b else "gpu=4,") in b for b in graph)
    # KPO: Qwen3-4B on DAPO-Math, one seed of its four losses' runs and the warm start (ablations
    # on: KPO-unclipped; KPO at the paper's Q is an embedded-only check), on 2 GPUs each
    assert _jobs(out, "train", "kpo") == 5 and _jobs(out, "plot_figure", "kpo") == 2
    kpo = [b for b in out.split("\nrule ") if b.startswith("train:") and "study=kpo" in b]
    assert all("gpu=2," in b and "model=qwen3-4b," in b for b in kpo)
    assert "resources/datasets/math/dapo" in out and "kpo_paper_q" not in out
    # day-long runs log to MLflow live (config/paper.yaml); the embedded scale defers
    assert "--tracking-spool" not in out and "replay-tracking" not in out


def test_drmas_dags(root, clean_dir):
    """Dr. MAS at both scales: both teams, every method, GPUs from config (the quick default: its
    shared math team only)."""
    p = _snakemake(root, "-n", "--configfile", "config/paper.yaml", "--profile", "workflow/profiles/slurm",
                   "--config", 'studies=["drmas"]', cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    # 2 benchmarks x (warm start, single-agent, shared / non-shared x GRPO / Dr. MAS, 2 ablations) x 1 seed
    assert _jobs(p.stdout, "train", "drmas") == 16 and _jobs(p.stdout, "plot_figure", "drmas") == 2
    trains = [b for b in p.stdout.split("\nrule ") if b.startswith("train:") and "study=drmas" in b]
    assert all("gpu=4," in b for b in trains)
    assert {("model=qwen3-4b," in b, "benchmark=math," in b) for b in trains} == {(True, True), (False, False)}
    assert "resources/datasets/search/nq_hotpotqa" in p.stdout and "resources/models/qwen2.5-7b" in p.stdout
    assert "results/paper/drmas/search/qwen2.5-7b/nonshare_sigma_k/seed0/eval.json" in p.stdout
    p = _snakemake(root, "-n", "--profile", "workflow/profiles/default", "--configfile", "config/embedded-full.yaml",
                   "--config", 'studies=["drmas"]', cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _jobs(p.stdout, "train", "drmas") == 48  # 2 benchmarks x (6 methods + 2 ablations) x 3 seeds
    assert "resources/models/tiny-qwen2-search-team" in p.stdout and "resources/datasets/search/embedded" in p.stdout


def test_embedded_dag(root, clean_dir):
    p = _snakemake(root, "-n", "--profile", "workflow/profiles/default", cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    # 2 benchmarks x 6 methods x 1 seed (config.yaml), no ablations; both tiny models and datasets
    assert _jobs(p.stdout, "train") == 12 and _jobs(p.stdout, "plot_figure") == 4
    # GraphGPO trains only its own method: the warm start, GRPO and GiGPO runs are HGPO's
    assert _jobs(p.stdout, "train", "graphgpo") == 2 and _jobs(p.stdout, "plot_figure", "graphgpo") == 3
    assert "results/embedded/graphgpo/alfworld/tiny-qwen2-alfworld/gigpo" not in p.stdout
    assert _jobs(p.stdout, "train", "kpo") == 4 and "resources/models/tiny-qwen2-math" in p.stdout
    # Dr. MAS: the shared math team's warm start, GRPO and Dr. MAS (config.yaml's benchmarks / methods)
    drmas = [b for b in p.stdout.split("\nrule ") if b.startswith("train:") and "study=drmas" in b]
    assert len(drmas) == 3 and all("benchmark=math," in b and "seed=0" in b for b in drmas)
    assert {b.split("method=")[1].split(",")[0] for b in drmas} == {"warmstart", "share_grpo", "share_drmas"}
    assert "tiny-qwen2-search-team" not in p.stdout
    trains = [b for b in p.stdout.split("\nrule ") if b.startswith("train:")]  # every study's
    assert all("--tracking-spool results/embedded/" in b for b in trains) and "replay-tracking" in p.stdout
    for path in ("resources/models/tiny-qwen2-alfworld", "resources/models/tiny-qwen2-webshop",
                 "resources/datasets/alfworld/embedded", "resources/datasets/webshop/embedded"):
        assert path in p.stdout
    p = _snakemake(root, "-n", "--profile", "workflow/profiles/default", "--configfile", "config/embedded-full.yaml",
                   cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _jobs(p.stdout, "train") == 72 and _jobs(p.stdout, "plot_figure") == 5  # 2 x 12 methods x 3 seeds
    assert _jobs(p.stdout, "train", "graphgpo") == 6
    assert _jobs(p.stdout, "train", "kpo") == 18  # 6 runs (warm start, 3 losses, 2 ablations) x 3 seeds


def test_evidence_run_writes_its_own_figures_from_per_seed_data(root, clean_dir):
    """config/evidence.yaml's classic part: 10 seeds, each fetching its own data draw, every
    ablation, and its figures in paper_figures/evidence (never the default command's folder)."""
    p = _snakemake(root, "-n", "-p", "--profile", "workflow/profiles/default", "--configfile", "config/evidence.yaml",
                   "--config", 'studies=["nrpr","mcc"]', cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    plots = [b for b in p.stdout.split("\nrule ") if b.startswith("plot_figure:")]
    assert len(plots) == 3 and all("paper_figures/evidence/" in b and "paper_figures/embedded" not in b
                                   for b in plots)
    assert all(f"resources/datasets/lac_digits/embedded.seed{k}" in p.stdout for k in range(10))
    assert "--name lac_digits/embedded --params '{\"seed\": 7}'" in p.stdout
    assert _jobs(p.stdout, "train", "mcc") == 50  # 5 methods (2 ablations) x 10 seeds


def test_evidence_schedule_lengthens_the_agentic_runs_they_share(root, clean_dir):
    """config/evidence.yaml's HGPO part: its `schedule` reaches every HGPO and GraphGPO training (12
    iterations) and the ALFWorld evaluations (4 episodes per game), while WebShop's own override (each
    test goal once) still wins; GraphGPO reuses HGPO's warm start, GRPO and GiGPO runs."""
    p = _snakemake(root, "-n", "-p", "--profile", "workflow/profiles/default", "--configfile", "config/evidence.yaml",
                   "--config", 'studies=["hgpo","graphgpo"]', "ablations=False", cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    blocks = [b for b in p.stdout.split("\nrule ") if b.startswith(("train:", "evaluate:"))]
    trains = [b for b in blocks if b.startswith("train:")]
    assert len(trains) == 2 * 6 * 5 + 2 * 5  # HGPO: 2 benchmarks x 6 methods x 5 seeds; GraphGPO's own arm, 5 seeds
    assert all('"iterations": 12' in b for b in trains)
    evals = [b for b in blocks if b.startswith("evaluate:")]
    alfworld = [b for b in evals if "benchmark=alfworld" in b]
    webshop = [b for b in evals if "benchmark=webshop" in b]
    assert len(alfworld) == len(webshop) == len(evals) / 2 == 6 * 5 + 5
    assert all('"episodes_per_game": 4' in b for b in alfworld)
    assert all('"episodes_per_game": 1' in b for b in webshop)


def test_the_20_iteration_overlay_lengthens_hgpos_and_graphgpos_alfworld_part_only(root, clean_dir):
    """config/evidence-hgpo-20it.yaml over config/evidence.yaml (issue 21 item 4's lever): HGPO's
    (and GraphGPO's) ALFWorld trainings at 20 iterations, evaluations at 4 episodes per game, figures in their own
    folder (never evidence/hgpo/)."""
    p = _snakemake(root, "-n", "-p", "--profile", "workflow/profiles/default", "--configfile", "config/evidence.yaml",
                   "config/evidence-hgpo-20it.yaml", "--config", 'studies=["hgpo"]',
                   'benchmarks={"hgpo": ["alfworld"]}', "ablations=False", cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    blocks = p.stdout.split("\nrule ")
    trains = [b for b in blocks if b.startswith("train:")]
    assert len(trains) == 6 * 5 and all('"iterations": 20' in b for b in trains)
    assert all('"episodes_per_game": 4' in b for b in blocks if b.startswith("evaluate:"))
    plots = [b for b in blocks if b.startswith("plot_figure:")]
    assert plots and all("paper_figures/evidence/hgpo-20it/hgpo/" in b for b in plots)
    # GraphGPO on the same runs: its own trainings at 20 iterations too; GRPO, GiGPO and the warm
    # start stay HGPO's (one DAG node each, shared)
    p = _snakemake(root, "-n", "-p", "--profile", "workflow/profiles/default", "--configfile", "config/evidence.yaml",
                   "config/evidence-hgpo-20it.yaml", "--config", 'studies=["hgpo","graphgpo"]',
                   'benchmarks={"hgpo": ["alfworld"], "graphgpo": ["alfworld"]}', "ablations=False", cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    trains = [b for b in p.stdout.split("\nrule ") if b.startswith("train:")]
    own = [b for b in trains if "results/embedded/graphgpo/" in b]
    assert len(trains) == 6 * 5 + 5 and len(own) == 5 and all('"iterations": 20' in b for b in trains)


def test_the_20_iteration_overlay_runs_pamoe_on_hgpos_warm_start_and_gigpo_only(root, clean_dir):
    """The overlay's PA-MoE command (issue 17): PA-MoE's four own methods at 20 iterations on HGPO's
    warm start and GiGPO (HGPO trains nothing else), every figure in the folder it names."""
    p = _snakemake(root, "-n", "-p", "--profile", "workflow/profiles/default", "--configfile", "config/evidence.yaml",
                   "config/evidence-hgpo-20it.yaml", "--config", 'studies=["hgpo","pamoe"]',
                   'benchmarks={"hgpo": ["alfworld"]}', "ablations=False",
                   'methods={"hgpo": ["warmstart","gigpo"], "pamoe": ["warmstart","gigpo","gigpo_lora","token_moe",'
                   '"pamoe","pamoe_sample"]}', "figures_dir=paper_figures/evidence/hgpo-20it-pamoe", cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    blocks = p.stdout.split("\nrule ")
    trains = [b for b in blocks if b.startswith("train:")]
    runs = {b.split("results/embedded/", 1)[1].split("/seed", 1)[0] for b in trains}
    assert runs == {"hgpo/alfworld/tiny-qwen2-alfworld/warmstart", "hgpo/alfworld/tiny-qwen2-alfworld/gigpo",
                    *(f"pamoe/alfworld/tiny-qwen2-alfworld/{m}" for m in ("gigpo_lora", "token_moe", "pamoe",
                                                                          "pamoe_sample"))}
    assert len(trains) == 6 * 5 and all('"iterations": 20' in b for b in trains)
    plots = [b for b in blocks if b.startswith("plot_figure:")]
    assert plots and all("paper_figures/evidence/hgpo-20it-pamoe/" in b for b in plots)


def test_the_pamoe_confirmatory_overlay_trains_twenty_fresh_seeds_of_three_arms(root, clean_dir):
    """config/evidence-pamoe-seeds5-24.yaml (issue 17's confirmatory run): seeds 5-24 of PA-MoE's warm
    start, single-LoRA GiGPO and PA-MoE at 20 iterations, figures in the folder it names."""
    p = _snakemake(root, "-n", "-p", "--profile", "workflow/profiles/default", "--configfile", "config/evidence.yaml",
                   "config/evidence-hgpo-20it.yaml", "config/evidence-pamoe-seeds5-24.yaml", "--config",
                   'studies=["pamoe"]', 'benchmarks={"pamoe": ["alfworld"]}', "ablations=False", cwd=clean_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    blocks = p.stdout.split("\nrule ")
    trains = [b for b in blocks if b.startswith("train:")]
    runs = {b.split("results/embedded/", 1)[1].split("/checkpoint", 1)[0] for b in trains}
    assert runs == {f"pamoe/alfworld/tiny-qwen2-alfworld/{m}/seed{s}" for m in ("warmstart", "gigpo_lora", "pamoe")
                    for s in range(5, 25)}
    assert all('"iterations": 20' in b for b in trains)
    plots = [b for b in blocks if b.startswith("plot_figure:")]
    assert plots and all("paper_figures/evidence/pamoe-seeds5-24/" in b for b in plots)


def test_lint_is_clean(root):
    p = _snakemake(root, "--lint")
    assert p.returncode == 0 and "Congratulations" in p.stdout + p.stderr, p.stdout[-3000:] + p.stderr[-3000:]


def test_bad_study_config_fails_dry_run_with_key_and_allowed_values(root, tmp_path):
    shutil.copytree(root / "config", tmp_path / "config")
    study = yaml.safe_load((tmp_path / "config/studies/hgpo.yaml").read_text())
    study["methods"]["gigpo"]["params"]["mode"] = "std_norm"
    (tmp_path / "config/studies/hgpo.yaml").write_text(yaml.safe_dump(study))
    p = _snakemake(root, "-n", "-d", str(tmp_path), "--cores", "1")
    assert p.returncode != 0
    text = p.stdout + p.stderr
    assert "methods.gigpo.params.mode" in text and "'mean_std_norm', 'mean_norm'" in text
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()
