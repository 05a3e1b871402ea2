# Load + validate the configuration, build the run table, and the get_*/is_* helpers the rules use.
# Logic that grows belongs in src/repro (repro.config), not here.
import functools
import json
import os

from repro import registry
from repro.config import (ConfigError, dataset_entry, dataset_job, job_config, load, model_entry, model_folders,
                          model_resources, run_model, run_table, study_figures)
from repro.provenance import apply_cpu_pins
from repro.tracking import SPOOL_FILE
from snakemake.exceptions import WorkflowError

try:
    LOADED = load(config, ".")
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}")

SCALE = config["scale"]
# where plot_figure writes: an evidence run's own folder, else the scale's
FIGURES = config.get("figures_dir") or f"paper_figures/{SCALE}"
# every job inherits these (a SLURM job re-reads this file): set before any job imports torch
CPU_PINS = apply_cpu_pins(config.get("cpu_pins", {}))
RUNS = run_table(LOADED)
RUN_INDEX = {(r.study, r.benchmark, r.model, r.method, r.seed): r for r in RUNS}


wildcard_constraints:
    scale=SCALE,
    study="|".join(LOADED["studies"]),
    benchmark="|".join(sorted({r.benchmark for r in RUNS})),
    # a run's declared model; a model folder (declared, or a per-seed build <model>.seed<k>)
    model="|".join(sorted({r.model for r in RUNS} | set(LOADED["models"]) | model_folders(LOADED, RUNS))),
    method="|".join(sorted({r.method for r in RUNS})),
    seed=r"\d+",
    dataset=r"[a-z0-9_.-]+",
    variant=r"[a-z0-9_.-]+",


localrules:
    all,
    init_tracking,
    summarize,
    plot_figure,


def get_run(wildcards):
    return RUN_INDEX[
        (wildcards.study, wildcards.benchmark, wildcards.model, wildcards.method, int(wildcards.seed))
    ]


def get_final_output():
    out = [f"{r.result_dir}/eval.json" for r in RUNS]
    for study in LOADED["studies"]:
        for fig in study_figures(LOADED, study):
            out += [f"{FIGURES}/{study}/{fig}.{ext}" for ext in ("csv", "md", "png")]
    return out


def get_dataset_entry(part):
    """Part (0 registered name, 1 fetcher params as JSON, 2 plugin) of the dataset folder's entry:
    a declared dataset or a per-seed draw of one (repro.config.dataset_entry)."""

    def fn(wildcards):
        value = dataset_entry(LOADED, f"{wildcards.dataset}/{wildcards.variant}")[part]
        return json.dumps(value) if part == 1 else value

    return fn


def get_dataset_job(part):
    """Part of the dataset folder's job (repro.config.dataset_job): its generator model as the job's
    input (`input`) and argument (`arg`), its conda env (`env`), or one of its resources."""

    def fn(wildcards):
        job = dataset_job(LOADED, f"{wildcards.dataset}/{wildcards.variant}")
        gen = job["generator"] and f"resources/models/{job['generator']}"
        if part == "input":
            return {"generator": gen} if gen else {}
        if part == "arg":
            return f"--generator-dir {gen}" if gen else ""
        if part == "env":
            return f"../../envs/{job['env']}.yaml"
        return job["resources"][part]

    return fn


def get_model_entry(wildcards):
    """How to build the model folder (repro.config.model_entry: a declared model or a per-seed build)."""
    return model_entry(LOADED, wildcards.model)


def get_model_plugin(wildcards):
    return get_model_entry(wildcards)["plugin"]


def get_model_resource(key):
    """Resource `key` of a get_model job: the model entry's `resources`, else the defaults."""
    return lambda wildcards: model_resources(LOADED, wildcards.model)[key]


def get_model_builder(wildcards):
    return get_model_entry(wildcards)["builder"]


def get_model_params(wildcards):
    return json.dumps(get_model_entry(wildcards)["params"])


def get_model_inputs(wildcards):
    """The dataset a builder learns from and the model it derives from, where the entry names them."""
    entry = get_model_entry(wildcards)
    return {**({"dataset": f"resources/datasets/{entry['dataset']}"} if entry["dataset"] else {}),
            **({"base": f"resources/models/{entry['base']}"} if entry["base"] else {})}


def get_model_dataset_arg(wildcards):
    inputs = get_model_inputs(wildcards)
    return (f"--dataset-dir {inputs['dataset']}" if "dataset" in inputs else "") + (
        f" --base-dir {inputs['base']}" if "base" in inputs else "")


def get_run_model(wildcards):
    """The model folder a run reads: its declared model, or the seed's own build (per_seed)."""
    run = get_run(wildcards)
    return f"resources/models/{run_model(LOADED, run.model, run.seed)}"


def get_run_dataset(wildcards):
    return f"resources/datasets/{get_run(wildcards).dataset}"


@functools.cache
def run_config_of(run):
    """The resolved config of one run (train and evaluate jobs, their params and conda env share it)."""
    return job_config(LOADED, run)


def get_run_config(wildcards):
    return json.dumps(run_config_of(get_run(wildcards)), sort_keys=True)


def get_resource(rule_name, key):
    """Resource `key` of `rule_name` from the study config (GPUs may be given per model)."""

    def fn(wildcards):
        value = LOADED["studies"][wildcards.study]["scales"][SCALE]["resources"][rule_name][key]
        return value[wildcards.model] if isinstance(value, dict) else value

    return fn


def get_train_launcher(wildcards):
    """`repro`, or one process per GPU under torchrun when the job has several GPUs."""
    gpus = get_resource("train", "gpus")(wildcards)
    return f"torchrun --standalone --nproc_per_node={gpus} -m repro.cli" if gpus > 1 else "repro"


def get_run_env(wildcards):
    """The conda env of a run's train/evaluate job: its family says which (envs/<name>.yaml)."""
    run = run_config_of(get_run(wildcards))
    return f"../../envs/{registry.FAMILIES.get(run['family']).conda_env(run)}.yaml"


def get_study_plugin(wildcards):
    return LOADED["plugins"]["study"][wildcards.study]


def get_tracking_uri():
    return config.get("tracking", {}).get("uri") or ""


def tracking_deferred():
    return bool(config.get("tracking", {}).get("deferred"))


def get_tracking_spool_arg(wildcards, output):
    """`--tracking-spool <run folder>/mlflow_run.json` when tracking is deferred, else nothing."""
    if not tracking_deferred():
        return ""
    return f"--tracking-spool {os.path.join(os.path.dirname(output.log_csv), SPOOL_FILE)}"


def get_study_evals(wildcards):
    return [f"{r.result_dir}/eval.json" for r in RUNS if r.study == wildcards.study]


def get_study_train_logs(wildcards):
    return [f"{r.result_dir}/train_log.csv" for r in RUNS if r.study == wildcards.study]
