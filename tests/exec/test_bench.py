"""The exec benchmark runs (small corpus, no targets checked): a smoke test so it cannot rot."""

from __future__ import annotations

import pytest

from tests.conftest import run_python


@pytest.mark.timeout(300)
def test_exec_bench_quick_runs_and_reports_both_ratios() -> None:
    done = run_python("bench/exec.py", "--quick", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    for run in ("backup local", "backup exec", "restore local", "restore exec"):
        assert f"| {run} |" in done.stdout
    for step in ("backup", "restore"):
        assert f"{step:8} exec at " in done.stdout
