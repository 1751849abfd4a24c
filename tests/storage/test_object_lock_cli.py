"""``streamer backup`` with Object Lock, end to end against moto: the flags, the outputs, the
failures and their exit codes (the storage-level behaviour is in test_object_lock.py)."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from streamer.cli import main
from streamer.contract import LOCK_OUTPUTS, OUTPUTS, Flag, Output
from tests.conftest import FAKE_SECRET, list_keys, pending_uploads
from tests.faultproxy import FOREVER, FaultProxy

#: Two 5 MiB parts and a bit: a multipart upload.
DATA = b"".join(b"INSERT INTO t VALUES (%d,'%032x');\n" % (i, i * 7919) for i in range(250_000))
LOCK = [Flag.OBJECT_LOCK_MODE, "COMPLIANCE", Flag.OBJECT_LOCK_DAYS, "7"]


def streamer(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert FAKE_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def error_line(result: Result) -> str:
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("streamer: error:")]
    return line


@pytest.fixture
def locked_bucket(s3_client: Any) -> str:
    name = f"locked-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "dump.sql"
    path.write_bytes(DATA)
    return path


def _backup(url: str, dump: Path, out: Path, *flags: str) -> Result:
    return streamer(
        "backup", url, "--compression", "none", "--part-size", "5", "--json",
        "--outputs", str(out), *flags, "--", "cat", str(dump),
    )  # fmt: skip


def test_a_locked_backup_reports_its_lock(
    s3_client: Any, locked_bucket: str, s3_env: str, dump: Path, tmp_path: Path
) -> None:
    before = datetime.datetime.now(datetime.UTC)
    result = _backup(f"s3://{locked_bucket}/db.sql", dump, tmp_path / "out", *LOCK)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    until = datetime.datetime.fromisoformat(summary["retainUntil"])
    assert summary["retainUntil"].endswith("Z")
    week = datetime.timedelta(days=7)
    rounded_up = datetime.timedelta(seconds=1)  # S3 keeps whole seconds
    assert before + week <= until <= datetime.datetime.now(datetime.UTC) + week + rounded_up
    assert (summary["lockMode"], summary["legalHold"], summary["locked"]) == (
        "COMPLIANCE",
        False,
        True,
    )
    written = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert set(written) == set(OUTPUTS) | set(LOCK_OUTPUTS)
    assert written[Output.RETAIN_UNTIL] == summary["retainUntil"]
    assert (written[Output.LOCKED], written[Output.LEGAL_HOLD]) == ("true", "false")
    head = s3_client.head_object(Bucket=locked_bucket, Key="db.sql")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    assert s3_client.get_object(Bucket=locked_bucket, Key="db.sql")["Body"].read() == DATA


def test_an_empty_stream_under_a_legal_hold(
    s3_client: Any, locked_bucket: str, s3_env: str, tmp_path: Path
) -> None:
    result = streamer(
        "backup", f"s3://{locked_bucket}/empty", "--compression", "none", "--json",
        "--outputs", str(tmp_path / "out"), Flag.LEGAL_HOLD, "--", "true",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["lockMode"], summary["retainUntil"]) == (None, None)
    assert (summary["legalHold"], summary["locked"], summary["storedBytes"]) == (True, True, 0)
    assert (tmp_path / "out" / Output.RETAIN_UNTIL).read_text() == ""
    assert (tmp_path / "out" / Output.LEGAL_HOLD).read_text() == "true"
    head = s3_client.head_object(Bucket=locked_bucket, Key="empty")
    assert head["ObjectLockLegalHoldStatus"] == "ON"


def test_an_unlocked_backup_reports_no_lock(
    locked_bucket: str, s3_env: str, dump: Path, tmp_path: Path
) -> None:
    result = _backup(f"s3://{locked_bucket}/db.sql", dump, tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert not {"retainUntil", "locked", "legalHold"} & set(json.loads(result.stdout))
    assert {p.name for p in (tmp_path / "out").iterdir()} == set(OUTPUTS)


def test_a_bucket_without_object_lock_fails_before_the_command_runs(
    s3_client: Any, bucket: str, s3_env: str, dump: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "the-command-ran"
    result = streamer(
        "backup", f"s3://{bucket}/db.sql", *LOCK, "--",
        "sh", "-c", f'touch "{marker}" && cat "{dump}"',
    )  # fmt: skip
    assert result.exit_code == 1
    assert not marker.exists()
    line = error_line(result)
    assert f"the bucket {bucket!r} does not have Object Lock enabled" in line
    assert "create the bucket with --object-lock-enabled-for-bucket" in line
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_a_backup_stored_but_not_locked_fails_and_keeps_the_object(
    s3_client: Any, locked_bucket: str, s3_endpoint: str, s3_env: str, dump: Path, tmp_path: Path
) -> None:
    with FaultProxy(s3_endpoint) as proxy:
        proxy.fail(FOREVER, status=403, code="AccessDenied", match=r"^PUT .*\?retention")
        result = _backup(
            f"s3://{locked_bucket}/db.sql", dump, tmp_path / "out",
            "--endpoint-url", proxy.url, *LOCK,
        )  # fmt: skip
        assert proxy.injected >= 1
    assert result.exit_code == 1
    line = error_line(result)
    assert f"s3://{locked_bucket}/db.sql (version " in line
    assert "is stored but NOT locked: asked for COMPLIANCE until" in line
    assert "AccessDenied" in line
    summary = json.loads(result.stdout)
    assert (summary["locked"], summary["retainUntil"]) == (False, None)
    assert (tmp_path / "out" / Output.LOCKED).read_text() == "false"
    assert (tmp_path / "out" / Output.PATH).read_text() == "db.sql"
    assert s3_client.get_object(Bucket=locked_bucket, Key="db.sql")["Body"].read() == DATA


def test_a_failing_command_leaves_no_locked_object(
    s3_client: Any, locked_bucket: str, s3_env: str, dump: Path
) -> None:
    result = streamer(
        "backup", f"s3://{locked_bucket}/db.sql", "--part-size", "5", "--compression", "none",
        *LOCK, "--", "sh", "-c", f'cat "{dump}"; exit 3',
    )  # fmt: skip
    assert result.exit_code == 3
    assert s3_client.list_object_versions(Bucket=locked_bucket).get("Versions", []) == []
    assert pending_uploads(s3_client, locked_bucket) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            [Flag.OBJECT_LOCK_MODE, "GOVERNANCE"], "come together", id="mode-without-days"
        ),
        pytest.param([Flag.OBJECT_LOCK_DAYS, "3"], "come together", id="days-without-mode"),
        pytest.param([Flag.OBJECT_LOCK_MODE, "STRICT", Flag.OBJECT_LOCK_DAYS, "3"], "STRICT",
                     id="unknown-mode"),
        pytest.param([*LOCK[:3], "0"], "0", id="zero-days"),
    ],
)  # fmt: skip
def test_object_lock_flags_are_checked_before_anything_runs(
    s3_env: str, flags: list[str], message: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = streamer("backup", "s3://any-bucket/k", *flags, "--", "touch", str(marker))
    assert result.exit_code == 2
    assert message in result.stderr
    assert not marker.exists()


def test_a_file_cannot_be_locked(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = streamer("backup", (tmp_path / "db").as_uri(), *LOCK, "--", "touch", str(marker))
    assert result.exit_code == 2
    assert "Object Lock needs an s3:// destination" in error_line(result)
    assert not marker.exists()
    assert not (tmp_path / "db").exists()
