"""A restore's check through exec: the command in CHECK mode, and ``restore --check`` end to end.

The check is exec'd into the Pod like the restore command (the loopback API server runs it as
a local process), in ``--check-container`` or else ``--container``: no stdin, its stdout and
stderr into the streamer's log, its exit code from the Status on channel 3.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from streamer.contract import FAILURE_OUTPUTS, Output
from streamer.errors import SourceError
from streamer.sources.base import MAX_QUOTED_LINE, Mode
from streamer.sources.exec import ExecRunner
from tests.conftest import AgeKey
from tests.exec.apiserver import ApiServer
from tests.exec.test_cli import EXEC, streamer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("kubeconfig", "s3_env")]

DATA = b"".join(b"INSERT INTO t VALUES (%d);\n" % i for i in range(100_000))


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "streamer.command"]


# -- the command in CHECK mode -----------------------------------------------------------------


def test_check_mode_logs_stdout_and_stderr_and_keeps_the_last_stderr_line(
    runner: ExecRunner, apiserver: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamer.command")
    script = "wc -c; echo 'first' >&2; printf 'rows: 0, expected 1000' >&2; exit 5"
    with runner.start(["sh", "-c", script], Mode.CHECK) as command:
        status = command.wait()
        # A last line without a newline is complete once wait() returned.
        assert command.last_stderr_line() == "rows: 0, expected 1000"
        with pytest.raises(SourceError, match="not started for backup"):
            command.readinto(memoryview(bytearray(16)))
    assert (status.code, status.reason) == (5, "exit code 5")
    assert sorted(logged(caplog)) == ["0", "first", "rows: 0, expected 1000"]  # stdin is empty
    [record] = apiserver.execs
    assert (record.stdin, record.stdout, record.container) == (False, True, "main")


def test_check_mode_quotes_a_long_line_cut_short(runner: ExecRunner) -> None:
    with runner.start(["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' y >&2"], Mode.CHECK) as c:
        assert c.wait().ok
        assert c.last_stderr_line() == "y" * (MAX_QUOTED_LINE - 1) + "…"


def test_another_container_of_the_same_pod(runner: ExecRunner, apiserver: ApiServer) -> None:
    other = runner.for_container("db")
    assert (other.namespace, other.pod, other.container) == (runner.namespace, runner.pod, "db")
    with other.start(["true"], Mode.CHECK) as command:
        assert command.wait().ok
    assert [e.container for e in apiserver.execs] == ["db"]


# -- restore --check ---------------------------------------------------------------------------


@pytest.fixture
def stored(bucket: str, age_key: AgeKey, tmp_path: Path) -> str:
    dump = tmp_path / "dump.sql"
    dump.write_bytes(DATA)
    url = f"s3://{bucket}/db.sql"
    result = streamer("backup", url, *EXEC, "-r", age_key.recipient, "--", "cat", str(dump))
    assert result.exit_code == 0, result.stderr
    return url


def checks(*argv: str) -> list[str]:
    return [arg for value in argv for arg in ("--check", value)]


def test_a_passing_check_in_the_restore_container(
    stored: str, age_key: AgeKey, apiserver: ApiServer, tmp_path: Path
) -> None:
    out = tmp_path / "restored.sql"
    script = f'test "$(wc -l < {out})" -eq 100000 && echo "100000 rows" && echo "done" >&2'
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--json",
        *checks("sh", "-c", script), "--", "sh", "-c", f"cat > {out}",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == DATA
    assert json.loads(result.stdout)["plaintextBytes"] == len(DATA)  # stdout: the summary only
    assert "streamer.command: 100000 rows" in result.stderr
    assert "streamer.command: done" in result.stderr
    _, restore, check = apiserver.execs  # the backup, the restore, the check
    assert (restore.container, restore.stdin, restore.exit_code) == ("main", True, 0)
    assert (check.container, check.argv, check.stdin) == ("main", ["sh", "-c", script], False)
    assert check.exit_code == 0


def test_a_check_in_another_container(stored: str, age_key: AgeKey, apiserver: ApiServer) -> None:
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--check-container", "db",
        *checks("sh", "-c", "test -n \"$0\"", "-e"), "--", "sh", "-c", "cat >/dev/null",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [(e.container, e.argv[-1]) for e in apiserver.execs[1:]] == [
        ("main", "cat >/dev/null"),
        ("db", "-e"),
    ]


def test_a_failing_check_fails_the_restore_with_its_exit_code(
    stored: str, age_key: AgeKey, apiserver: ApiServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--outputs", str(out),
        *checks("sh", "-c", "echo 'ERROR 1146: Table t doesn'\\''t exist' >&2; exit 4"),
        "--", "sh", "-c", "cat >/dev/null",
    )  # fmt: skip
    assert result.exit_code == 4
    assert apiserver.execs[-1].exit_code == 4
    expected = (
        "the backup was restored, but did not pass its check: the check command exited with 4 "
        '(its last stderr line: "ERROR 1146: Table t doesn\'t exist")'
    )
    assert f"streamer: error: {expected}" in result.stderr
    assert {p.name for p in out.iterdir()} == set(FAILURE_OUTPUTS)
    assert (out / Output.FAILURE).read_text() == "CheckFailed"
    assert (out / Output.FAILURE_MESSAGE).read_text() == expected


@pytest.mark.parametrize(
    ("container", "argv", "message"),
    [
        pytest.param("nope", ["true"], "has no container 'nope'", id="missing-container"),
        pytest.param("main", ["/no/such/check"], 'exec: "/no/such/check"', id="missing-command"),
    ],
)
def test_a_check_that_cannot_run(
    stored: str, age_key: AgeKey, tmp_path: Path, container: str, argv: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--outputs", str(out),
        "--check-container", container, *checks(*argv), "--", "sh", "-c", "cat >/dev/null",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the backup was restored, but its check could not run: " in result.stderr
    assert message in result.stderr
    assert (out / Output.FAILURE).read_text() == "SourceFailed"


def test_no_check_runs_after_a_failed_restore(
    stored: str, age_key: AgeKey, apiserver: ApiServer
) -> None:
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), *checks("true"),
        "--", "sh", "-c", "cat >/dev/null; exit 3",
    )  # fmt: skip
    assert result.exit_code == 3
    assert [e.argv[0] for e in apiserver.execs] == ["cat", "sh"]  # the backup, the restore
