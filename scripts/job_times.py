"""Where the time of a workflow run went: per rule and study, from Snakemake's ``benchmarks/``
files, and the run's wall time from its newest ``.snakemake/log``.

    python scripts/job_times.py [RUN_DIR] [--newest-run] [--group LABEL=STUDY,STUDY ...]
                                [--out benchmarks/job_times.md]

RUN_DIR (default: .) is the folder ``snakemake`` ran in. Job time is each job's wall seconds
(``s``); CPU is ``cpu_time`` (the job's processes), which Snakemake samples (every 0.5 s for a job's
first ~15 s, then every 30 s), so it misses up to the last 30 s of each job: a lower bound, not a
measure of contention (a 44 s single-thread SFT job shows ~15 s). The default profile runs one job
per core, so on two cores the wall time is at least half the summed job time. ``--newest-run``
counts only the jobs the newest run executed (benchmark files written since its log's first
timestamp): an evidence part run in the clone of an earlier command, whose reused jobs it did not
rerun.

The lanes section reads the newest log alone: every job it ran (summaries and figures too, which
write no benchmark file), from its start stamp to its ``Finished`` stamp (1 s resolution), owned
by its ``study`` wildcard, or for a model or dataset by the studies whose
``config/studies/<study>.yaml`` declares it. ``--group`` (repeatable, in order) sums studies; a
shared model or dataset counts in the first group that declares it ("where it is first built").
While every lane is busy (the section says how long that held), a group's job seconds divided by
the lanes is its share of the run's wall time, measured within one run: free of the machine's drift
between the two runs of a before / after pair, not of the pairing of jobs on the cores (a job's time
moves with what runs beside it; README, "Single-run before / after").
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
CORES = re.compile(r"^Provided cores: (\d+)$")
SEED = re.compile(r"\.seed\d+$")  # a model or dataset variant per seed: tiny-clip-badnets.seed0


def job_rows(run_dir: Path, since: datetime | None = None) -> list[dict]:
    """One dict per benchmark file (written at or after ``since``, local time, if given): rule,
    study (or dataset/model), seconds, cpu seconds."""
    rows = []
    for f in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        parts = f.relative_to(run_dir / "benchmarks").with_suffix("").parts
        if parts[0] not in ("fetch_dataset", "get_model", "train", "evaluate"):
            continue
        if since is not None and datetime.fromtimestamp(f.stat().st_mtime) < since:
            continue
        with f.open() as fh:
            last = list(csv.DictReader(fh, delimiter="\t"))[-1]
        # train/evaluate: <scale>/<study>/<benchmark>/<model>/<method>/seed<k>; the others name their output
        group = "/".join(parts[2:4]) if parts[0] in ("train", "evaluate") else "/".join(parts[1:])
        rows.append({"rule": parts[0], "group": group, "s": float(last["s"]), "cpu": float(last["cpu_time"])})
    return rows


def newest_log(run_dir: Path) -> Path | None:
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    return logs[-1] if logs else None


def _stamp(text: str) -> datetime:
    return datetime.strptime(re.sub(" +", " ", text), "%a %b %d %H:%M:%S %Y")


def newest_run(run_dir: Path) -> tuple[datetime, datetime, str] | None:
    """(first timestamp, last timestamp, log name) of the newest Snakemake log (local time)."""
    log = newest_log(run_dir)
    if log is None:
        return None
    stamps = [_stamp(m.group(1)) for line in log.read_text().splitlines() if (m := STAMP.match(line.strip()))]
    return (stamps[0], stamps[-1], log.name) if stamps else None


def wall_seconds(run_dir: Path) -> tuple[float, str] | None:
    """(seconds from the first to the last timestamp, log name) of the newest Snakemake log."""
    run = newest_run(run_dir)
    return ((run[1] - run[0]).total_seconds(), run[2]) if run else None


def log_jobs(log: Path) -> tuple[list[dict], int]:
    """(one dict per finished job of a Snakemake log: rule, wildcards, start, end; the cores it ran on)."""
    jobs, open_jobs, cores, stamp, cur = [], {}, 1, None, None
    for line in log.read_text().splitlines():
        line = line.rstrip()
        if m := STAMP.match(line):
            stamp, cur = _stamp(m.group(1)), None
        elif m := RULE.match(line):
            cur = {"rule": m.group(1), "start": stamp, "wildcards": {}}
        elif cur is not None and (m := WILDCARDS.match(line)):
            cur["wildcards"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif cur is not None and (m := JOBID.match(line)):
            open_jobs[m.group(1)] = cur  # its wildcards line follows
        elif (m := FINISHED.match(line)) and m.group(1) in open_jobs:
            jobs.append({**open_jobs.pop(m.group(1)), "end": stamp})
        elif m := CORES.match(line):
            cores = int(m.group(1))
    return jobs, cores


def declared_by(config_dir: Path) -> dict[str, list[str]]:
    """Model and dataset ids -> the studies whose ``<config_dir>/<study>.yaml`` declares them."""
    import yaml  # noqa: PLC0415

    owners: dict[str, list[str]] = defaultdict(list)
    for f in sorted(config_dir.glob("*.yaml")):
        cfg = yaml.safe_load(f.read_text()) or {}
        for key in [*(cfg.get("models") or {}), *(cfg.get("datasets") or {})]:
            owners[key].append(f.stem)
    return owners


def _studies(job: dict, owners: dict[str, list[str]]) -> list[str]:
    w = job["wildcards"]
    if "study" in w:
        return [w["study"]]
    if "model" in w:
        return owners.get(SEED.sub("", w["model"]), [])
    if "dataset" in w:
        return owners.get(w["dataset"] + "/" + SEED.sub("", w.get("variant", "")), [])
    return []


def lanes(run_dir: Path, groups: list[tuple[str, list[str]]]) -> list[str]:
    """The lanes section (module docstring) for the newest log of ``run_dir``."""
    log = newest_log(run_dir)
    if log is None:
        return []
    jobs, cores = log_jobs(log)
    if not jobs:
        return []
    owners = declared_by(run_dir / "config" / "studies")
    by: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for job in jobs:
        studies = _studies(job, owners)
        label = next((lab for lab, members in groups if set(studies) & set(members)), None)
        label = label or (" + ".join(studies) if studies else f"workflow ({job['rule']})")
        by[label][0] += 1
        by[label][1] += (job["end"] - job["start"]).total_seconds()
    t0 = min(j["start"] for j in jobs)
    span = int((max(j["end"] for j in jobs) - t0).total_seconds())
    running = [0] * span  # jobs running in each second of the run
    for j in jobs:
        for k in range(int((j["start"] - t0).total_seconds()), int((j["end"] - t0).total_seconds())):
            running[k] += 1
    busy = sum(r >= cores for r in running)
    out = [f"## Lanes ({log.name}: {len(jobs)} jobs on {cores} cores, all {cores} busy "
           f"{busy} of {span} s)", "",
           "| studies | jobs | job s | on the lanes, min |", "|---|---|---|---|"]
    for label, (n, sec) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        out.append(f"| {label} | {n} | {sec:.0f} | {sec / cores / 60:.2f} |")
    return out


def report(run_dir: Path, newest_only: bool = False, groups: list[tuple[str, list[str]]] = ()) -> str:
    since = None
    if newest_only:
        run = newest_run(run_dir)
        if run is None:
            raise SystemExit(f"--newest-run: {run_dir}/.snakemake/log holds no Snakemake log with timestamps")
        since = run[0]
    rows = job_rows(run_dir, since)
    if not rows:
        raise SystemExit(f"{run_dir}/benchmarks holds no fetch_dataset/get_model/train/evaluate .tsv files"
                         + (f" written since {since:%Y-%m-%d %H:%M:%S} (the newest run's start)" if since else "")
                         + ": is it the folder snakemake ran in?")
    agg: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        agg[(r["rule"], r["group"])].append(r)
    lines = ["| rule | study/benchmark, or output | jobs | job time s | longest s | CPU s |", "|---|---|---|---|---|---|"]
    for (rule, group), rs in sorted(agg.items()):
        lines.append(f"| {rule} | {group} | {len(rs)} | {sum(r['s'] for r in rs):.0f} | "
                     f"{max(r['s'] for r in rs):.0f} | {sum(r['cpu'] for r in rs):.0f} |")
    study = defaultdict(float)
    for r in rows:
        if r["rule"] in ("train", "evaluate"):
            study[r["group"].split("/")[0]] += r["s"]
    total = sum(r["s"] for r in rows)
    scope = ([f"Jobs the newest run executed (benchmark files written since {since:%Y-%m-%d %H:%M:%S}).", ""]
             if since else [])
    out = ["# Job times", "", *scope, *lines, "",
           "Per study (train + evaluate job time): "
           + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(study.items(), key=lambda kv: -kv[1])) + ".",
           f"All {len(rows)} benchmarked jobs: {total:.0f} s of job time."]
    wall = wall_seconds(run_dir)
    if wall:
        out.append(f"Wall time of the newest run ({wall[1]}): {wall[0]:.0f} s = {wall[0] / 60:.1f} min.")
    if section := lanes(run_dir, list(groups)):
        out += ["", *section]
    return "\n".join(out) + "\n"


def _group(text: str) -> tuple[str, list[str]]:
    label, sep, members = text.partition("=")
    if not sep or not label or not members:
        raise argparse.ArgumentTypeError(f"--group {text!r}: expected LABEL=STUDY[,STUDY...], "
                                         "e.g. 'issue 19=bdetclip,rvpt,pta,cleansight'")
    return label, [m.strip() for m in members.split(",") if m.strip()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default=".", type=Path)
    ap.add_argument("--newest-run", action="store_true",
                    help="only the jobs the newest run executed (not those it reused from earlier runs)")
    ap.add_argument("--group", type=_group, action="append", default=[], metavar="LABEL=STUDY,...",
                    help="sum these studies in the lanes section (repeatable; a shared model or dataset "
                         "counts in the first group that declares it)")
    ap.add_argument("--out", type=Path, help="also write the report here (markdown)")
    a = ap.parse_args(argv)
    text = report(a.run_dir, a.newest_run, a.group)
    sys.stdout.write(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == "__main__":
    main()
