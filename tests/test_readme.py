"""The README's first command works, and the tree keeps its lint and import contracts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block is not None, "the README must open with a sh block of two commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_demo_and_test_commands() -> None:
    assert readme_commands() == ["make demo", "make test"]


def test_demo_runs_end_to_end() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is needed for the README's commands")
    done = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DEMO_SIZE": "16M"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored == dump  yes" in done.stdout
    for label in ("object key", "stored size", "ratio", "backup throughput", "stored SHA-256"):
        assert label in done.stdout


def test_demo_needs_nothing_outside_the_installed_package(tmp_path: Path) -> None:
    # From another directory, with no PYTHONPATH, only what is installed can be imported:
    # the demo must not reach into bench/ or tests/.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "streamer.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "DEMO_SIZE": "2M"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored == dump  yes" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["ruff", "check", "."], id="ruff"),
        pytest.param(["ruff", "format", "--check", "."], id="ruff-format"),
        pytest.param(["mypy"], id="mypy-strict"),
        pytest.param(["lint-imports"], id="import-contracts"),
    ],
)
def test_lint(argv: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
