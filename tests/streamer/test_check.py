"""``streamer restore --check``: a command run once the restore succeeded, whose exit code decides.

The check runs as a local process here (the exec source's check is in tests/exec). Its output
goes to the log, never to stdout; it runs only after a complete, verified restore; its failure
is the run's, with its exit code; one deadline covers the restore and its check.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import Result

from streamer.contract import Flag, Output
from tests.conftest import AgeKey
from tests.streamer.test_cli import DATA, streamer

pytestmark = pytest.mark.timeout(60)


def restore_checked(url: str, age_key: AgeKey, out: Path, *check: str, extra: tuple[str, ...] = ()) -> Result:  # fmt: skip
    """Restore into ``out``, then run ``check`` (each argument its own --check)."""
    flags = [arg for value in check for arg in (Flag.CHECK, value)]
    return streamer(
        "restore", url, "-i", str(age_key.identity_file), *flags, *extra,
        "--", "sh", "-c", f"cat > {out}",
    )  # fmt: skip


def test_a_passing_check_completes_the_restore(stored: str, age_key: AgeKey, tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "restored.sql"
    # The check sees the restored data: it runs after the restore command has exited.
    script = f'test "$(wc -l < {out})" -eq 50000 && echo "checked $(wc -l < {out}) rows"'
    result = restore_checked(stored, age_key, out, "sh", "-c", script, extra=("--json",))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == DATA
    assert "streamer.command: checked 50000 rows" in result.stderr
    # The check's stdout goes to the log: stdout holds the summary and nothing else.
    assert json.loads(result.stdout)["plaintextBytes"] == len(DATA)


def test_a_failing_check_fails_the_restore_with_its_exit_code(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    script = "echo 'looking' >&2; echo 'expected 50001 rows, found 50000' >&2; exit 4"
    result = restore_checked(stored, age_key, tmp_path / "out", "sh", "-c", script)
    assert result.exit_code == 4
    assert (
        "streamer: error: the backup was restored, but did not pass its check: the check command "
        "exited with 4 (its last stderr line: 'expected 50001 rows, found 50000')"
    ) in result.stderr


def test_check_values_may_start_with_a_dash(stored: str, age_key: AgeKey, tmp_path: Path) -> None:
    """``--check -e`` is the value -e, not an option: sh's $0 and $1 come back as given."""
    script = 'test "$0" = -e && test "$1" = --x=1 || { echo "got $0 $1" >&2; exit 9; }'
    result = restore_checked(stored, age_key, tmp_path / "out", "sh", "-c", script, "-e", "--x=1")
    assert result.exit_code == 0, result.stderr


def test_a_long_last_stderr_line_is_quoted_cut_short(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    script = "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1"
    result = restore_checked(stored, age_key, tmp_path / "out", "sh", "-c", script)
    assert result.exit_code == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("streamer: error")]
    assert "'" + "x" * 299 + "…'" in error
    assert len(error) < 500


@pytest.mark.parametrize(
    ("restore", "message"),
    [
        pytest.param(["sh", "-c", "cat >/dev/null; exit 3"], "(exit code 3)", id="command-fails"),
        pytest.param(["head", "-c", "10"], "before reading the whole backup", id="stops-early"),
        pytest.param(["WRONG-KEY"], "none of the given identities", id="wrong-key"),
    ],
)
def test_no_check_runs_unless_the_restore_succeeded(
    stored: str, age_key: AgeKey, other_age_key: AgeKey, tmp_path: Path, restore: list[str],
    message: str,
) -> None:  # fmt: skip
    marker = tmp_path / "checked"
    identity = age_key
    if restore == ["WRONG-KEY"]:
        identity, restore = other_age_key, ["sh", "-c", "cat >/dev/null"]
    result = streamer(
        "restore", stored, "-i", str(identity.identity_file),
        "--check", "touch", "--check", str(marker), "--", *restore,
    )  # fmt: skip
    assert result.exit_code != 0
    assert message in result.stderr
    assert not marker.exists()


def test_a_check_that_cannot_start_fails_the_restore(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    result = restore_checked(stored, age_key, tmp_path / "out", "no-such-check-xyz")
    assert result.exit_code == 1
    assert (
        "the backup was restored, but its check could not run: cannot start 'no-such-check-xyz'"
    ) in result.stderr


def test_one_deadline_covers_the_restore_and_its_check(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    """Each takes a second, under a deadline of 1.5 s: only the two together are too slow."""
    started = time.monotonic()
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), "--deadline", "1.5",
        "--check", "sleep", "--check", "1", "--", "sh", "-c", "cat >/dev/null; sleep 1",
    )  # fmt: skip
    assert result.exit_code == 124, result.stderr
    assert "the check command did not finish within the deadline of 1.5s" in result.stderr
    assert time.monotonic() - started < 10


def test_a_check_within_the_deadline_passes(stored: str, age_key: AgeKey, tmp_path: Path) -> None:
    result = restore_checked(stored, age_key, tmp_path / "out", "true", extra=("--deadline", "30"))
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--check-container", "db"],
            "--check-container 'db' says where the check runs, but no --check gives the check "
            "command",
            id="container-without-check",
        ),
        pytest.param(
            ["--check", "true", "--check-container", "db"],
            "--check-container 'db' names a container of the Pod, but the restore runs here: "
            "pass --container",
            id="container-without-exec",
        ),
    ],
)
def test_check_config_errors(
    stored: str, age_key: AgeKey, tmp_path: Path, args: list[str], message: str
) -> None:
    outputs, marker = tmp_path / "outputs", tmp_path / "ran"
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), *args, "--outputs", str(outputs),
        "--", "touch", str(marker),
    )  # fmt: skip
    assert result.exit_code == 2
    assert message in result.stderr
    assert not marker.exists()
    assert (outputs / Output.FAILURE).read_text() == "ConfigError"


def test_verify_takes_no_check(stored: str, age_key: AgeKey) -> None:
    result = streamer("verify", stored, "-i", str(age_key.identity_file), "--check", "true")
    assert result.exit_code == 2
    assert "No such option '--check'" in result.stderr


def test_restore_help_shows_a_check() -> None:
    result = streamer("restore", "--help")
    assert result.exit_code == 0
    assert "--check sh --check -c" in result.stdout
    assert "--check-container NAME" in result.stdout
