"""The benchmarks run (small sizes, no targets checked): a smoke test so they cannot rot.

Speed and memory targets are measured by ``make bench`` by hand, never asserted here. What
is asserted is what a benchmark's figures rest on: each run did the real work (the restore
benchmark checks every load's row count and every digest itself, and fails otherwise), and
a restore starts without importing what only other commands need.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing, require_tool, run_python


def test_bench_quick_runs_and_reports_every_ratio() -> None:
    require_tool("age")
    require_tool("gzip")
    done = run_python("bench/run.py", "--quick", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("backup:  streamer", "restore: streamer", "memory:  peak RSS"):
        assert line in done.stdout
    ratios = json.loads((ROOT / "bench" / "results" / "quick.json").read_text())["ratios"]
    assert set(ratios) == {
        "backup_speedup",
        "backup_size",
        "restore_speedup",
        "rss_mib",
        "rss_growth",
    }
    assert all(value > 0 for value in ratios.values())


def _require_databases() -> None:
    checks = {
        "MariaDB on 127.0.0.1:3306": [require_tool("mysql"), "-h", "127.0.0.1", "-u", "root", "-e"],
        "PostgreSQL on 127.0.0.1:5432": [
            require_tool("psql"),
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
        ],
    }
    for what, client in checks.items():
        done = subprocess.run([*client, "SELECT 1"], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            missing(f"{what} ({done.stderr.strip()})")


@pytest.mark.timeout(300)
def test_restore_db_bench_quick_loads_both_databases_and_reports_every_ratio() -> None:
    require_tool("sha256sum")
    _require_databases()
    done = run_python("bench/restore_db.py", "--quick", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    for run in (
        "MariaDB: load the file",
        "MariaDB: streamer restore",
        "PostgreSQL: load the file",
        "PostgreSQL: streamer restore",
        "MariaDB: cat file into the client (the pipe alone)",
        "PostgreSQL: cat file into the client (the pipe alone)",
        "sha256sum < file (consumer alone)",
        "streamer alone (into cat >/dev/null)",
        "streamer restore into sha256sum",
        "cat file into sha256sum (the pipe alone)",
        "a boto3 client's first byte of the object",
    ):
        assert f"| {run} |" in done.stdout
    for claim in (
        "MariaDB:     streamer restore",
        "PostgreSQL:  streamer restore",
        "sha256sum:",
        "cat file into sha256sum (the pipe alone): ",
        "the floor on ",
    ):
        assert claim in done.stdout
    ratios = json.loads((ROOT / "bench" / "results" / "restore_db_quick.json").read_text())
    assert set(ratios["ratios"]) == {
        "mysql",
        "mysql-pipe",
        "postgres",
        "postgres-pipe",
        "sha256sum",
        "sha256sum-pipe",
        "sha256sum-floor",
    }
    assert all(value > 0 for value in ratios["ratios"].values())


def test_a_restore_starts_without_jinja2_or_kubernetes(tmp_path: Path) -> None:
    """Rendering a key (Jinja2) is a backup's job and exec (kubernetes) is opt-in: a restore
    that imported them would start ~10% slower (bench/restore_db.py measured it)."""
    dump = tmp_path / "dump.sql"
    dump.write_bytes(b"SELECT 1;\n")
    script = (
        "import sys\n"
        "from streamer.cli import main\n"
        "try:\n"
        f"    main(['-q', 'restore', {dump.as_uri()!r}, '--', 'cat'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('jinja2', 'kubernetes') if m in sys.modules))\n"
    )
    done = run_python("-c", script, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.timeout(300)
def test_controller_bench_quick_converges_and_times_every_flip() -> None:
    """The real controller against the loopback API: it converged from a cold start and after
    a restart, and every Workflow finished while it ran was timed until its run showed it."""
    done = run_python("bench/controller.py", "--quick", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("converge: cold start", "latency:  10 of 10 flips", "memory:   controller peak"):
        assert line in done.stdout
    result = json.loads((ROOT / "bench" / "results" / "controller_quick.json").read_text())
    assert result["layout"] == {"schedules": 20, "runs": 200, "namespaces": 4}
    phases = result["phases"]
    assert set(phases) == {"cold", "flips", "restart"}
    flips = phases["flips"]
    assert len(flips["latencies"]) == flips["extra"]["flips"] == 10
    assert all(latency >= 0 for latency in flips["latencies"])
    for name in ("cold", "restart"):
        assert phases[name]["seconds"] > 0
        # every run and Workflow was reconciled (the convergence condition counts them)
        assert phases[name]["reconciles"]["BackupRun"] >= 200
        assert phases[name]["requests"], f"no request counted in the {name} phase"
    assert result["figures"]["rss_mib"] > 0


@pytest.mark.parametrize(
    ("consumer_seconds", "expected"),
    [
        # Work on two cores: (3.0 + 2.6 + 0.4 - 0.2 - 0.2) / 2 = 2.8 s after a 0.5 s first byte.
        pytest.param(2.5, 0.5 + 2.8, id="the cores-bound"),
        # A consumer slower alone than the shared work: its own time after the first byte.
        pytest.param(3.2, 0.5 + 3.2, id="the consumer-bound"),
    ],
)
def test_the_restore_floor_is_the_first_byte_then_the_larger_of_the_two_bounds(
    monkeypatch: pytest.MonkeyPatch, consumer_seconds: float, expected: float
) -> None:
    from bench import restore_db
    from bench.restore_db import Case, Group, Run

    def case(seconds: float, cpu: float, moto: float) -> Case:
        return Case("c", [], 0, runs=[Run("c", seconds, cpu, moto, 0.0)])

    group = Group(
        "sha256sum",
        [case(consumer_seconds, 3.0, 0.0), case(2.4, 2.6, 0.4)],
        case(4.0, 5.6, 0.4),
        1.15,
        "",
        first_byte=case(0.5, 0.2, 0.2),
    )
    monkeypatch.setattr(restore_db.os, "cpu_count", lambda: 2)
    assert restore_db._cpu_floor(group) == pytest.approx(expected)
