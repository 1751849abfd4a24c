"""The kind suite's terminal, checked here: the README's commands run by bash as written, a
variable a command assigns is there for the next ones, and a failure says what failed.

Not opt-in: it needs bash only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e import walkthrough as w
from tests.e2e.shell import Shell


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    require_tool("bash")
    return Shell(tmp_path, os.environ, diagnose=lambda: "the cluster's side of it")


def test_an_assignment_is_kept_for_the_next_commands(shell: Shell) -> None:
    assert (
        shell.run("RUN=$(printf '%s' mysql-daily-manual-1a2b3c4d)") == "mysql-daily-manual-1a2b3c4d"
    )
    assert shell.run('echo "backuprun/$RUN"') == "backuprun/mysql-daily-manual-1a2b3c4d\n"
    assert shell.ran == ["RUN=$(printf '%s' mysql-daily-manual-1a2b3c4d)", 'echo "backuprun/$RUN"']


def test_the_overlay_is_written_as_the_readme_shows_it(shell: Shell) -> None:
    shell.run(w.MAKE_OVERLAY_DIR)
    shell.run(w.WRITE_OVERLAY)
    assert (shell.cwd / w.OVERLAY_DIR / "kustomization.yaml").read_text() == w.OVERLAY


def test_a_failing_command_fails_with_its_output_and_the_diagnostics(shell: Shell) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        shell.run("echo on stdout; echo on stderr >&2; exit 3")
    message = str(failed.value)
    for part in ("exited 3", "on stdout", "on stderr", "the cluster's side of it"):
        assert part in message
    assert shell.ran == []


def test_a_failure_inside_a_pipeline_or_a_substitution_fails(shell: Shell) -> None:
    with pytest.raises(pytest.fail.Exception, match="exited 1"):
        shell.run("false | tail -n 1")
    with pytest.raises(pytest.fail.Exception, match="exited 1"):
        shell.run("RUN=$(false)")


def test_an_empty_assignment_fails(shell: Shell) -> None:
    with pytest.raises(pytest.fail.Exception, match="set RUN to nothing"):
        shell.run("RUN=$(printf '')")
    assert "RUN" not in shell.env


def test_an_unset_variable_fails(shell: Shell) -> None:
    shell.env.pop("NOT_SET_ANYWHERE", None)
    with pytest.raises(pytest.fail.Exception, match="unbound variable"):
        shell.run("echo $NOT_SET_ANYWHERE")


def test_a_command_that_hangs_is_stopped(shell: Shell) -> None:
    with pytest.raises(pytest.fail.Exception, match="did not finish within 1s"):
        shell.run("exec sleep 30", timeout=1)
