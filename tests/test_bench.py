"""The benchmarks run (small sizes, no targets checked): a smoke test so they cannot rot.

Speed and memory targets are measured by ``make bench`` by hand, never asserted here. What
is asserted is what a benchmark's figures rest on: each run did the real work (the restore
benchmark checks every load's row count and every digest itself, and fails otherwise), and
a restore starts without importing what only other commands need.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing, require_tool

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_and_reports_every_ratio() -> None:
    require_tool("age")
    require_tool("gzip")
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
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
    done = subprocess.run(
        [sys.executable, "bench/restore_db.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for run in (
        "MariaDB: load the file",
        "MariaDB: streamer restore",
        "PostgreSQL: load the file",
        "PostgreSQL: streamer restore",
        "sha256sum < file (consumer alone)",
        "streamer alone (into cat >/dev/null)",
        "streamer restore into sha256sum",
    ):
        assert f"| {run} |" in done.stdout
    for claim in ("MariaDB:     streamer restore", "PostgreSQL:  streamer restore", "sha256sum:"):
        assert claim in done.stdout
    ratios = json.loads((ROOT / "bench" / "results" / "restore_db_quick.json").read_text())
    assert set(ratios["ratios"]) == {"mysql", "postgres", "sha256sum"}
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
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
