"""Config validation: each malformed config fails before any job, naming the key and what is allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from repro.config import ConfigError, load, run_config, run_table


def _tree(tmp_path: Path, root: Path, study: dict) -> Path:
    """A config tree in tmp_path with one (possibly broken) study file; schemas come from the repo."""
    (tmp_path / "config" / "studies").mkdir(parents=True)
    (tmp_path / "config" / "studies" / "hgpo.yaml").write_text(yaml.safe_dump(study))
    return tmp_path


def test_repo_config_is_valid_and_expands(root, workflow_config):
    loaded = load(workflow_config, root)
    runs = [r for r in run_table(loaded) if r.study == "hgpo"]
    methods = {r.method for r in runs}
    assert methods == {"warmstart", "grpo", "gigpo", "hgpo", "rloo", "ppo"}
    assert {r.seed for r in runs} == {0}  # config.yaml: one seed (embedded-full.yaml: the study's 0, 1, 2)
    assert {(r.benchmark, r.dataset, r.model) for r in runs} == {
        ("alfworld", "alfworld/embedded", "tiny-qwen2-alfworld"), ("webshop", "webshop/embedded", "tiny-qwen2-webshop")}
    assert all(r.scale == "embedded" for r in runs) and len(runs) == 2 * 6
    ws = run_config(loaded, "hgpo", "hgpo", "webshop")
    assert ws["params"]["mode"] == "mean_norm" and ws["evaluate"]["splits"] == ["test"]
    assert run_config(loaded, "hgpo", "hgpo", "alfworld")["params"]["mode"] == "mean_std_norm"


@pytest.mark.parametrize(("seeds", "expected"), [({"hgpo": [4]}, {4}), ({"other": [4]}, {0, 1, 2}),
                                                 ([5, 6], {5, 6}), (None, {0, 1, 2})])
def test_seeds_override_per_study_or_for_all(root, workflow_config, seeds, expected):
    workflow_config["seeds"] = seeds
    assert {r.seed for r in run_table(load(workflow_config, root)) if r.study == "hgpo"} == expected


def test_seeds_map_is_checked(root, workflow_config):
    workflow_config["seeds"] = {"hgpo": []}
    with pytest.raises(ConfigError, match="seeds"):
        load(workflow_config, root)


def test_benchmarks_and_methods_maps_select_per_study(root, workflow_config):
    workflow_config.update(studies=["hgpo"], benchmarks={"hgpo": ["webshop"], "kpo": ["math"]},
                           methods={"hgpo": ["warmstart", "gigpo", "hgpo_k4"]})
    runs = run_table(load(workflow_config, root))  # kpo is not selected: its entry is ignored
    assert {r.benchmark for r in runs} == {"webshop"}
    assert {r.method for r in runs} == {"warmstart", "gigpo", "hgpo_k4"}  # a named ablation runs
    workflow_config.update(benchmarks=None, methods=None)
    assert {r.benchmark for r in run_table(load(workflow_config, root))} == {"alfworld", "webshop"}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("benchmarks", {"hgpo": ["alfwrld"]}, "config: benchmarks.hgpo: 'alfwrld' not a benchmark of hgpo "
                                          "at the embedded scale; allowed: alfworld, webshop"),
    ("methods", {"hgpo": ["grpo", "gipo"]}, "config: methods.hgpo: 'gipo' not a method of hgpo at the "
                                            "embedded scale; allowed: warmstart, "),
    ("methods", {"hgpo": []}, "config: methods.hgpo: [] should be non-empty")])
def test_benchmarks_and_methods_maps_are_checked(root, workflow_config, key, value, message):
    workflow_config.update(studies=["hgpo"], **{key: value})
    with pytest.raises(ConfigError) as err:
        load(workflow_config, root)
    assert str(err.value).startswith(message)


def test_paper_scale_expands_both_models(root, workflow_config):
    workflow_config.update(yaml.safe_load((root / "config" / "paper.yaml").read_text()))
    runs = [r for r in run_table(load(workflow_config, root)) if r.study == "hgpo"]
    assert {r.model for r in runs} == {"qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct"}
    assert {r.dataset for r in runs} == {"alfworld/full", "webshop/small"} and {r.seed for r in runs} == {0, 1, 2}
    assert len(runs) == 2 * 2 * 12 * 3  # benchmarks x models x (6 main + 6 ablation methods) x seeds
    assert run_config(load(workflow_config, root), "hgpo", "gigpo", "webshop")["train"]["max_steps"] == 30
    loaded = load(workflow_config, root)  # PPO's own rollout shape, the rest of the study's train block
    ppo, grpo = (run_config(loaded, "hgpo", m)["train"] for m in ("ppo", "grpo"))
    assert (ppo["tasks_per_batch"], ppo["group_size"], ppo["critic_lr"]) == (128, 1, 1e-5)
    assert (grpo["tasks_per_batch"], grpo["group_size"]) == (16, 8) and "critic_lr" not in grpo
    own = ("tasks_per_batch", "group_size", "critic_lr")
    assert {k: v for k, v in ppo.items() if k not in own} == {k: v for k, v in grpo.items() if k not in own}


def _set(d: dict, dotted: str, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    if value is _DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DELETE = object()

WORKFLOW_CASES = [
    ("scale", "huge", "scale: 'huge' is not allowed; allowed: embedded, paper"),
    ("studies", [], "studies"),
    ("studies", ["nosuch"], "nosuch.yaml: study file not found"),
    ("tracking.port", 5000, "tracking: unknown key(s) 'port'; allowed: deferred, uri"),
    ("models", {}, "unknown key(s) 'models'; allowed:"),  # a study's YAML declares its models
    ("cpu_pins", {"ATEN_CPU_CAPABILTY": "avx2"}, "cpu_pins: 'ATEN_CPU_CAPABILTY' is not allowed; allowed: ATEN_CPU_CAPABILITY, MKL_CBWR"),
    ("cpu_pins", {"MKL_CBWR": ""}, "cpu_pins.MKL_CBWR"),
]


@pytest.mark.parametrize("key,value,message", WORKFLOW_CASES, ids=[c[0] for c in WORKFLOW_CASES])
def test_bad_workflow_config(root, workflow_config, key, value, message):
    _set(workflow_config, key, value)
    with pytest.raises(ConfigError) as err:
        load(workflow_config, root)
    assert message in str(err.value)


STUDY_CASES = [
    ("family", "agentic", "family: 'agentic' is not a registered trainer family; allowed: agentic_rl"),
    ("methods.grpo.impl", "ppo2", "methods.grpo.impl: 'ppo2' is not a registered advantage estimator; allowed:"),
    ("methods.grpo.impl", _DELETE, "methods.grpo: 'impl' is a required property"),
    ("methods.grpo.learner", "mcc", "methods.grpo: unknown key(s) 'learner' (family agentic_rl); allowed: ablation, impl"),
    ("methods.hgpo.params.gamma", 0.9, "methods.hgpo.params: gamma come(s) from the train block (train.gamma)"),
    ("methods.warmstart.params", {"mode": "mean_norm"}, "methods.warmstart.params: mode: a method without an estimator"),
    ("methods.grpo.params.mode", "mean_norm", "methods.grpo.params: unknown key(s) 'mode'; allowed: epsilon, norm_adv_by_std"),
    ("benchmarks.webshop.overrides.embedded.params.modes", "mean_norm", "benchmarks.webshop.overrides.embedded.params: modes: no method's params have such a key"),
    ("scales.embedded.train.policy_loss", "no_such_loss", "scales.embedded.train.policy_loss: 'no_such_loss' is not a registered policy loss; allowed:"),
    ("scales.embedded.train.policy_loss_params", {"loss_agg_mode": "sum"}, "scales.embedded.train.policy_loss_params.loss_agg_mode: 'sum' is not of type one of 'token-mean'"),
    ("scales.embedded.train.rollout", "tree_search", "scales.embedded.train.rollout: 'tree_search' is not a registered rollout; allowed:"),
    ("scales.embedded.train.diagnostics", {"ctx": {}}, "scales.embedded.train.diagnostics.ctx: 'ctx' is not a registered training diagnostic; allowed: "),  # whichever plugins are loaded
    ("scales.embedded.train.diagnostics", {"context_inconsistency": {"history_length": 4}}, "scales.embedded.train.diagnostics.context_inconsistency: history_length come(s) from the train block"),
    ("models.tiny-qwen2-alfworld.builder", "magic", "models.tiny-qwen2-alfworld.builder: 'magic' is not a registered model builder"),
    ("models.tiny-qwen2-alfworld.dataset", "alfworld/nope", "models.tiny-qwen2-alfworld.dataset: 'alfworld/nope' is not a declared dataset"),
    ("models.tiny-qwen2-alfworld.base", "nope", "models.tiny-qwen2-alfworld.base: 'nope' is not another declared model"),
    ("models.tiny-qwen2-alfworld.resources", {"cpus": 0}, "models.tiny-qwen2-alfworld.resources.cpus: 0 is less than the minimum of 1"),
    ("datasets.mnist/full", {}, "datasets.mnist/full: unknown dataset; registered:"),
    ("plugin", "repro.studies.nosuch", "plugin module 'repro.studies.nosuch' not found"),
    ("methods.gigpo.params.mode", "std", "methods.gigpo.params.mode: 'std' is not of type one of 'mean_std_norm', 'mean_norm'"),
    ("methods.hgpo.params.alpha", 1.0, "methods.hgpo.params: unknown key(s) 'alpha'; allowed:"),
    ("scales.embedded.seeds", [0, "one"], "scales.embedded.seeds[1]: 'one' is not of type 'integer'"),
    ("scales.embedded.seeds", [], "scales.embedded.seeds: [] should be non-empty"),
    ("scales.embedded.train.group_size", 0, "scales.embedded.train: group_size must be >= 1, got 0"),
    ("scales.embedded.train.lr", -1.0, "lr must be > 0"),
    ("scales.embedded.train.gamma", 1.5, "gamma must be in (0, 1]"),
    ("scales.embedded.train.iterations", "many", "scales.embedded.train.iterations: 'many' is not of type int"),
    ("scales.embedded.train.prompt_style", "verbose", "prompt_style: 'verbose' is not of type one of 'full', 'compact'"),
    ("scales.embedded.train.batch", 4, "scales.embedded.train: unknown key(s) 'batch'; allowed:"),
    ("scales.embedded.evaluate.splits", ["test"], "scales.embedded.evaluate.splits: ['test'] not allowed for alfworld; allowed: valid_seen, valid_unseen, train"),
    ("benchmarks.webshop.overrides.embedded.evaluate.splits", ["valid_seen"], "benchmarks.webshop.overrides.embedded.evaluate.splits: ['valid_seen'] not allowed for webshop; allowed: test"),
    ("benchmarks.webshop.overrides.paper.params.mode", "std", "benchmarks.webshop.overrides.paper.params.mode: 'std' is not of type one of"),
    ("benchmarks.webshop.overrides.paper.method_params", {"ppo2": {}}, "benchmarks.webshop.overrides.paper.method_params: unknown method 'ppo2'"),
    ("benchmarks.webshop.sources.max_steps", _DELETE, "benchmarks.webshop.sources: paper-scale override(s) without a source: max_steps"),
    ("scales.embedded.models.webshop", _DELETE, "scales.embedded.models: benchmark(s) webshop have no models"),
    ("scales.embedded.models", ["gpt-5"], "scales.embedded.models: 'gpt-5' is not a declared model"),
    ("scales.embedded.resources.train.mem_mb", 0, "scales.embedded.resources.train.mem_mb: 0 is less than the minimum of 1"),
    ("scales.paper.resources.train.gpus", {"qwen2.5-1.5b-instruct": 2}, "no GPU count for model(s) qwen2.5-7b-instruct"),
    ("scales.paper.sources.lr", _DELETE, "paper-scale hyper-parameter(s) without a source: lr"),
    ("methods.ppo.sources.critic_lr", _DELETE, "methods.ppo.sources: paper-scale override(s) without a source: critic_lr"),
    ("methods.ppo.train.embedded.critic_lr", 0.0, "methods.ppo.train.embedded: critic_lr must be > 0, got 0.0"),
    ("methods.ppo.train.paper.batch", 8, "methods.ppo.train.paper: unknown key(s) 'batch'; allowed:"),
    ("methods.ppo.train.test", {}, "methods.ppo.train: unknown key(s) 'test'"),
    ("benchmarks.alfworld.embedded", "alfworld/tiny", "benchmarks.alfworld.embedded: dataset 'alfworld/tiny' is not a declared dataset"),
    ("figures", ["fig9"], "figures: 'fig9' is not a registered figure of hgpo; allowed:"),
    ("scales.embedded", _DELETE, "'embedded' is a required property"),
    ("extra_key", 1, "unknown key(s) 'extra_key'; allowed:"),
]


@pytest.mark.parametrize("key,value,message", STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_bad_study_config(tmp_path, root, workflow_config, hgpo_study, key, value, message):
    _set(hgpo_study, key, value)
    tree = _tree(tmp_path, root, hgpo_study)
    workflow_config["studies"] = ["hgpo"]
    with pytest.raises(ConfigError) as err:
        load(workflow_config, tree)
    assert message in str(err.value)
    assert "hgpo.yaml" in str(err.value)


def _graphgpo_tree(tmp_path: Path, root: Path, edit) -> Path:
    """hgpo.yaml as in the repo and graphgpo.yaml changed by ``edit``."""
    tree = _tree(tmp_path, root, yaml.safe_load((root / "config" / "studies" / "hgpo.yaml").read_text()))
    graph = yaml.safe_load((root / "config" / "studies" / "graphgpo.yaml").read_text())
    edit(graph)
    (tree / "config" / "studies" / "graphgpo.yaml").write_text(yaml.safe_dump(graph))
    shutil.copytree(root / "paper_figures" / "reported", tree / "paper_figures" / "reported")
    return tree


def test_shared_baselines_are_the_other_studys_runs(root, workflow_config):
    """GraphGPO's warm start, GRPO and GiGPO are HGPO's runs at the embedded scale (one job each);
    its own method and, without HGPO in the DAG, every method run under graphgpo/."""
    runs = {(r.method, r.benchmark): r for r in run_table(load(workflow_config, root)) if r.study == "graphgpo"}
    assert runs["gigpo", "webshop"].result_dir == "results/embedded/hgpo/webshop/tiny-qwen2-webshop/gigpo/seed0"
    assert runs["graphgpo", "alfworld"].shared_from is None
    workflow_config["studies"] = ["graphgpo"]
    alone = [r for r in run_table(load(workflow_config, root))]
    assert all(r.shared_from is None and "/graphgpo/" in r.result_dir for r in alone) and len(alone) == 8
    loaded = load(workflow_config, root)
    assert run_config(loaded, "graphgpo", "graphgpo", "alfworld")["train"]["state_key"] == "alfworld_tracked"
    assert "state_key" not in run_config(loaded, "graphgpo", "graphgpo", "webshop")["train"]  # the observation
    assert run_config(loaded, "graphgpo", "graphgpo", "webshop")["params"]["omega"] == 0.2


def test_a_shared_job_imports_the_same_plugin_whichever_studies_are_selected(root, workflow_config):
    """The math data and warm start (KPO, Dr. MAS) and the ALFWorld warm start (HGPO, GraphGPO,
    PA-MoE) are built through one plugin, that of the declaring study first in config.yaml's
    default list, selected or not: running one study after the main command must not change their
    jobs' params (a rerun of the warm start and every run after it)."""
    every = load(workflow_config, root)["plugins"]
    for studies in (["drmas"], ["kpo"], ["hgpo"], ["pamoe", "kpo"], ["cleansight"], ["pta", "rvpt"]):
        alone = load({**workflow_config, "studies": studies}, root)["plugins"]
        for block in ("datasets", "models"):
            assert alone[block] == {k: every[block][k] for k in alone[block]}, (studies, block)
    assert every["datasets"]["math/embedded"] == every["models"]["tiny-qwen2-math"] == "repro.studies.kpo"
    assert every["models"]["tiny-qwen2-math-team"] == "repro.studies.drmas"  # declared by Dr. MAS only
    assert every["models"]["tiny-qwen2-alfworld"] == "repro.studies.hgpo"
    assert every["models"]["tiny-clip-clean"] == "repro.studies.bdetclip"  # per_seed: built per seed
    assert every["models"]["graph-ode-32"] == "repro.studies.lteode"  # declared by one study


def test_shared_baseline_configured_differently_is_refused(tmp_path, root, workflow_config):
    def edit(graph):
        graph["scales"]["embedded"]["train"]["iterations"] = 7
    workflow_config["studies"] = ["hgpo", "graphgpo"]
    with pytest.raises(ConfigError) as err:
        run_table(load(workflow_config, _graphgpo_tree(tmp_path, root, edit)))
    msg = str(err.value)
    assert "graphgpo.yaml: methods.gigpo.shared_with: hgpo runs gigpo on alfworld differently" in msg
    assert "train.iterations: 7 vs 6" in msg


def test_method_train_names_known_methods(tmp_path, root, workflow_config):
    def edit(graph):
        graph["benchmarks"]["alfworld"]["overrides"]["embedded"]["method_train"] = {"graph": {"state_key": "x"}}
    workflow_config["studies"] = ["hgpo", "graphgpo"]
    with pytest.raises(ConfigError, match="method_train: unknown method 'graph'"):
        load(workflow_config, _graphgpo_tree(tmp_path, root, edit))


def test_per_seed_datasets_give_each_seed_its_own_draw(root, workflow_config):
    """A dataset with ``per_seed`` (the classic studies' embedded data) is read by a run of seed k
    as ``<key>.seed<k>``, fetched with that parameter = k; every method of one seed shares it."""
    from repro.config import dataset_entry

    workflow_config.update(studies=["nrpr", "mcc", "camel"], seeds={"nrpr": [0, 3], "mcc": [3], "camel": [3]})
    loaded = load(workflow_config, root)
    runs = run_table(loaded)
    assert {r.dataset for r in runs if r.study == "nrpr"} == {"lac_digits/embedded.seed0", "lac_digits/embedded.seed3"}
    assert {r.dataset for r in runs if r.study in ("mcc", "camel")} == {"multilabel/embedded.seed3"}
    assert all(r.dataset.endswith(f".seed{r.seed}") for r in runs)
    name, params, plugin = dataset_entry(loaded, "lac_digits/embedded.seed3")
    assert (name, params["seed"], plugin) == ("lac_digits/embedded", 3, "repro.studies.nrpr")
    assert "per_seed" not in params and "per_seed" not in loaded["datasets"]["lac_digits/embedded"]
    assert dataset_entry(loaded, "lac_uci/optdigits.seed3")[1]["seed"] == 3  # the authors' -seed draws the split
    assert dataset_entry(loaded, "mulan/yeast")[0] == "mulan/yeast"  # a fixed partition: as declared
    with pytest.raises(ConfigError, match="'mulan/yeast.seed3' is not declared"):
        dataset_entry(loaded, "mulan/yeast.seed3")


@pytest.mark.parametrize(("value", "message"), [
    ("split", "datasets.alfworld/embedded.per_seed: 'split' must name one of the entry's own parameters"),
    (3, "per_seed: 3 must name one of the entry's own parameters")])
def test_per_seed_must_name_a_parameter(tmp_path, root, workflow_config, hgpo_study, value, message):
    hgpo_study["datasets"]["alfworld/embedded"]["per_seed"] = value
    workflow_config["studies"] = ["hgpo"]
    with pytest.raises(ConfigError) as err:
        load(workflow_config, _tree(tmp_path, root, hgpo_study))
    assert message in str(err.value) and "hgpo.yaml" in str(err.value)


def test_a_dataset_job_names_its_generator_env_and_resources(root, workflow_config):
    """``job`` is the fetch job's, not the fetcher's: a generated dataset reads its generator model's
    folder and asks for its own resources; the rest keep the scale's defaults."""
    from repro.config import DATASET_RESOURCES, dataset_entry, dataset_job

    workflow_config.update(studies=["bdetclip"], scale="paper")
    loaded = load(workflow_config, root)
    assert "job" not in dataset_entry(loaded, "images/food101")[1]
    job = dataset_job(loaded, "images/food101")
    assert job["generator"] == "qwen2.5-7b-instruct" and job["env"] == "vllm"
    assert job["resources"]["gpus"] == 1 and job["resources"]["runtime_min"] == 240
    assert dataset_job(loaded, "images/imagenet1k") == {"generator": None, "env": "repro",
                                                        "resources": DATASET_RESOURCES["paper"]}


@pytest.mark.parametrize(("job", "message"), [
    ({"generatr": "tiny-qwen2-webshop"}, "datasets.alfworld/embedded.job: unknown key(s) generatr; allowed: env, "
                                         "generator, resources"),
    ({"generator": "gpt-4"}, "job.generator: 'gpt-4' is not a declared model; allowed: qwen2.5-1.5b-instruct"),
    ({"generator": "tiny-qwen2-webshop"}, "dataset 'alfworld/embedded' is not generated by a model"),
    ({"env": "../x"}, "job.env: '../x' must name a conda env file"),
    ({"resources": {"gpu": 1}}, "job.resources: unknown key(s) gpu; allowed: gpus, cpus, mem_mb, runtime_min")])
def test_a_bad_dataset_job_is_refused(tmp_path, root, workflow_config, hgpo_study, job, message):
    hgpo_study["datasets"]["alfworld/embedded"]["job"] = job
    workflow_config["studies"] = ["hgpo"]
    with pytest.raises(ConfigError) as err:
        load(workflow_config, _tree(tmp_path, root, hgpo_study))
    assert message in str(err.value) and "hgpo.yaml" in str(err.value)


def test_a_model_built_from_a_per_seed_dataset_must_be_per_seed(tmp_path, root, workflow_config, hgpo_study):
    hgpo_study["datasets"]["alfworld/embedded"]["per_seed"] = "seed"  # the warm start learns from it
    workflow_config["studies"] = ["hgpo"]
    with pytest.raises(ConfigError, match=r"models.tiny-qwen2-alfworld.dataset: 'alfworld/embedded' is drawn anew"
                                          r".*declare models.tiny-qwen2-alfworld.per_seed"):
        load(workflow_config, _tree(tmp_path, root, hgpo_study))


def test_per_seed_models_are_built_per_seed_from_their_seeds_draw(root, workflow_config):
    """The vision-language studies' models are learnt from their per-seed data: seed k's runs read
    ``<model>.seed<k>``, built with the entry's seed param = k from seed k's draw and seed k's base;
    the runs keep the declared model's name (their results folders and figures)."""
    from repro.config import model_entry, model_folders, model_resources, run_model

    workflow_config.update(studies=["rvpt", "cleansight"], seeds={"rvpt": [0, 3], "cleansight": [3]})
    loaded = load(workflow_config, root)
    runs = run_table(loaded)
    assert {r.model for r in runs} == {"tiny-clip-badnets", "tiny-clip-blended", "tiny-llava-badnets"}
    assert run_model(loaded, "tiny-clip-badnets", 3) == "tiny-clip-badnets.seed3"
    assert run_model(loaded, "llava-1.5-7b", 3) == "llava-1.5-7b"  # a paper-scale model: one build
    e = model_entry(loaded, "tiny-clip-badnets.seed3")
    assert (e["name"], e["params"]["seed"], e["dataset"], e["base"]) == (
        "tiny-clip-badnets", 3, "shapes/embedded.seed3", "tiny-clip-clean.seed3")
    assert e["params"]["poison"] == loaded["models"]["tiny-clip-badnets"]["params"]["poison"]
    assert "per_seed" not in loaded["models"]["tiny-clip-badnets"]
    assert model_entry(loaded, "tiny-llava-badnets.seed3")["base"] == "tiny-clip-clean.seed3"
    assert model_folders(loaded, runs) == {f"{m}.seed{k}" for m in ("tiny-clip-clean", "tiny-clip-badnets",
                                                                     "tiny-clip-blended") for k in (0, 3)} | {
        "tiny-llava-badnets.seed3"}
    assert model_resources(loaded, "tiny-clip-clean.seed3") == model_resources(loaded, "tiny-clip-clean")
    with pytest.raises(ConfigError, match="'tiny-clip-badnets.seedx' is not declared"):
        model_entry(loaded, "tiny-clip-badnets.seedx")


def test_a_per_seed_model_must_name_a_param(tmp_path, root, workflow_config, hgpo_study):
    hgpo_study["models"]["tiny-qwen2-alfworld"]["per_seed"] = "init"
    workflow_config["studies"] = ["hgpo"]
    with pytest.raises(ConfigError, match=r"models.tiny-qwen2-alfworld.per_seed: 'init' must name one of "
                                          r"the entry's params \(its value is the seed-0 build\); params: demo_episodes"):
        load(workflow_config, _tree(tmp_path, root, hgpo_study))


def test_a_model_derived_from_a_per_seed_model_must_be_per_seed(tmp_path, root, workflow_config, hgpo_study):
    hgpo_study["models"]["tiny-qwen2-alfworld"]["per_seed"] = "seed"
    hgpo_study["models"]["tiny-qwen2-webshop"]["base"] = "tiny-qwen2-alfworld"
    workflow_config["studies"] = ["hgpo"]
    with pytest.raises(ConfigError, match="models.tiny-qwen2-webshop.base: 'tiny-qwen2-alfworld' is built per "
                                          "run seed"):
        load(workflow_config, _tree(tmp_path, root, hgpo_study))


def test_a_schedule_replaces_a_studys_scale_defaults_for_every_run(root, workflow_config):
    """``schedule`` (an evidence run's longer RL schedule) goes over the scale's train / evaluate
    defaults; benchmark and method overrides still apply on top; bad keys name the config key."""
    workflow_config.update(studies=["hgpo", "graphgpo"], seeds={"hgpo": [0], "graphgpo": [0]},
                           schedule={"hgpo": {"train": {"iterations": 12}, "evaluate": {"episodes_per_game": 4}},
                                     "other": {"train": {"iterations": 1}}})  # a study not selected: ignored
    loaded = load(workflow_config, root)
    alf = run_config(loaded, "hgpo", "hgpo", "alfworld")
    assert alf["train"]["iterations"] == 12 and alf["evaluate"]["episodes_per_game"] == 4
    ws = run_config(loaded, "hgpo", "grpo", "webshop")
    assert ws["train"]["iterations"] == 12 and ws["evaluate"]["episodes_per_game"] == 1  # WebShop's override
    assert ws["train"]["max_steps"] == 8
    assert run_config(loaded, "graphgpo", "graphgpo", "alfworld")["train"]["iterations"] == 6
    # GraphGPO's GiGPO and GRPO are HGPO's runs: their configs must still agree
    workflow_config["schedule"] = {"graphgpo": {"train": {"iterations": 12}}}
    with pytest.raises(ConfigError, match="shared_with: hgpo runs .* differently .*iterations: 12 vs 6"):
        run_table(load(workflow_config, root))
    workflow_config["schedule"] = {"hgpo": {"train": {"iteration": 12}}}
    with pytest.raises(ConfigError, match="config: schedule.hgpo.train"):
        load(workflow_config, root)
