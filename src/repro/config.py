"""Configuration: load, validate and expand into the run table (DESIGN.md §5).

Validation happens before any job: the JSON schemas in ``workflow/schemas/`` check structure and
types, then cross-references are checked against the registries (datasets, model builders, trainer
families, figures) and each family checks its own blocks (``repro.families``). Every error names
the file, the key and what is allowed. Nothing here names a family or a kind of method.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from repro import plugins, registry, reported

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, key and allowed values."""


@dataclass(frozen=True)
class Run:
    """One (scale, study, benchmark, model, method, seed): one train + evaluate job."""

    scale: str
    study: str
    benchmark: str
    dataset: str
    model: str
    method: str
    seed: int
    #: the study whose identical run this one is (``methods.<m>.shared_with``); its folder serves both
    shared_from: str | None = None

    @property
    def result_dir(self) -> str:
        return (f"results/{self.scale}/{self.shared_from or self.study}/{self.benchmark}/{self.model}/"
                f"{self.method}/seed{self.seed}")


def _key_path(path: typing.Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _schema_error(err: jsonschema.ValidationError, source: str) -> ConfigError:
    key = _key_path(err.absolute_path)
    if err.validator == "enum":
        msg = f"{err.instance!r} is not allowed; allowed: {', '.join(map(str, err.validator_value))}"
    elif err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        msg = f"unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
    else:
        msg = err.message
    desc = err.schema.get("description") if isinstance(err.schema, dict) else None
    return ConfigError(f"{source}: {key}: {msg}" + (f" ({desc})" if desc else ""))


def validate_schema(data: Any, schema_name: str, source: str) -> None:
    """Validate ``data`` against ``workflow/schemas/<schema_name>``; raise the first error, clearly."""
    schema = yaml.safe_load((SCHEMA_DIR / schema_name).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        # prefer the most specific error of a oneOf/anyOf
        err = errors[0]
        while err.context:
            err = sorted(err.context, key=lambda e: -len(e.absolute_path))[0]
        raise _schema_error(err, source)


def check_dataclass(cls: type, values: dict[str, Any], source: str) -> Any:
    """Build dataclass ``cls`` from ``values`` checking keys and types; errors name key and allowed."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if not _type_ok(value, hints[name]):
            raise ConfigError(f"{source}.{name}: {value!r} is not of type {_type_name(hints[name])}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # a missing field, or a range check in __post_init__
        raise ConfigError(f"{source}: {exc}") from None


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def load_study(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: study file not found") from None
    validate_schema(data, "study.schema.yaml", str(path))
    return data


#: a model's job resources where its entry gives none (``get_model``: downloads and warm starts),
#: per scale; the paper scale's are a multi-GB Hub download's
MODEL_RESOURCES = {"embedded": {"gpus": 0, "cpus": 1, "mem_mb": 4000, "runtime_min": 60},
                   "paper": {"gpus": 0, "cpus": 1, "mem_mb": 32000, "runtime_min": 120}}


#: a dataset's job where its entry's ``job`` gives none (``fetch_dataset``: downloads and generators),
#: per scale; the paper scale's as the SLURM profile set them before datasets could say
DATASET_RESOURCES = {"embedded": {"gpus": 0, "cpus": 1, "mem_mb": 4000, "runtime_min": 60},
                     "paper": {"gpus": 0, "cpus": 1, "mem_mb": 8000, "runtime_min": 120}}
#: a dataset entry's key for its job, not its fetcher: ``generator`` (a declared model the data are
#: generated with, e.g. an LLM writing class descriptions: the job reads its folder), ``env`` (the
#: conda env, ``envs/<env>.yaml``) and ``resources`` (over ``DATASET_RESOURCES``)
DATASET_JOB = "job"
_JOB_KEYS = {"generator", "env", "resources"}


def load(config: dict[str, Any], root: str | Path = ".") -> dict[str, Any]:
    """Validate the workflow config and every selected study; return ``{"config", "studies",
    "datasets", "models", "plugins"}``.

    ``config`` is the merged workflow config (Snakemake's ``config``). Study files are read from
    ``<root>/config/studies/<study>.yaml``; each names its plugin (``repro.plugins``), and their
    ``datasets`` and ``models`` blocks are merged (a key declared by two studies must be declared
    the same way). ``plugins`` maps each dataset and model key to the plugin that registers it.
    """
    root = Path(root)
    validate_schema(config, "config.schema.yaml", "config")
    studies, sources = {}, {}
    for study in config["studies"]:
        src = root / "config" / "studies" / f"{study}.yaml"
        studies[study], sources[study] = load_study(src), str(src)
    plugin_of = {s: d.get("plugin") or plugins.default_plugin(s) for s, d in studies.items()}
    for study, mod in plugin_of.items():
        try:
            plugins.load([mod])
        except (KeyError, registry.PluginImportError) as exc:
            raise ConfigError(f"{sources[study]}: plugin: {exc.args[0]}") from None
    merged: dict[str, dict[str, Any]] = {"datasets": {}, "models": {}}
    owners: dict[str, dict[str, str]] = {"datasets": {}, "models": {}}
    for study, data in studies.items():
        for block in ("datasets", "models"):
            for key, spec in (data.get(block) or {}).items():
                if key in merged[block] and merged[block][key] != spec:
                    raise ConfigError(f"{sources[study]}: {block}.{key}: declared differently in "
                                      f"{sources[owners[block][key]]}; a shared {block[:-1]} needs one "
                                      f"declaration (copy it exactly)")
                merged[block][key] = spec
                owners[block].setdefault(key, study)
    for key, study in owners["datasets"].items():
        if key not in registry.DATASETS:
            raise ConfigError(f"{sources[study]}: datasets.{key}: unknown dataset; registered: "
                              f"{', '.join(registry.DATASETS.names())}")
    dataset_jobs = _pop_dataset_jobs(merged, {k: sources[s] for k, s in owners["datasets"].items()})
    per_seed = _pop_per_seed(merged["datasets"], {k: sources[s] for k, s in owners["datasets"].items()},
                             "datasets")
    for name, spec in merged["models"].items():
        src = sources[owners["models"][name]]
        if spec["builder"] not in registry.MODELS:
            raise ConfigError(f"{src}: models.{name}.builder: {spec['builder']!r} is not a registered "
                              f"model builder; registered: {', '.join(registry.MODELS.names())}")
        if "dataset" in spec and spec["dataset"] not in merged["datasets"]:
            raise ConfigError(f"{src}: models.{name}.dataset: {spec['dataset']!r} is not a declared "
                              f"dataset; allowed: {', '.join(merged['datasets'])}")
        if "base" in spec and (spec["base"] not in merged["models"] or spec["base"] == name):
            raise ConfigError(f"{src}: models.{name}.base: {spec['base']!r} is not another declared model; "
                              f"allowed: {', '.join(m for m in merged['models'] if m != name)}")
    per_seed_models = _per_seed_models(merged["models"], per_seed,
                                       {k: sources[s] for k, s in owners["models"].items()})
    for key, job in dataset_jobs.items():
        if job.get("generator") in per_seed_models or key in per_seed and job.get("generator"):
            raise ConfigError(f"{sources[owners['datasets'][key]]}: datasets.{key}.{DATASET_JOB}.generator: "
                              f"a generated dataset and its generator are built once, not per run seed")
    _check_selection(config, studies, config["scale"])
    _apply_schedule(config, studies)
    for study, data in studies.items():
        _check_study(study, data, merged, config["scale"], sources[study])
        try:  # the papers' numbers, which every figure job reads (repro.reported)
            reported.check(root / "paper_figures" / "reported" / f"{study}.csv", study)
        except reported.ReportedError as exc:
            raise ConfigError(str(exc)) from None
    return {"config": config, "studies": studies, **merged, "per_seed": per_seed,
            "per_seed_models": per_seed_models, "dataset_jobs": dataset_jobs,
            "plugins": {"study": plugin_of, **_builder_plugins(root, merged, studies, plugin_of)}}


def _builder_plugins(root: Path, merged: dict[str, dict], studies: dict[str, dict],
                     plugin_of: dict[str, str]) -> dict[str, dict[str, str]]:
    """The plugin each dataset and model job imports (``--plugin``): for an entry several studies
    declare alike, that of the first of them, selected or not, in the default ``studies`` list of
    ``config/config.yaml`` (then the other files of ``config/studies/`` by name), so that selecting
    fewer studies leaves a shared job's params as a full run set them (Snakemake reruns a job, and
    all that reads it, when a param changes). An unreadable study file, or one declaring the key
    otherwise, is passed over here (it is not selected, so nothing else reads it)."""
    def readable(path: Path) -> Any:
        try:
            return yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return {}
    default = readable(root / "config" / "config.yaml")
    listed = default.get("studies") if isinstance(default, dict) else None
    order = [s for s in listed if isinstance(s, str)] if isinstance(listed, list) else []
    order += sorted({p.stem for p in (root / "config" / "studies").glob("*.yaml")} | set(studies))
    everyone = {s: studies.get(s) or readable(root / "config" / "studies" / f"{s}.yaml") for s in dict.fromkeys(order)}
    out: dict[str, dict[str, str]] = {}
    for block in ("datasets", "models"):
        out[block] = {}
        for key, spec in merged[block].items():
            want = _declared({key: spec}, key)
            first = next(s for s, d in everyone.items() if isinstance(d, dict) and _declared(d.get(block), key) == want)
            out[block][key] = plugin_of.get(first) or everyone[first].get("plugin") or plugins.default_plugin(first)
    return out


def _declared(block: Any, key: str) -> Any:
    """A dataset or model entry as declared, without the keys that ``load`` pops from the merged one."""
    spec = (block or {}).get(key) if isinstance(block, dict) else None
    return {k: v for k, v in spec.items() if k not in (PER_SEED, DATASET_JOB)} if isinstance(spec, dict) else spec


#: a dataset entry's key naming the fetcher parameter that each run seed sets: the dataset is then
#: drawn once per seed, as ``<dataset>/<variant>.seed<k>`` with that parameter = k (a paper that
#: re-splits its data per trial; issue 21 item 3). Runs of one seed share the draw.
PER_SEED = "per_seed"
_PER_SEED_KEY = re.compile(r"(?P<key>.+)\.seed(?P<seed>\d+)")


def _pop_per_seed(entries: dict[str, dict], sources: dict[str, str], block: str) -> dict[str, str]:
    """Pop ``per_seed`` from the merged ``block`` entries (``datasets``: it names one of the entry's
    own parameters; ``models``: one of its ``params``); return key -> that parameter."""
    words = {"datasets": ("own parameters", "draw", "parameters"), "models": ("params", "build", "params")}[block]
    out = {}
    for key, spec in entries.items():
        if PER_SEED not in spec:
            continue
        param = spec[PER_SEED]
        own = [k for k in (spec.get("params", {}) if block == "models" else spec) if k != PER_SEED]
        if not isinstance(param, str) or param not in own:
            raise ConfigError(f"{sources[key]}: {block}.{key}.{PER_SEED}: {param!r} must name one of the "
                              f"entry's {words[0]} (its value is the seed-0 {words[1]}); {words[2]}: "
                              f"{', '.join(own) or 'none'}")
        out[key] = param
        entries[key] = {k: v for k, v in spec.items() if k != PER_SEED}
    return out


def _pop_dataset_jobs(merged: dict[str, dict], sources: dict[str, str]) -> dict[str, dict]:
    """Pop ``job`` from the merged dataset entries (what is left is the fetcher's parameters);
    return key -> that block, checked: a declared generator model that the fetcher takes, an env
    name, known resources."""
    out = {}
    for key, spec in merged["datasets"].items():
        if DATASET_JOB not in spec:
            continue
        job, where = spec[DATASET_JOB], f"{sources[key]}: datasets.{key}.{DATASET_JOB}"
        unknown = sorted(set(job) - _JOB_KEYS) if isinstance(job, dict) else ["(not a mapping)"]
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_JOB_KEYS))}")
        if "generator" in job and job["generator"] not in merged["models"]:
            raise ConfigError(f"{where}.generator: {job['generator']!r} is not a declared model; allowed: "
                              f"{', '.join(merged['models'])}")
        if "generator" in job and "generator_dir" not in inspect.signature(registry.DATASETS.get(key)).parameters:
            raise ConfigError(f"{where}.generator: dataset {key!r} is not generated by a model (its fetcher "
                              f"takes no generator_dir)")
        if "env" in job and not re.fullmatch(r"[a-z0-9_-]+", str(job["env"])):
            raise ConfigError(f"{where}.env: {job['env']!r} must name a conda env file envs/<env>.yaml "
                              f"(lower-case letters, digits, '_' and '-')")
        bad = sorted(set(job.get("resources", {})) - set(DATASET_RESOURCES["paper"]))
        if bad:
            raise ConfigError(f"{where}.resources: unknown key(s) {', '.join(bad)}; allowed: "
                              f"{', '.join(DATASET_RESOURCES['paper'])}")
        out[key] = job
        merged["datasets"][key] = {k: v for k, v in spec.items() if k != DATASET_JOB}
    return out


def dataset_job(loaded: dict[str, Any], key: str) -> dict[str, Any]:
    """The ``fetch_dataset`` job of dataset folder ``key`` (a declared dataset or a per-seed draw):
    ``{"generator": model folder or None, "env": conda env name, "resources": {gpus, cpus, mem_mb,
    runtime_min}}``."""
    name = dataset_entry(loaded, key)[0]
    job = loaded["dataset_jobs"].get(name, {})
    return {"generator": job.get("generator"), "env": job.get("env", "repro"),
            "resources": {**DATASET_RESOURCES[loaded["config"]["scale"]], **job.get("resources", {})}}


def _per_seed_models(models: dict[str, dict], per_seed_data: dict[str, str],
                     sources: dict[str, str]) -> dict[str, str]:
    """Pop ``per_seed`` from the merged model entries; return model -> the builder parameter it
    sets. A model learnt from a per-seed dataset, or derived from a per-seed model, must itself be
    built per seed (seed k's build reads seed k's draw and seed k's base)."""
    out = _pop_per_seed(models, sources, "models")
    for name, spec in models.items():
        if name in out:
            continue
        if spec.get("dataset") in per_seed_data:
            raise ConfigError(f"{sources[name]}: models.{name}.dataset: {spec['dataset']!r} is drawn anew per "
                              f"run seed ({PER_SEED}): declare models.{name}.{PER_SEED}: <the builder's seed "
                              f"param> so that each seed builds its own model from its own draw, or build it "
                              f"from a dataset without {PER_SEED}")
        if spec.get("base") in out:
            raise ConfigError(f"{sources[name]}: models.{name}.base: {spec['base']!r} is built per run seed "
                              f"({PER_SEED}): declare models.{name}.{PER_SEED} as well")
    return out


def run_model(loaded: dict[str, Any], model: str, seed: int) -> str:
    """The model folder a run of ``seed`` reads: ``model``, or its own build ``<model>.seed<seed>``."""
    return f"{model}.seed{seed}" if model in loaded["per_seed_models"] else model


def model_entry(loaded: dict[str, Any], folder: str) -> dict[str, Any]:
    """How to build model folder ``folder`` (a declared model, or a per-seed build ``<declared>.seed<k>``):
    ``{"name", "builder", "params", "dataset", "base", "plugin"}``, dataset and base as the folders
    the build reads (seed k's own where they are per seed; None where the entry names none)."""
    m = _PER_SEED_KEY.fullmatch(folder)
    name, seed = (m["key"], int(m["seed"])) if (
        folder not in loaded["models"] and m and m["key"] in loaded["per_seed_models"]) else (folder, None)
    if name not in loaded["models"]:
        raise ConfigError(f"model {folder!r} is not declared by a selected study; declared: "
                          f"{', '.join(loaded['models'])} (and <model>.seed<k> of those with {PER_SEED}: "
                          f"{', '.join(loaded['per_seed_models']) or 'none'})")
    spec = loaded["models"][name]
    params = dict(spec.get("params", {}))
    dataset, base = spec.get("dataset"), spec.get("base")
    if seed is not None:
        params[loaded["per_seed_models"][name]] = seed
        dataset = dataset and run_dataset(loaded, dataset, seed)
        base = base and run_model(loaded, base, seed)
    return {"name": name, "builder": spec["builder"], "params": params, "dataset": dataset, "base": base,
            "plugin": loaded["plugins"]["models"][name]}


def model_folders(loaded: dict[str, Any], runs: list[Run]) -> set[str]:
    """Every model folder the runs read, with the folders those are derived from."""
    todo = {run_model(loaded, r.model, r.seed) for r in runs}
    out: set[str] = set()
    while todo:
        folder = todo.pop()
        out.add(folder)
        base = model_entry(loaded, folder)["base"]
        if base and base not in out:
            todo.add(base)
    return out


def run_dataset(loaded: dict[str, Any], key: str, seed: int) -> str:
    """The dataset a run of ``seed`` reads: ``key``, or its own draw ``<key>.seed<seed>``."""
    return f"{key}.seed{seed}" if key in loaded["per_seed"] else key


def dataset_entry(loaded: dict[str, Any], key: str) -> tuple[str, dict[str, Any], str]:
    """(registered name, fetcher parameters, plugin) of dataset folder ``key``: a declared dataset,
    or a per-seed draw ``<declared>.seed<k>`` (the declared parameters with the seed's set to k)."""
    m = _PER_SEED_KEY.fullmatch(key)
    if key not in loaded["datasets"] and m and m["key"] in loaded["per_seed"]:
        base = m["key"]
        return base, {**loaded["datasets"][base], loaded["per_seed"][base]: int(m["seed"])}, \
            loaded["plugins"]["datasets"][base]
    if key not in loaded["datasets"]:
        raise ConfigError(f"dataset {key!r} is not declared by a selected study; declared: "
                          f"{', '.join(loaded['datasets'])} (and <key>.seed<k> of those with {PER_SEED}: "
                          f"{', '.join(loaded['per_seed']) or 'none'})")
    return key, loaded["datasets"][key], loaded["plugins"]["datasets"][key]


def model_resources(loaded: dict[str, Any], model: str) -> dict[str, int]:
    """The ``get_model`` job's resources of model folder ``model`` (its entry's ``resources`` over the scale's
    defaults): a paper-scale builder that trains (a backdoored CLIP) asks its GPU and hours there."""
    name = model_entry(loaded, model)["name"]
    return {**MODEL_RESOURCES[loaded["config"]["scale"]], **loaded["models"][name].get("resources", {})}


def _check_study(study: str, data: dict, merged: dict, scale: str, src: str) -> None:
    if data["family"] not in registry.FAMILIES:
        raise ConfigError(f"{src}: family: {data['family']!r} is not a registered trainer family; "
                          f"allowed: {', '.join(registry.FAMILIES.names())}")
    family = registry.FAMILIES.get(data["family"])
    for name, m in data["methods"].items():
        family.check_method(m, f"{src}: methods.{name}")
        family.method_params(m, m.get("params", {}), f"{src}: methods.{name}.params")
    for bench, per_scale in data["benchmarks"].items():
        for sc, ds in per_scale.items():
            if sc == scale and ds is not None and ds not in merged["datasets"]:  # null: not run at sc
                raise ConfigError(f"{src}: benchmarks.{bench}.{sc}: dataset {ds!r} is not a declared "
                                  f"dataset; allowed: {', '.join(merged['datasets'])}")
    for fig, key in [(f, "figures") for f in data.get("figures", [])] + [
            (f, "ablation_figures") for f in data.get("ablation_figures", [])]:
        if f"{study}/{fig}" not in registry.FIGURES:
            raise ConfigError(f"{src}: {key}: {fig!r} is not a registered figure of {study}; allowed: "
                              + ", ".join(n.split("/", 1)[1] for n in registry.FIGURES.names()
                                          if n.startswith(study + "/")))
    for sc in ("embedded", "paper"):
        s = data["scales"][sc]
        where = f"{src}: scales.{sc}"
        family.train_config(s["train"], f"{where}.train")
        for name, m in data["methods"].items():
            if m.get("train", {}).get(sc):
                family.train_config({**s["train"], **m["train"][sc]}, f"{src}: methods.{name}.train.{sc}")
        family.eval_config(s["evaluate"], f"{where}.evaluate")
        if isinstance(s["models"], dict):
            unknown = sorted(set(s["models"]) - set(data["benchmarks"]))
            missing = sorted(set(data["benchmarks"]) - set(s["models"]))
            if unknown or missing:
                raise ConfigError(f"{where}.models: benchmark(s) {', '.join(unknown or missing)} "
                                  f"{'are not in `benchmarks`' if unknown else 'have no models'}; "
                                  f"benchmarks: {', '.join(data['benchmarks'])}")
        all_models = sorted({m for b in data["benchmarks"] for m in scale_models(s, b)})
        if sc == scale:
            for mdl in all_models:
                if mdl not in merged["models"]:
                    raise ConfigError(f"{where}.models: {mdl!r} is not a declared model; allowed: "
                                      f"{', '.join(merged['models'])}")
        for bench in data["benchmarks"]:
            over = data["benchmarks"][bench].get("overrides", {}).get(sc, {})
            bwhere = f"{src}: benchmarks.{bench}.overrides.{sc}"
            family.train_config({**s["train"], **over.get("train", {})}, f"{bwhere}.train")
            ev = family.eval_config({**s["evaluate"], **over.get("evaluate", {})}, f"{bwhere}.evaluate")
            family.check_benchmark(bench, ev, f"{bwhere}.evaluate" if "splits" in over.get("evaluate", {})
                                   else f"{where}.evaluate")
            for key in ("method_params", "method_train"):
                for name in over.get(key, {}):
                    if name not in data["methods"]:
                        raise ConfigError(f"{bwhere}.{key}: unknown method {name!r}; allowed: "
                                          f"{', '.join(data['methods'])}")
            for name, extra in over.get("method_train", {}).items():
                family.train_config({**s["train"], **over.get("train", {}),
                                     **data["methods"][name].get("train", {}).get(sc, {}), **extra},
                                    f"{bwhere}.method_train.{name}")
            shared, read = over.get("params", {}), set()
            for name, m in data["methods"].items():
                where_p = (f"{bwhere}.method_params.{name}" if name in over.get("method_params", {})
                           else f"{bwhere}.params")
                mine = {k: v for k, v in shared.items() if k in param_names(family, m, src)}
                read |= set(mine)
                family.method_params(m, {**m.get("params", {}), **mine,
                                         **over.get("method_params", {}).get(name, {})}, where_p)
            if set(shared) - read:
                raise ConfigError(f"{bwhere}.params: {', '.join(sorted(set(shared) - read))}: no method's "
                                  f"params have such a key")
        for rule in ("train", "evaluate"):
            gpus = s["resources"][rule]["gpus"]
            if isinstance(gpus, dict):
                missing = sorted(set(all_models) - set(gpus))
                if missing:
                    raise ConfigError(f"{where}.resources.{rule}.gpus: no GPU count for model(s) "
                                      f"{', '.join(missing)}")
    paper = data["scales"]["paper"]
    missing = sorted(set(paper["train"]) - set(paper.get("sources", {})))
    if missing:
        raise ConfigError(f"{src}: scales.paper.sources: paper-scale hyper-parameter(s) without a source: "
                          f"{', '.join(missing)}")
    for bench, b in data["benchmarks"].items():
        missing = sorted(set(b.get("overrides", {}).get("paper", {}).get("train", {})) - set(b.get("sources", {})))
        if missing:
            raise ConfigError(f"{src}: benchmarks.{bench}.sources: paper-scale override(s) without a source: "
                              f"{', '.join(missing)}")
    for name, m in data["methods"].items():
        for sc, owner in m.get("shared_with", {}).items():
            if owner == study:
                raise ConfigError(f"{src}: methods.{name}.shared_with.{sc}: {study!r} is this study")
        missing = sorted(set(m.get("train", {}).get("paper", {})) - set(m.get("sources", {})))
        if missing:
            raise ConfigError(f"{src}: methods.{name}.sources: paper-scale override(s) without a source: "
                              f"{', '.join(missing)}")


def param_names(family: Any, method: dict, source: str) -> set[str]:
    """The keys of ``method``'s typed params (its family's ``method_params`` with no values)."""
    typed = family.method_params(method, {}, source)
    return {f.name for f in dataclasses.fields(typed)} if dataclasses.is_dataclass(typed) else set()


def _selected(loaded: dict[str, Any], key: str, study: str) -> list[str] | None:
    """The workflow config's ``key`` map (``benchmarks``, ``methods``) entry for ``study``, if any."""
    return (loaded["config"].get(key) or {}).get(study)


def study_methods(loaded: dict[str, Any], study: str) -> list[str]:
    """The study's methods in this DAG: those the config's ``methods`` map names for it, else its
    methods with ablations only when the config sets ``ablations``; a method that names its
    ``scales`` only at those."""
    ablations, scale = bool(loaded["config"].get("ablations", False)), loaded["config"]["scale"]
    named = _selected(loaded, "methods", study)
    return [m for m, spec in loaded["studies"][study]["methods"].items()
            if (m in named if named is not None else ablations or not spec.get("ablation"))
            and scale in spec.get("scales", (scale,))]


def study_benchmarks(loaded: dict[str, Any], study: str) -> list[str]:
    """The study's benchmarks in this DAG: those the config's ``benchmarks`` map names, else all."""
    named = _selected(loaded, "benchmarks", study)
    return [b for b in loaded["studies"][study]["benchmarks"] if named is None or b in named]


def _apply_schedule(config: dict[str, Any], studies: dict[str, dict]) -> None:
    """Put the workflow config's ``schedule`` (study -> train / evaluate keys) over each selected
    study's scale defaults, after checking the result; a study not selected is ignored."""
    scale = config["scale"]
    for study, blocks in (config.get("schedule") or {}).items():
        if study not in studies:
            continue
        s = studies[study]["scales"][scale]
        family = registry.FAMILIES.get(studies[study]["family"])
        train, evaluate = ({**s[k], **blocks.get(k, {})} for k in ("train", "evaluate"))
        family.train_config(train, f"config: schedule.{study}.train")
        family.eval_config(evaluate, f"config: schedule.{study}.evaluate")
        s["train"], s["evaluate"] = train, evaluate


def _check_selection(config: dict[str, Any], studies: dict[str, dict], scale: str) -> None:
    """The ``benchmarks`` / ``methods`` maps name only what the selected studies have (a map entry
    for a study not selected is ignored, so one config serves every ``studies`` list)."""
    for key in ("benchmarks", "methods"):
        for study, names in (config.get(key) or {}).items():
            if study not in studies:
                continue
            have = studies[study][key]
            if key == "methods":
                have = {m: s for m, s in have.items() if scale in s.get("scales", (scale,))}
            unknown = [n for n in names if n not in have]
            if unknown:
                raise ConfigError(f"config: {key}.{study}: {', '.join(map(repr, unknown))} not a "
                                  f"{key[:-1]} of {study} at the {scale} scale; allowed: {', '.join(have)}")


def study_figures(loaded: dict[str, Any], study: str) -> list[str]:
    """The study's figures in this DAG: ``ablation_figures`` too when the config sets ``ablations``."""
    data = loaded["studies"][study]
    extra = data.get("ablation_figures", []) if loaded["config"].get("ablations", False) else []
    return list(data.get("figures", [])) + list(extra)


def run_table(loaded: dict[str, Any]) -> list[Run]:
    """Every run of the selected scale: study × benchmark × model × method × seed. A method
    ``shared_with`` another study in the DAG that has the same run (benchmark, model, method, seed)
    is that run (``Run.shared_from``), after checking that both studies configure it identically."""
    scale = loaded["config"]["scale"]
    runs = []
    for study, data in loaded["studies"].items():
        s = data["scales"][scale]
        for bench in study_benchmarks(loaded, study):
            per_scale = data["benchmarks"][bench]
            if per_scale[scale] is None:  # the benchmark has no runs at this scale
                continue
            for model in scale_models(s, bench):
                for method in study_methods(loaded, study):
                    for seed in study_seeds(loaded, study):
                        runs.append(Run(scale, study, bench, run_dataset(loaded, per_scale[scale], seed),
                                        model, method, seed))
    own = {(r.study, r.benchmark, r.model, r.method, r.seed) for r in runs}
    out = []
    for r in runs:
        owner = loaded["studies"][r.study]["methods"][r.method].get("shared_with", {}).get(scale)
        if owner is not None and (owner, r.benchmark, r.model, r.method, r.seed) in own:
            _check_shared(loaded, r, dataclasses.replace(r, study=owner))
            r = dataclasses.replace(r, shared_from=owner)
        out.append(r)
    return out


#: what may differ between a shared run's two configs: who asks, and the training diagnostics
#: (measurements of each batch that do not change training)
_NOT_SHARED = ("study", "plugin", "train.diagnostics")


def _check_shared(loaded: dict[str, Any], run: Run, theirs: Run) -> None:
    def flat(cfg: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for block, v in cfg.items():
            out.update({f"{block}.{k}": x for k, x in v.items()} if isinstance(v, dict) else {block: v})
        return {k: x for k, x in out.items() if k not in _NOT_SHARED}

    def resolved(r: Run) -> dict[str, Any]:  # defaults filled in: an omitted default equals a stated one
        cfg = job_config(loaded, r)
        return registry.FAMILIES.get(cfg["family"]).resolve(cfg)

    mine, other = flat(resolved(run)), flat(resolved(theirs))
    diff = sorted(k for k in set(mine) | set(other) if mine.get(k, ...) != other.get(k, ...))
    if diff:
        raise ConfigError(f"config/studies/{run.study}.yaml: methods.{run.method}.shared_with: "
                          f"{theirs.study} runs {run.method} on {run.benchmark} differently "
                          f"({', '.join(f'{k}: {mine.get(k)!r} vs {other.get(k)!r}' for k in diff)}); "
                          f"make the two configs equal or drop shared_with")


def study_seeds(loaded: dict[str, Any], study: str) -> list[int]:
    """Training seeds of ``study``: the workflow config's ``seeds`` (a list for every study, or a
    map study -> list) where it names them, else the study's own ``scales.<scale>.seeds``."""
    over = loaded["config"].get("seeds")
    if isinstance(over, dict):
        over = over.get(study)
    return list(over or loaded["studies"][study]["scales"][loaded["config"]["scale"]]["seeds"])


def scale_models(scale_cfg: dict[str, Any], benchmark: str) -> list[str]:
    """The base models of ``benchmark`` at one scale (``models``: a list, or benchmark -> list)."""
    models = scale_cfg["models"]
    return list(models[benchmark]) if isinstance(models, dict) else list(models)


def run_config(loaded: dict[str, Any], study: str, method: str, benchmark: str | None = None) -> dict[str, Any]:
    """Everything a train/evaluate job of ``study``/``method`` (on ``benchmark``) needs, at the
    selected scale. Train: the scale's, then the benchmark's overrides, then the method's."""
    scale = loaded["config"]["scale"]
    data = loaded["studies"][study]
    s = data["scales"][scale]
    m = data["methods"][method]
    over = data["benchmarks"][benchmark].get("overrides", {}).get(scale, {}) if benchmark else {}
    return {
        "scale": scale, "study": study, "plugin": loaded["plugins"]["study"][study],
        "family": data["family"], "method": method, "impl": m.get("impl"),
        "ablation": bool(m.get("ablation", False)),
        # a benchmark's study-wide params reach the methods whose params have the key
        "params": {**m.get("params", {}),
                   **{k: v for k, v in over.get("params", {}).items()
                      if k in param_names(registry.FAMILIES.get(data["family"]), m, study)},
                   **over.get("method_params", {}).get(method, {})},
        "train": {**s["train"], **over.get("train", {}), **m.get("train", {}).get(scale, {}),
                  **over.get("method_train", {}).get(method, {})},
        "evaluate": {**s["evaluate"], **over.get("evaluate", {})},
        "env": dict(over.get("env", {})),
    }


def job_config(loaded: dict[str, Any], run: Run) -> dict[str, Any]:
    """The resolved config of one run's train/evaluate job: ``run_config`` plus its identity."""
    return {**run_config(loaded, run.study, run.method, run.benchmark), "benchmark": run.benchmark,
            "model": run.model, "seed": run.seed}


def config_hash(obj: Any) -> str:
    """Short stable digest of a resolved configuration (provenance)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
