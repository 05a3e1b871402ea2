"""``repro <verb>``: one verb per workflow rule, every path passed explicitly (DESIGN.md §4).

The Snakemake rules are thin wrappers around these verbs; each verb can also be run by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from repro import io as rio
from repro import plugins, registry
from repro.provenance import TRAIN_RECORD, cpu_tags, provenance

log = logging.getLogger("repro")


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


# --- verbs ----------------------------------------------------------------------------------------
def cmd_init_tracking(a: argparse.Namespace) -> None:
    from repro.tracking import init_store, tracking_uri

    uri = tracking_uri(a.uri)
    try:
        init_store(uri)
        log.info("MLflow store ready at %s", uri)
    except Exception as exc:  # tracking never stops the workflow; results/ files are the record
        log.warning("MLflow store %s not reachable (%s: %s); jobs will run without tracking",
                    uri, type(exc).__name__, exc)
    rio.write_text(a.out, uri + "\n")


def cmd_fetch_dataset(a: argparse.Namespace) -> None:
    plugins.load(a.plugin)
    fn = registry.DATASETS.get(a.name)
    t0 = time.perf_counter()
    log.info("dataset %s -> %s", a.name, a.out)
    fn(Path(a.out), a.params)
    log.info("dataset %s ready in %.1fs", a.name, time.perf_counter() - t0)


def cmd_get_model(a: argparse.Namespace) -> None:
    plugins.load(a.plugin)
    import inspect

    fn = registry.MODELS.get(a.builder)
    t0 = time.perf_counter()
    log.info("model via %s -> %s", a.builder, a.out)
    extra = {}
    if a.base_dir:  # a model derived from another (e.g. a backdoored CLIP from a clean one)
        if "base_dir" not in inspect.signature(fn).parameters:
            raise ValueError(f"model builder {a.builder!r} does not derive from a base model (no base_dir "
                             f"parameter); remove `base` from the model entry")
        extra["base_dir"] = Path(a.base_dir)
    fn(Path(a.out), a.params, Path(a.dataset_dir) if a.dataset_dir else None, **extra)
    log.info("model ready in %.1fs", time.perf_counter() - t0)


def _run_name(run: dict) -> str:
    return f"{run['benchmark']}/{run['model']}/{run['method']}/seed{run['seed']}"


def _tracker(run: dict, tracking_uri: str | None, spool: str | None):
    from repro.tracking import Tracker, git_commit

    return Tracker(run["study"], _run_name(run), params=run, uri=tracking_uri, spool=spool,
                   tags={"scale": run["scale"], "git_commit": git_commit(), "rule": "train"})


def cmd_train(a: argparse.Namespace) -> None:
    run = a.run_config
    plugins.load([run["plugin"]])
    family = registry.FAMILIES.get(run["family"])
    t0 = time.perf_counter()
    with _tracker(run, a.tracking_uri, a.tracking_spool) as tracker:
        family.train(run, dataset_dir=Path(a.dataset_dir), model_dir=Path(a.model_dir),
                     out_dir=Path(a.out), log_csv=Path(a.log_csv), work_dir=Path(a.work_dir),
                     tracker=tracker)
        # after training: the CPU record then names the kernels the training loaded
        prov = provenance(Path(a.dataset_dir), Path(a.model_dir), run)
        if os.environ.get("RANK", "0") == "0":
            rio.write_json(Path(a.out) / TRAIN_RECORD, prov)  # evaluate copies it into eval.json
        tracker.set_tags({"provenance": json.dumps({k: v for k, v in prov.items() if k != "cpu"})[:5000],
                          **cpu_tags(prov["cpu"])})
    log.info("train finished in %.1fs", time.perf_counter() - t0)


def cmd_evaluate(a: argparse.Namespace) -> None:
    run = a.run_config
    plugins.load([run["plugin"]])
    family = registry.FAMILIES.get(run["family"])
    import inspect

    # a family whose checkpoints hold only what was fitted (prompts, a probe, detector statistics)
    # reads the frozen base model beside them
    extra = ({"model_dir": Path(a.model_dir)} if a.model_dir and "model_dir" in
             inspect.signature(family.evaluate).parameters else {})
    t0 = time.perf_counter()
    result = family.evaluate(run, dataset_dir=Path(a.dataset_dir), checkpoint_dir=Path(a.checkpoint), **extra)
    state = Path(a.checkpoint) / "trainer_state.json"
    out = {
        "study": run["study"], "benchmark": run["benchmark"], "model": run["model"],
        "method": run["method"], "seed": run["seed"], "scale": run["scale"],
        "checkpoint_iteration": rio.read_json(state)["iteration"] if state.exists() else None,
        **result,
        "config": family.resolve(run),  # every default filled in (summarize reads what set runs apart)
        "provenance": provenance(Path(a.dataset_dir), Path(a.checkpoint), run),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    rio.write_json(a.out, out)
    log.info("wrote %s", a.out)
    if a.tracking_uri:  # live tracking: the evaluated metrics join the training's MLflow run
        from repro.tracking import log_evaluation

        sent = log_evaluation(a.tracking_uri, run["study"], _run_name(run), out)
        log.info("%d evaluated metrics sent to MLflow", sent)


def cmd_sync_tracking(a: argparse.Namespace) -> None:
    """Re-send every run's train_log.csv under ``--results`` to MLflow (after an outage)."""
    from repro.tracking import sync_run, tracking_uri

    uri = tracking_uri(a.tracking_uri)
    logs = sorted(Path(a.results).glob("*/*/*/*/*/seed*/train_log.csv"))
    if not logs:
        raise FileNotFoundError(f"no <scale>/<study>/<benchmark>/<model>/<method>/seed<N>/train_log.csv "
                                f"under {a.results}")
    for csv_path in logs:
        scale, study, bench, model, method, seed = csv_path.parent.parts[-6:]
        name = f"{bench}/{model}/{method}/{seed}"
        sent = sync_run(uri, study, name, csv_path, tags={"scale": scale, "rule": "train"})
        log.info("%s %s: sent %d metric values", study, name, sent)
    log.info("synced %d runs to %s", len(logs), uri)


def cmd_replay_tracking(a: argparse.Namespace) -> None:
    """Send the spooled MLflow runs (``train --tracking-spool``) beside the given eval.json files,
    each with its evaluated metrics."""
    from repro.tracking import SPOOL_FILE, replay_spool, tracking_uri

    uri = tracking_uri(a.tracking_uri)
    spools = [Path(e).parent / SPOOL_FILE for e in a.evals]
    found = [(p, e) for p, e in zip(spools, a.evals) if p.exists()]
    sent = sum(replay_spool(uri, p, rio.read_json(e)) for p, e in found)
    log.info("replayed %d spooled runs to %s (%d already there, %d runs without a spool)",
             sent, uri, len(found) - sent, len(spools) - len(found))


def cmd_summarize(a: argparse.Namespace) -> None:
    from repro.figures.summary import summarize

    df = summarize([Path(p) for p in a.evals], allow_mixed_provenance=a.allow_mixed_provenance,
                   reported=Path(a.reported) if a.reported else None)
    rio.write_text(a.out, df.to_csv(index=False))
    log.info("summary of %d eval files -> %s", len(a.evals), a.out)


def cmd_plot_figure(a: argparse.Namespace) -> None:
    plugins.load(a.plugin)
    import inspect

    fn = registry.FIGURES.get(a.figure)
    Path(a.out_dir).mkdir(parents=True, exist_ok=True)
    # per-sample outputs (ROC curves, per-seed pairs) need the runs' eval.json: given to a figure
    # function that takes them
    extra = {"evals": [Path(p) for p in a.evals]} if "evals" in inspect.signature(fn).parameters else {}
    fn(summary=Path(a.summary), train_logs=[Path(p) for p in a.train_logs],
       reported=Path(a.reported), out_dir=Path(a.out_dir), scale=a.scale, **extra)
    log.info("figure %s -> %s", a.figure, a.out_dir)


def cmd_claims_table(a: argparse.Namespace) -> None:
    """Regenerate a study README's claims table from an evidence folder's figure pages."""
    from repro.figures.claims import replace_claims_block

    readme = Path(a.readme)
    text = replace_claims_block(readme.read_text(), Path(a.evidence), str(readme))
    rio.write_text(readme, text)
    log.info("claims table of %s regenerated from %s", readme, a.evidence)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repro", description=__doc__)
    # --log-file: the same, for launchers whose own parser would take --log for one of theirs
    # (torchrun: "ambiguous option: --log could match --log-dir, --logs-specs")
    p.add_argument("--log", "--log-file", dest="log", help="also append the log to this file")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("init-tracking", help="initialise the MLflow store once before jobs fan out")
    s.add_argument("--uri", default=None)
    s.add_argument("--out", required=True, help="marker file recording the URI")
    s.set_defaults(fn=cmd_init_tracking)

    s = sub.add_parser("fetch-dataset", help="download (paper) or generate (embedded) a dataset")
    s.add_argument("--name", required=True, help="registered dataset, <dataset>/<variant>")
    s.add_argument("--plugin", action="append", default=[],
                   help="module registering it (repro.plugins; repeatable)")
    s.add_argument("--params", type=_json_arg, default={})
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_fetch_dataset)

    s = sub.add_parser("get-model", help="download or build a base model")
    s.add_argument("--builder", required=True)
    s.add_argument("--plugin", action="append", default=[],
                   help="module registering it (repro.plugins; repeatable)")
    s.add_argument("--params", type=_json_arg, default={})
    s.add_argument("--dataset-dir", default=None)
    s.add_argument("--base-dir", default=None, help="the model this one derives from (its entry's `base`)")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_get_model)

    for verb, fn in (("train", cmd_train), ("evaluate", cmd_evaluate)):
        s = sub.add_parser(verb)
        s.add_argument("--run-config", type=_json_arg, required=True,
                       help="resolved run config (JSON), as the workflow passes it")
        s.add_argument("--dataset-dir", required=True)
        s.set_defaults(fn=fn)
        if verb == "train":
            s.add_argument("--model-dir", required=True)
            s.add_argument("--out", required=True, help="final checkpoint directory")
            s.add_argument("--log-csv", required=True)
            s.add_argument("--work-dir", required=True, help="resumable intermediate checkpoints")
            s.add_argument("--tracking-uri", default=None)
            s.add_argument("--tracking-spool", default=None,
                           help="record the MLflow run in this JSON file for replay-tracking instead")
        else:
            s.add_argument("--checkpoint", required=True)
            s.add_argument("--model-dir", default=None,
                           help="the run's base model (read by families whose checkpoints do not hold it)")
            s.add_argument("--out", required=True, help="eval.json")
            s.add_argument("--tracking-uri", default=None,
                           help="add the evaluated metrics to the training's MLflow run (live tracking)")

    s = sub.add_parser("sync-tracking", help="re-send the metrics of every train_log.csv to MLflow "
                                             "(what a tracking outage left out)")
    s.add_argument("--results", default="results", help="the results/ folder (default: results)")
    s.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    s.set_defaults(fn=cmd_sync_tracking)

    s = sub.add_parser("replay-tracking", help="send to MLflow the runs spooled beside these eval.json "
                                               "files (train --tracking-spool), each once")
    s.add_argument("--evals", nargs="+", required=True)
    s.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    s.set_defaults(fn=cmd_replay_tracking)

    s = sub.add_parser("summarize", help="mean ± std over seeds of every eval.json of a study")
    s.add_argument("--evals", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--reported", default=None, help="paper_figures/reported/<study>.csv: joined beside")
    s.add_argument("--allow-mixed-provenance", action="store_true",
                   help="summarize runs with different package versions or dataset digests anyway")
    s.set_defaults(fn=cmd_summarize)

    s = sub.add_parser("claims-table", help="regenerate a study README's claims table from an evidence "
                                            "folder's figure pages")
    s.add_argument("--evidence", required=True, help="a folder of figure pages, e.g. paper_figures/evidence/nrpr")
    s.add_argument("--readme", required=True, help="the README holding the claims markers")
    s.set_defaults(fn=cmd_claims_table)

    s = sub.add_parser("plot-figure", help="one paper table or figure")
    s.add_argument("--figure", required=True, help="registered figure, <study>/<figure-id>")
    s.add_argument("--plugin", action="append", default=[],
                   help="module registering it (repro.plugins; repeatable)")
    s.add_argument("--summary", required=True)
    s.add_argument("--train-logs", nargs="*", default=[])
    s.add_argument("--evals", nargs="*", default=[], help="the study's eval.json files")
    s.add_argument("--reported", required=True)
    s.add_argument("--scale", required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(fn=cmd_plot_figure)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log)
    try:
        args.fn(args)
    except (KeyError, ValueError, FileNotFoundError, registry.PluginImportError) as exc:
        # our own errors say what to fix; one raised inside a library gets its traceback too
        frames = traceback.extract_tb(exc.__traceback__)
        ours = bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(Path(__file__).parent)
        log.error("%s: %s", type(exc).__name__, exc, exc_info=not ours)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
