"""``--outputs DIR`` on failure: ``failure`` (one of the contract's FAILURES) and its message.

Each reason the CLI can produce is provoked for real (a wrong digest, a wrong key, data that is
not gzip, a missing object, a failing restore command or check, a deadline, a missing bucket, a
bad flag, SIGTERM); writing the files never changes the run's error or exit code; a success
writes exactly what it always wrote, and no failure file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from streamer.contract import FAILURE_OUTPUTS, FAILURES, LOCK_OUTPUTS, OUTPUTS, Flag, Output
from tests.conftest import AgeKey
from tests.faultproxy import FOREVER, FaultProxy
from tests.streamer.test_cli import put, streamer

pytestmark = pytest.mark.timeout(60)


def written(outputs: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in outputs.iterdir()}


def error_line(result: Result) -> str:
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("streamer: error: ")]
    return line.removeprefix("streamer: error: ")


def assert_failure(result: Result, outputs: Path, failure: str, exit_code: int) -> str:
    """The run failed with ``exit_code``, and DIR says why: ``failure`` and the error's message."""
    assert failure in FAILURES
    assert result.exit_code == exit_code, result.stderr
    files = written(outputs)
    assert set(files) == set(FAILURE_OUTPUTS), files
    assert files[Output.FAILURE] == failure
    assert files[Output.FAILURE_MESSAGE] == error_line(result)
    return files[Output.FAILURE_MESSAGE]


def test_verify_with_the_wrong_digest(stored: str, age_key: AgeKey, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = streamer(
        "verify", stored, "-i", str(age_key.identity_file), "--sha256", "0" * 64,
        "--outputs", str(out),
    )  # fmt: skip
    assert "not the expected" in assert_failure(result, out, "DigestMismatch", 1)


def test_restore_with_the_wrong_digest_stops_the_command_before_its_input_ends(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    out, ended = tmp_path / "out", tmp_path / "ended"
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), Flag.SHA256, "0" * 64,
        "--outputs", str(out), "--", "sh", "-c", f"cat >/dev/null && touch {ended}",
    )  # fmt: skip
    assert "not the expected" in assert_failure(result, out, "DigestMismatch", 1)
    assert not ended.exists()  # killed: it never saw the end of its input, so never committed


def test_restore_with_the_recorded_digest_succeeds(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    verified = streamer("verify", stored, "-i", str(age_key.identity_file), "--outputs", str(out))
    assert verified.exit_code == 0, verified.stderr
    digest = (out / Output.SHA256).read_text()
    for name, value in (("recorded", digest), ("empty", "")):
        again = tmp_path / name
        result = streamer(
            "restore", stored, "-i", str(age_key.identity_file), Flag.SHA256, value,
            "--outputs", str(again), "--", "sh", "-c", "cat >/dev/null",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert not (again / Output.FAILURE).exists()


@pytest.mark.parametrize("command", ["restore", "verify"])
def test_the_wrong_identity(
    stored: str, other_age_key: AgeKey, tmp_path: Path, command: str
) -> None:
    out = tmp_path / "out"
    restore_command = ["--", "sh", "-c", "cat >/dev/null"] if command == "restore" else []
    result = streamer(
        command, stored, "-i", str(other_age_key.identity_file), "--outputs", str(out),
        *restore_command,
    )  # fmt: skip
    assert "none of the given identities" in assert_failure(result, out, "DecryptFailed", 1)


def test_data_that_is_not_gzip(bucket: str, s3_client: Any, tmp_path: Path) -> None:
    url = put(s3_client, bucket, "plain.sql", b"CREATE TABLE t (id int);\n")
    out = tmp_path / "out"
    result = streamer(
        "restore", url, "--compression", "gzip", "--outputs", str(out),
        "--", "sh", "-c", "cat >/dev/null",
    )  # fmt: skip
    assert "is not gzip data" in assert_failure(result, out, "DecompressFailed", 1)


@pytest.mark.parametrize("command", ["restore", "verify"])
def test_a_missing_object(bucket: str, tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    restore_command = ["--", "cat"] if command == "restore" else []
    result = streamer(command, f"s3://{bucket}/gone.sql", "--outputs", str(out), *restore_command)
    assert "does not exist" in assert_failure(result, out, "ObjectNotFound", 1)


def test_a_restore_command_that_exits_3(stored: str, age_key: AgeKey, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), "--outputs", str(out),
        "--check", "true", "--", "sh", "-c", "cat >/dev/null; exit 3",
    )  # fmt: skip
    message = assert_failure(result, out, "CommandFailed", 3)
    assert message == "the restore command failed (exit code 3)"


def test_a_backup_command_that_exits_3(bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = streamer(
        "backup", f"s3://{bucket}/x", "--outputs", str(out), "--", "sh", "-c", "exit 3"
    )
    assert "nothing was stored" in assert_failure(result, out, "CommandFailed", 3)


def test_a_check_that_exits_4(stored: str, age_key: AgeKey, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), "--outputs", str(out),
        "--check", "sh", "--check", "-c", "--check", "echo 'row count 0' >&2; exit 4",
        "--", "sh", "-c", "cat >/dev/null",
    )  # fmt: skip
    message = assert_failure(result, out, "CheckFailed", 4)
    assert "exited with 4 (its last stderr line: 'row count 0')" in message


@pytest.mark.parametrize(
    ("restore", "check", "message"),
    [
        pytest.param(["no-such-restore-xyz"], [], "cannot start", id="restore-cannot-start"),
        pytest.param(["sh", "-c", "cat >/dev/null"], ["sleep", "30"],
                     "the check command did not finish within the deadline", id="deadline"),
    ],
)  # fmt: skip
def test_the_source_failed(
    stored: str, age_key: AgeKey, tmp_path: Path, restore: list[str], check: list[str],
    message: str,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    checks = [arg for value in check for arg in (Flag.CHECK, value)]
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), "--outputs", str(out),
        "--deadline", "1", *checks, "--", *restore,
    )  # fmt: skip
    exit_code = 124 if check else 1
    assert message in assert_failure(result, out, "SourceFailed", exit_code)


def test_a_missing_bucket(s3_env: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    result = streamer("backup", f"s3://{bucket}/x", "--outputs", str(out), "--", "true")
    assert bucket in assert_failure(result, out, "StorageFailed", 1)


def test_a_key_that_names_no_object(bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = streamer("backup", f"s3://{bucket}/dir/", "--outputs", str(out), "--", "true")
    assert "names no object" in assert_failure(result, out, "ConfigError", 2)


def test_sigterm_during_the_check(tmp_path: Path) -> None:
    """The streamer as its own process, stopped while its check runs: 143, and Interrupted."""
    stored, out = tmp_path / "db.sql.gz", tmp_path / "out"
    made = subprocess.run(
        [sys.executable, "-m", "streamer", "backup", stored.as_uri(), "--", "echo", "row"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with subprocess.Popen(
        [sys.executable, "-m", "streamer", "restore", stored.as_uri(), "--outputs", str(out),
         "--check", "sleep", "--check", "30", "--", "sh", "-c", "cat >/dev/null"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(),
    ) as proc:  # fmt: skip
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:
                seen.append(line)
                if "checking the restore with sleep" in line:
                    break
            else:
                pytest.fail(f"the check never started:\n{''.join(seen)}")
            proc.send_signal(signal.SIGTERM)
            rest = proc.stderr.read()
            assert proc.wait(timeout=30) == 128 + signal.SIGTERM, rest
        finally:
            if proc.poll() is None:
                proc.kill()
    files = written(out)
    assert files[Output.FAILURE] == "Interrupted"
    assert files[Output.FAILURE_MESSAGE] == (
        "stopped by SIGTERM before the restore's check was complete; the check command was "
        "killed: the backup was restored, but not checked"
    )


# --- what writing them must never change ------------------------------------------------------


@pytest.mark.parametrize("command", ["restore", "verify"])
def test_a_success_writes_the_outputs_and_no_failure(
    stored: str, age_key: AgeKey, tmp_path: Path, command: str
) -> None:
    out = tmp_path / "out"
    restore_command = ["--check", "true", "--", "sh", "-c", "cat >/dev/null"]
    result = streamer(
        command, stored, "-i", str(age_key.identity_file), "--outputs", str(out),
        *(restore_command if command == "restore" else []),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert set(written(out)) == set(OUTPUTS)


def test_unwritable_failure_outputs_change_neither_the_error_nor_the_exit_code(
    stored: str, age_key: AgeKey, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    out = not_a_directory / "out"
    result = streamer(
        "restore", stored, "-i", str(age_key.identity_file), "--outputs", str(out),
        "--check", "sh", "--check", "-c", "--check", "exit 4", "--", "sh", "-c", "cat >/dev/null",
    )  # fmt: skip
    assert result.exit_code == 4
    assert error_line(result).startswith("the backup was restored, but did not pass its check")
    assert f"why the run failed cannot be written to --outputs '{out}'" in result.stderr
    assert not out.exists()


def test_a_backup_stored_but_not_locked_writes_its_outputs_and_why_it_failed(
    s3_client: Any, s3_endpoint: str, s3_env: str, tmp_path: Path
) -> None:
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    out = tmp_path / "out"
    with FaultProxy(s3_endpoint) as proxy:
        proxy.fail(FOREVER, status=403, code="AccessDenied", match=r"^PUT .*\?retention")
        result = streamer(
            "backup", f"s3://{bucket}/db.sql", "--endpoint-url", proxy.url,
            Flag.OBJECT_LOCK_MODE, "COMPLIANCE", Flag.OBJECT_LOCK_DAYS, "7",
            "--outputs", str(out), "--", "echo", "row",
        )  # fmt: skip
    assert result.exit_code == 1
    files = written(out)
    assert set(files) == set(OUTPUTS + LOCK_OUTPUTS + FAILURE_OUTPUTS)
    assert files[Output.LOCKED] == "false"
    assert files[Output.FAILURE] == "StorageFailed"
    assert "is stored but NOT locked" in files[Output.FAILURE_MESSAGE]
