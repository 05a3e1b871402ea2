"""Where the time of a workflow run went: per rule and study, from Snakemake's ``benchmarks/``
files, and the run's wall time from its newest ``.snakemake/log``.

    python scripts/job_times.py [RUN_DIR] [--newest-run] [--out benchmarks/job_times.md]

RUN_DIR (default: .) is the folder ``snakemake`` ran in. Job time is each job's wall seconds
(``s``); CPU is ``cpu_time`` (the job's processes), which Snakemake samples (every 0.5 s for a job's
first ~15 s, then every 30 s), so it misses up to the last 30 s of each job: a lower bound, not a
measure of contention (a 44 s single-thread SFT job shows ~15 s). The default profile runs one job
per core, so on two cores the wall time is at least half the summed job time. ``--newest-run``
counts only the jobs the newest run executed (benchmark files written since its log's first
timestamp): an evidence part run in the clone of an earlier command, whose reused jobs it did not
rerun.
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


def newest_run(run_dir: Path) -> tuple[datetime, datetime, str] | None:
    """(first timestamp, last timestamp, log name) of the newest Snakemake log (local time)."""
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return None
    stamps = [datetime.strptime(re.sub(" +", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
              for line in logs[-1].read_text().splitlines() if (m := STAMP.match(line.strip()))]
    return (stamps[0], stamps[-1], logs[-1].name) if stamps else None


def wall_seconds(run_dir: Path) -> tuple[float, str] | None:
    """(seconds from the first to the last timestamp, log name) of the newest Snakemake log."""
    run = newest_run(run_dir)
    return ((run[1] - run[0]).total_seconds(), run[2]) if run else None


def report(run_dir: Path, newest_only: bool = False) -> str:
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
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default=".", type=Path)
    ap.add_argument("--newest-run", action="store_true",
                    help="only the jobs the newest run executed (not those it reused from earlier runs)")
    ap.add_argument("--out", type=Path, help="also write the report here (markdown)")
    a = ap.parse_args(argv)
    text = report(a.run_dir, a.newest_run)
    sys.stdout.write(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == "__main__":
    main()
