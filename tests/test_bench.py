"""The benchmarks run (small sizes, no targets checked): a smoke test so they cannot rot.

Speed and memory targets are measured by ``make bench`` by hand, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool

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
