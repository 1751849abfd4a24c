"""The exec benchmark runs (small corpus, no targets checked): a smoke test so it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_exec_bench_quick_runs_and_reports_both_ratios() -> None:
    done = subprocess.run(
        [sys.executable, "bench/exec.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for run in ("backup local", "backup exec", "restore local", "restore exec"):
        assert f"| {run} |" in done.stdout
    for step in ("backup", "restore"):
        assert f"{step:8} exec at " in done.stdout
