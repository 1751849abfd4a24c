"""A restore drill against the real MariaDB on 127.0.0.1: back up, restore elsewhere, check.

A table of a known size in ``test`` is dumped with ``mysqldump`` through gzip and age into S3,
restored into a fresh database, and proven there by a ``--check`` that counts its rows with
the ``mysql`` client. A check that expects another count fails the drill (CheckFailed, in
``--outputs`` too), and the drill never touches the table it backed up.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streamer.cli import main
from streamer.contract import FAILURE_OUTPUTS, OUTPUTS, Flag, Output
from tests.conftest import FAKE_SECRET, AgeKey, missing, require_tool
from tests.streamer.test_databases import HOST, mysql

pytestmark = pytest.mark.timeout(120)

ROWS = 1000


def streamer(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert FAKE_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def table() -> Iterator[str]:
    """A table of ROWS rows in ``test``, named for this test alone, dropped afterwards."""
    require_tool("mysqldump")
    try:
        mysql("SELECT 1")
    except AssertionError as exc:
        missing(f"MariaDB on {HOST}:3306 ({exc})")
    name = f"drill_{uuid.uuid4().hex[:10]}"
    mysql(
        f"""
        CREATE TABLE {name} (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2));
        INSERT INTO {name} SELECT seq, CONCAT('row ', seq), seq * 1.5 FROM seq_1_to_{ROWS};
        """,
        "test",
    )
    try:
        yield name
    finally:
        mysql(f"DROP TABLE IF EXISTS {name}", "test")


@pytest.fixture
def target() -> Iterator[str]:
    """A fresh, empty database to restore into, dropped afterwards."""
    name = f"bo_drill_{uuid.uuid4().hex[:10]}"
    mysql(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        mysql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def backup(table: str, bucket: str, age_key: AgeKey) -> str:
    """The table dumped through gzip and age into the bucket; its URL."""
    url = f"s3://{bucket}/drills/{table}.sql.gz.age"
    result = streamer(
        "backup", url, Flag.RECIPIENT, age_key.recipient, "--json", "--",
        require_tool("mysqldump"), "-h", HOST, "-u", "root", "--single-transaction", "test", table,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["compressed"], summary["encrypted"]) == (True, True)
    return url


def count_check(database: str, table: str, expected: int) -> list[str]:
    """``--check`` arguments: fail, saying what it found, unless ``table`` has ``expected`` rows."""
    query = shlex.quote(f"SELECT COUNT(*) FROM {table}")
    client = f"{shlex.quote(require_tool('mysql'))} -N -h {HOST} -u root {database}"
    script = (
        f'n="$({client} -e {query})" || exit 2; '
        f'test "$n" = {expected} || {{ echo "expected {expected} rows in {table}, found $n" >&2; '
        "exit 1; }"
    )
    return [arg for value in ("sh", "-c", script) for arg in (Flag.CHECK, value)]


def restore_drill(url: str, age_key: AgeKey, target: str, check: list[str], out: Path) -> Result:
    return streamer(
        "restore", url, Flag.IDENTITY, str(age_key.identity_file), Flag.OUTPUTS, str(out),
        *check, "--", require_tool("mysql"), "-h", HOST, "-u", "root", target,
    )  # fmt: skip


def test_a_drill_restores_the_backup_and_its_check_proves_it(
    table: str, target: str, backup: str, age_key: AgeKey, tmp_path: Path
) -> None:
    out = tmp_path / "outputs"
    result = restore_drill(backup, age_key, target, count_check(target, table, ROWS), out)
    assert result.exit_code == 0, result.stderr
    assert "the restore passed its check" in result.stderr
    assert {p.name for p in out.iterdir()} == set(OUTPUTS)
    assert mysql(f"SELECT COUNT(*) FROM {table}", target) == str(ROWS)
    checksum = f"CHECKSUM TABLE {table} EXTENDED"
    assert mysql(checksum, target).split("\t")[1] == mysql(checksum, "test").split("\t")[1]


def test_a_drill_whose_check_fails_fails_and_leaves_the_source_untouched(
    table: str, target: str, backup: str, age_key: AgeKey, tmp_path: Path
) -> None:
    out = tmp_path / "outputs"
    before = mysql(f"CHECKSUM TABLE {table} EXTENDED", "test")
    result = restore_drill(backup, age_key, target, count_check(target, table, ROWS + 1), out)
    assert result.exit_code == 1, result.stderr
    message = (
        "the backup was restored, but did not pass its check: the check command exited with 1 "
        f"(its last stderr line: 'expected {ROWS + 1} rows in {table}, found {ROWS}')"
    )
    assert f"streamer: error: {message}" in result.stderr
    assert {p.name for p in out.iterdir()} == set(FAILURE_OUTPUTS)
    assert (out / Output.FAILURE).read_text() == "CheckFailed"
    assert (out / Output.FAILURE_MESSAGE).read_text() == message
    # The drill restored elsewhere: the table it backed up is as it was.
    assert mysql(f"SELECT COUNT(*) FROM {table}", "test") == str(ROWS)
    assert mysql(f"CHECKSUM TABLE {table} EXTENDED", "test") == before
