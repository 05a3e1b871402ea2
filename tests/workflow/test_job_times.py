"""scripts/job_times.py's --newest-run: only the jobs the newest Snakemake run executed, not the
benchmark files an earlier run in the same clone left (the real-run report is test_smoke's)."""

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(run: Path, rel: str, seconds: float, when: datetime) -> None:
    f = run / "benchmarks" / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(HEADER + f"{seconds}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{seconds / 2}\n")
    os.utime(f, (when.timestamp(), when.timestamp()))


def _log(run: Path, name: str, first: str, last: str) -> None:
    d = run / ".snakemake" / "log"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(f"Building DAG of jobs...\n[{first}]\nrule train:\n[{last}]\nFinished job 0.\n")


def _report(run: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts/job_times.py"), str(run), *args],
                          capture_output=True, text=True)


def test_newest_run_counts_only_the_jobs_it_executed(tmp_path):
    _log(tmp_path, "2026-12-06T060000.000000.snakemake.log", "Sun Dec  6 06:00:00 2026", "Sun Dec  6 06:40:00 2026")
    _log(tmp_path, "2026-12-06T070000.000000.snakemake.log", "Sun Dec  6 07:00:00 2026", "Sun Dec  6 07:30:00 2026")
    _bench(tmp_path, "train/embedded/kpo/math/m/grpo/seed0.tsv", 100.0, datetime(2026, 12, 6, 6, 20))   # earlier run
    _bench(tmp_path, "get_model/tiny.tsv", 40.0, datetime(2026, 12, 6, 6, 5))                           # earlier run
    _bench(tmp_path, "train/embedded/drmas/math/m/grpo/seed1.tsv", 300.0, datetime(2026, 12, 6, 7, 10))
    _bench(tmp_path, "evaluate/embedded/drmas/math/m/grpo/seed1.tsv", 20.0, datetime(2026, 12, 6, 7, 12))

    everything = _report(tmp_path)
    assert everything.returncode == 0, everything.stderr
    assert "All 4 benchmarked jobs: 460 s of job time." in everything.stdout
    newest = _report(tmp_path, "--newest-run")
    assert newest.returncode == 0, newest.stderr
    out = newest.stdout
    assert "written since 2026-12-06 07:00:00" in out and "All 2 benchmarked jobs: 320 s of job time." in out
    assert "kpo" not in out and "get_model" not in out and "Per study (train + evaluate job time): drmas 320 s." in out
    assert "1800 s = 30.0 min" in out


def test_newest_run_without_jobs_says_so(tmp_path):
    _log(tmp_path, "2026-12-06T070000.000000.snakemake.log", "Sun Dec  6 07:00:00 2026", "Sun Dec  6 07:01:00 2026")
    _bench(tmp_path, "train/embedded/kpo/math/m/grpo/seed0.tsv", 100.0, datetime(2026, 12, 6, 6, 20))
    p = _report(tmp_path, "--newest-run")
    assert p.returncode != 0 and "written since 2026-12-06 07:00:00" in p.stderr
    (tmp_path / ".snakemake" / "log" / "2026-12-06T070000.000000.snakemake.log").unlink()
    p = _report(tmp_path, "--newest-run")
    assert p.returncode != 0 and ".snakemake/log holds no Snakemake log" in p.stderr
