"""``streamer`` end to end through its CLI, against a real S3 server on loopback.

Every failure case checks the two promises that matter: the exit code is non-zero and nothing
was stored (no object, no multipart upload left open), and no secret appears in the output.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streamer.cli import main
from tests.conftest import FAKE_SECRET, AgeKey, list_keys, pending_uploads, require_tool

DATA = b"".join(b"INSERT INTO t VALUES (%d,'row %d');\n" % (i, i) for i in range(50_000))


def streamer(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    for text in (result.stdout, result.stderr):
        assert FAKE_SECRET not in text
        assert "Traceback" not in text
    return result


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "dump.sql"
    path.write_bytes(DATA)
    return path


def backup(url: str, data_file: Path, *extra: str) -> Result:
    return streamer("backup", url, *extra, "--json", "--", "cat", str(data_file))


def restore_to(url: str, out: Path, *extra: str) -> Result:
    return streamer("restore", url, *extra, "--", "sh", "-c", f"cat > {out}")


def assert_nothing_stored(s3_client, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param([], id="gzip-no-encryption"),
        pytest.param(["--compression", "none"], id="plain"),
        pytest.param(["--level", "9"], id="gzip-9"),
        pytest.param(["ENCRYPT"], id="gzip-age"),
        pytest.param(["ENCRYPT", "--compression", "none"], id="age-only"),
    ],
)
def test_round_trip(
    bucket: str, s3_client, data_file: Path, tmp_path: Path, age_key: AgeKey, options: list[str]
) -> None:
    encrypt = "ENCRYPT" in options
    flags = [o for o in options if o != "ENCRYPT"] + (["-r", age_key.recipient] if encrypt else [])
    url = f"s3://{bucket}/db.sql"
    result = backup(url, data_file, *flags)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    stored = s3_client.get_object(Bucket=bucket, Key="db.sql")["Body"].read()
    assert summary["plaintextBytes"] == len(DATA)
    assert summary["storedBytes"] == len(stored)
    assert summary["sha256"] == hashlib.sha256(stored).hexdigest()
    assert summary["encrypted"] is encrypt
    identity = ["-i", str(age_key.identity_file)] if encrypt else []
    out = tmp_path / "restored.sql"
    result = restore_to(url, out, *identity)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == DATA
    result = streamer("verify", url, *identity, "--sha256", summary["sha256"], "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["plaintextBytes"] == len(DATA)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_empty_stream(
    bucket: str, s3_client, tmp_path: Path, age_key: AgeKey, encrypt: bool
) -> None:
    flags = ["-r", age_key.recipient] if encrypt else []
    url = f"s3://{bucket}/empty"
    result = streamer("backup", url, *flags, "--json", "--", "true")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["plaintextBytes"] == 0
    out = tmp_path / "out"
    result = restore_to(url, out, "-i", str(age_key.identity_file))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == b""


def test_seed_path_template_outputs_and_progress(
    bucket: str, s3_client, data_file: Path, tmp_path: Path
) -> None:
    outputs, progress = tmp_path / "outputs", tmp_path / "progress"
    result = streamer(
        "backup",
        f"s3://{bucket}/backups",
        "--path-template",
        '/mysql-{{ now | date "2006.01.02-15:04:05" }}-{{ schedule }}.sql',
        "--var",
        "schedule=mysql-daily",
        "--outputs",
        str(outputs),
        "--json",
        "--",
        "cat",
        str(data_file),
        env={"ARGO_PROGRESS_FILE": str(progress)},
    )
    assert result.exit_code == 0, result.stderr
    [key] = list_keys(s3_client, bucket)
    assert key.startswith("backups/mysql-20")
    assert key.endswith("-mysql-daily.sql")
    assert (outputs / "path").read_text() == key
    assert (outputs / "url").read_text() == f"s3://{bucket}/{key}"
    assert int((outputs / "sizeInBytes").read_text()) == json.loads(result.stdout)["storedBytes"]
    assert (outputs / "sha256").read_text() == json.loads(result.stdout)["sha256"]
    assert progress.read_text() == "1/1\n"


def test_template_given_as_base64(bucket: str, s3_client, data_file: Path) -> None:
    import base64

    template = base64.b64encode(b'x-{{ now | date "2006" }}.sql').decode()
    result = backup(f"s3://{bucket}/", data_file, "--path-template", f"base64:{template}")
    assert result.exit_code == 0, result.stderr
    assert list_keys(s3_client, bucket)[0].startswith("x-20")


def test_file_storage(tmp_path: Path, data_file: Path) -> None:
    target = tmp_path / "store" / "db.sql.gz"
    result = backup(f"file://{target}", data_file)
    assert result.exit_code == 0, result.stderr
    assert (
        subprocess.run(["gzip", "-d"], input=target.read_bytes(), capture_output=True).stdout
        == DATA
    )
    out = tmp_path / "restored"
    assert restore_to(f"file://{target}", out).exit_code == 0
    assert out.read_bytes() == DATA


def test_an_unwritable_outputs_directory_is_an_error_not_a_traceback(
    tmp_path: Path, data_file: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    outputs = not_a_directory / "outputs"
    result = backup(f"file://{tmp_path / 'db.sql.gz'}", data_file, "--outputs", str(outputs))
    assert result.exit_code == 1
    assert f"cannot be written to --outputs '{outputs}'" in result.stderr


# --- backup failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "exit_code", "message"),
    [
        pytest.param(["sh", "-c", "echo partial; exit 3"], 3, "exit code 3", id="non-zero-exit"),
        pytest.param(["sh", "-c", "echo partial; kill -KILL $$"], 137, "SIGKILL", id="signal"),
        pytest.param(["no-such-command-xyz"], 1, "cannot start", id="not-found"),
    ],
)
def test_failed_command_stores_nothing(
    bucket: str, s3_client, command: list[str], exit_code: int, message: str
) -> None:
    result = streamer("backup", f"s3://{bucket}/db.sql", "--", *command)
    assert result.exit_code == exit_code
    assert message in result.stderr
    assert_nothing_stored(s3_client, bucket)


def test_deadline_kills_and_stores_nothing(bucket: str, s3_client) -> None:
    result = streamer(
        "backup", f"s3://{bucket}/db.sql", "--deadline", "1", "--", "sh", "-c", "echo x; sleep 60"
    )
    assert result.exit_code == 124
    assert "deadline of 1s" in result.stderr
    assert_nothing_stored(s3_client, bucket)


def test_deadline_that_cuts_a_background_job_short_stores_nothing(bucket: str, s3_client) -> None:
    # The shell exits 0 at once; the job it left in the background still writes the dump.
    # The deadline's kill cuts that output short, so the backup is not complete.
    script = "(echo part; sleep 60; echo rest) & exit 0"
    result = streamer(
        "backup", f"s3://{bucket}/db.sql", "--deadline", "1", "--", "sh", "-c", script
    )
    assert result.exit_code == 124, result.stderr
    assert "deadline of 1s" in result.stderr
    assert_nothing_stored(s3_client, bucket)


def test_failed_backup_keeps_the_previous_object(bucket: str, s3_client, data_file: Path) -> None:
    url = f"s3://{bucket}/db.sql"
    assert backup(url, data_file).exit_code == 0
    before = s3_client.get_object(Bucket=bucket, Key="db.sql")["Body"].read()
    assert streamer("backup", url, "--", "sh", "-c", "echo broken; exit 1").exit_code == 1
    assert s3_client.get_object(Bucket=bucket, Key="db.sql")["Body"].read() == before
    assert pending_uploads(s3_client, bucket) == []


def test_missing_bucket_fails_before_the_command_runs(s3_env: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = streamer("backup", "s3://no-such-bucket-x/db.sql", "--", "sh", "-c", f"touch {marker}")
    assert result.exit_code != 0
    assert "no-such-bucket-x" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "recipient",
    [
        pytest.param("age1invalid", id="bad-age"),
        pytest.param("ssh-ed25519 AAAA", id="bad-ssh"),
        pytest.param("not-a-key", id="garbage"),
    ],
)
def test_bad_recipient_rejected_before_the_command_starts(
    bucket: str, s3_client, tmp_path: Path, recipient: str
) -> None:
    marker = tmp_path / "ran"
    result = streamer("backup", f"s3://{bucket}/db", "-r", recipient, "--", "touch", str(marker))
    assert result.exit_code == 2
    assert "--recipient" in result.stderr
    assert not marker.exists()
    assert_nothing_stored(s3_client, bucket)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["backup", "s3://b/k"], "Missing argument 'COMMAND", id="no-command"),
        pytest.param(
            ["backup", "ftp://b/k", "--", "true"], "unsupported storage URL", id="bad-url"
        ),
        pytest.param(["backup", "s3:///k", "--", "true"], "has no bucket", id="no-bucket"),
        pytest.param(["backup", "s3://b/", "--", "true"], "names no object", id="no-key"),
        pytest.param(["backup", "s3://b/k", "--level", "10", "--", "true"], "--level", id="level"),
        pytest.param(["backup", "s3://b/k", "--var", "x=1", "--", "true"], "--var", id="bad-var"),
        pytest.param(
            ["backup", "s3://b/", "--path-template", "{{ x", "--", "true"],
            "syntax error",
            id="template",
        ),
        pytest.param(
            ["backup", "s3://b/k", "--pod", "p", "--", "true"], "--pod needs --container", id="pod"
        ),
    ],
)
def test_usage_errors(s3_env: str, args: list[str], message: str) -> None:
    result = streamer(*args)
    assert result.exit_code == 2
    assert message in result.stderr


# --- restore failures ----------------------------------------------------------------------


@pytest.fixture
def encrypted_backup(bucket: str, s3_client, data_file: Path, age_key: AgeKey) -> str:
    url = f"s3://{bucket}/db.sql"
    assert backup(url, data_file, "-r", age_key.recipient).exit_code == 0
    return url


def put(s3_client, bucket: str, key: str, body: bytes) -> str:  # type: ignore[no-untyped-def]
    s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def damaged(s3_client, url: str, how: str) -> str:  # type: ignore[no-untyped-def]
    bucket, key = url[5:].split("/", 1)
    body = bytearray(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    if how == "flip":
        body[len(body) // 2] ^= 0x01
    else:
        del body[len(body) // 2 :]
    return put(s3_client, bucket, f"{key}.{how}", bytes(body))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("wrong-identity", "none of the given identities", id="wrong-identity"),
        pytest.param("no-identity", "is encrypted with age: pass the identity", id="no-identity"),
        pytest.param("flip", "corrupted or truncated", id="flipped-byte"),
        pytest.param("truncate", "corrupted or truncated", id="truncated"),
        pytest.param("missing", "does not exist", id="missing-object"),
    ],
)
def test_restore_failures(
    encrypted_backup: str,
    s3_client,
    tmp_path: Path,
    age_key: AgeKey,
    other_age_key: AgeKey,
    case: str,
    message: str,
) -> None:
    url, identity = encrypted_backup, ["-i", str(age_key.identity_file)]
    if case == "wrong-identity":
        identity = ["-i", str(other_age_key.identity_file)]
    elif case == "no-identity":
        identity = []
    elif case in ("flip", "truncate"):
        url = damaged(s3_client, url, case)
    elif case == "missing":
        url += ".missing"
    out = tmp_path / "out"
    # The restore command reads to EOF: it finishes only because its stdin is closed.
    result = restore_to(url, out, *identity)
    assert result.exit_code != 0
    assert message in result.stderr, result.stderr


def test_truncated_gzip_without_encryption(
    bucket: str, s3_client, data_file: Path, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/db.sql"
    assert backup(url, data_file).exit_code == 0
    result = restore_to(damaged(s3_client, url, "truncate"), tmp_path / "out")
    assert result.exit_code != 0
    assert "truncated" in result.stderr


@pytest.mark.parametrize(
    ("script", "exit_code", "message"),
    [
        pytest.param("cat >/dev/null; exit 42", 42, "exit code 42", id="command-fails"),
        pytest.param(
            "head -c 10 >/dev/null", 1, "before reading the whole backup", id="stops-early"
        ),
    ],
)
def test_restore_exit_code_is_the_commands(
    encrypted_backup: str, age_key: AgeKey, script: str, exit_code: int, message: str
) -> None:
    identity = str(age_key.identity_file)
    result = streamer("restore", encrypted_backup, "-i", identity, "--", "sh", "-c", script)
    assert result.exit_code == exit_code
    assert message in result.stderr


def test_verify_detects_a_replaced_object(
    encrypted_backup: str, s3_client, age_key: AgeKey
) -> None:
    result = streamer(
        "verify", encrypted_backup, "-i", str(age_key.identity_file), "--sha256", "0" * 64
    )
    assert result.exit_code != 0
    assert "not the expected" in result.stderr


def test_identity_from_environment_never_printed(
    encrypted_backup: str, age_key: AgeKey, other_age_key: AgeKey
) -> None:
    result = streamer("verify", encrypted_backup, env={"AGE_IDENTITY": other_age_key.identity})
    assert result.exit_code != 0
    assert other_age_key.identity not in result.stderr + result.stdout
    assert (
        streamer("verify", encrypted_backup, env={"AGE_IDENTITY": age_key.identity}).exit_code == 0
    )


# --- interoperability with the real age and gzip commands -------------------------------


def test_age_and_gzip_read_what_streamer_writes(
    encrypted_backup: str, s3_client, age_key: AgeKey
) -> None:
    age_cli, gzip = require_tool("age"), require_tool("gzip")
    bucket, key = encrypted_backup[5:].split("/", 1)
    stored = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    plain = subprocess.run(  # noqa: S602 (the reference pipeline a user would type)
        f"{age_cli} -d -i {age_key.identity_file} | {gzip} -d",
        shell=True,
        input=stored,
        capture_output=True,
        check=True,
    ).stdout
    assert plain == DATA


def test_streamer_restores_what_gzip_and_age_write(
    bucket: str, s3_client, age_key: AgeKey, tmp_path: Path
) -> None:
    age_cli, gzip = require_tool("age"), require_tool("gzip")
    stored = subprocess.run(  # noqa: S602 (the reference pipeline a user would type)
        f"{gzip} | {age_cli} -r {age_key.recipient}",
        shell=True,
        input=DATA,
        capture_output=True,
        check=True,
    ).stdout
    url = put(s3_client, bucket, "from-cli.sql.gz.age", stored)
    out = tmp_path / "out"
    assert restore_to(url, out, "-i", str(age_key.identity_file)).exit_code == 0
    assert out.read_bytes() == DATA


def test_command_stderr_goes_to_the_log(bucket: str, s3_client) -> None:
    result = streamer(
        "backup", f"s3://{bucket}/x", "--", "sh", "-c", "echo data; echo 'dumping table t' >&2"
    )
    assert result.exit_code == 0
    assert "streamer.command: dumping table t" in result.stderr


def test_help_has_examples() -> None:
    for command in ("backup", "restore", "verify"):
        result = streamer(command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.stdout


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("backups/a#1.sql", id="hash"),
        pytest.param("backups/q?x=1.sql", id="question-mark"),
        pytest.param("backups/x%41.sql", id="percent"),
        pytest.param("backups/with space.sql", id="space"),
        pytest.param("backups/ünïcödé/✓.sql", id="unicode"),
    ],
)
def test_keys_are_taken_literally(
    bucket: str, s3_client, data_file: Path, tmp_path: Path, key: str
) -> None:
    url = f"s3://{bucket}/{key}"
    result = backup(url, data_file)
    assert result.exit_code == 0, result.stderr
    assert list_keys(s3_client, bucket) == [key]
    assert json.loads(result.stdout)["path"] == key
    out = tmp_path / "out"
    assert restore_to(json.loads(result.stdout)["url"], out).exit_code == 0
    assert out.read_bytes() == DATA


def test_file_urls_are_decoded_but_never_split(tmp_path: Path, data_file: Path) -> None:
    target = tmp_path / "odd #1 %41?.sql"
    assert backup(target.as_uri(), data_file).exit_code == 0
    assert target.exists()
    hashed = tmp_path / "plain#name.sql"
    assert backup(f"file://{hashed}", data_file).exit_code == 0
    assert hashed.exists()
