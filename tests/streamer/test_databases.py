"""Real database dumps through the streamer: MariaDB and PostgreSQL on 127.0.0.1.

Each test fills a fresh database, backs it up with its native dump tool through gzip and age
into S3, restores into a second fresh database with the native client, and compares the data
by checksums computed by the database itself.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from streamer.cli import main
from tests.conftest import AgeKey, missing, require_tool

HOST = "127.0.0.1"


def sh(argv: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{argv[0]} failed: {done.stderr}")
    return done.stdout.strip()


def run_streamer(*args: str) -> None:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr


# --- MariaDB -------------------------------------------------------------------------------


def mysql(sql: str, db: str = "") -> str:
    return sh(
        [require_tool("mysql"), "-h", HOST, "-u", "root", "-N", "-B", *([db] if db else [])], sql
    )


@pytest.fixture
def mariadb() -> Iterator[tuple[str, str]]:
    require_tool("mysqldump")
    try:
        mysql("SELECT 1")
    except AssertionError as exc:
        missing(f"MariaDB on {HOST}:3306 ({exc})")
    src, dst = (f"bo_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("src", "dst"))
    mysql(f"CREATE DATABASE {src}; CREATE DATABASE {dst};")
    try:
        yield src, dst
    finally:
        mysql(f"DROP DATABASE IF EXISTS {src}; DROP DATABASE IF EXISTS {dst};")


def test_mariadb_dump_round_trip(mariadb: tuple[str, str], bucket: str, age_key: AgeKey) -> None:
    src, dst = mariadb
    mysql(
        """
        CREATE TABLE orders (
          id INT PRIMARY KEY, name VARCHAR(80), amount DECIMAL(12,2), created DATETIME,
          note TEXT, blob_col BLOB);
        INSERT INTO orders
          SELECT seq, CONCAT('customer ', seq), seq * 1.25, '2024-01-02 03:04:05' + INTERVAL seq MINUTE,
                 REPEAT(CONCAT('note ', seq, ' '), seq % 20), UNHEX(MD5(seq))
          FROM seq_1_to_20000;
        CREATE TABLE `quotes 'and' unicode` (k VARCHAR(20) PRIMARY KEY, v TEXT);
        INSERT INTO `quotes 'and' unicode` VALUES ('a', 'it''s "quoted"\\n and ünïcödé ✓');
        """,
        src,
    )
    url = f"s3://{bucket}/mariadb.sql"
    run_streamer(
        "backup", url, "-r", age_key.recipient, "--",
        "mysqldump", "-h", HOST, "-u", "root", "--single-transaction", src,
    )  # fmt: skip
    run_streamer(
        "restore",
        url,
        "-i",
        str(age_key.identity_file),
        "--",
        "mysql",
        "-h",
        HOST,
        "-u",
        "root",
        dst,
    )
    for table in ("orders", "`quotes 'and' unicode`"):
        count = f"SELECT COUNT(*) FROM {table}"
        assert mysql(count, dst) == mysql(count, src)
        checksum = f"CHECKSUM TABLE {table} EXTENDED"
        assert mysql(checksum, dst).split("\t")[1] == mysql(checksum, src).split("\t")[1]
    assert mysql("SELECT COUNT(*) FROM orders", dst) == "20000"


# --- PostgreSQL ----------------------------------------------------------------------------


def psql(sql: str, db: str = "postgres") -> str:
    argv = [
        require_tool("psql"),
        "-h",
        HOST,
        "-U",
        "postgres",
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-At",
    ]
    return sh(argv, sql)


@pytest.fixture
def postgres() -> Iterator[tuple[str, str]]:
    require_tool("pg_dump")
    try:
        psql("SELECT 1")
    except AssertionError as exc:
        missing(f"PostgreSQL on {HOST}:5432 ({exc})")
    src, dst = (f"bo_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("src", "dst"))
    psql(f"CREATE DATABASE {src};")
    psql(f"CREATE DATABASE {dst};")
    try:
        yield src, dst
    finally:
        psql(f"DROP DATABASE IF EXISTS {src};")
        psql(f"DROP DATABASE IF EXISTS {dst};")


PG_CHECKSUM = "SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY id)) FROM {table} t"


def test_postgres_dump_round_trip(postgres: tuple[str, str], bucket: str, age_key: AgeKey) -> None:
    src, dst = postgres
    psql(
        """
        CREATE TABLE orders (id int PRIMARY KEY, name text, amount numeric(12,2),
                             created timestamptz, tags text[], doc jsonb, raw bytea);
        INSERT INTO orders
          SELECT g, 'customer ' || g, g * 1.25, '2024-01-02 03:04:05+00'::timestamptz + g * interval '1 min',
                 ARRAY['a' || g % 7, 'b'], jsonb_build_object('n', g, 'q', 'it''s'), decode(md5(g::text), 'hex')
          FROM generate_series(1, 20000) g;
        CREATE TABLE notes (id int PRIMARY KEY, body text);
        INSERT INTO notes VALUES (1, E'tab\\there, newline\\nand ünïcödé ✓'), (2, NULL);
        """,
        src,
    )
    url = f"s3://{bucket}/postgres.sql"
    run_streamer(
        "backup", url, "-r", age_key.recipient, "--level", "6", "--",
        "pg_dump", "-h", HOST, "-U", "postgres", "--no-owner", src,
    )  # fmt: skip
    run_streamer(
        "restore", url, "-i", str(age_key.identity_file), "--",
        "psql", "-h", HOST, "-U", "postgres", "-d", dst, "-v", "ON_ERROR_STOP=1", "-q", "--single-transaction",
    )  # fmt: skip
    for table in ("orders", "notes"):
        assert psql(PG_CHECKSUM.format(table=table), dst) == psql(
            PG_CHECKSUM.format(table=table), src
        )
    assert psql("SELECT count(*) FROM orders", dst) == "20000"


def test_postgres_failed_restore_reports_psql_exit_code(
    postgres: tuple[str, str], bucket: str, s3_client
) -> None:
    _, dst = postgres
    s3_client.put_object(Bucket=bucket, Key="bad.sql", Body=b"CREATE TABLE x (;\n")
    result = CliRunner().invoke(
        main,
        ["restore", f"s3://{bucket}/bad.sql", "--",
         "psql", "-h", HOST, "-U", "postgres", "-d", dst, "-v", "ON_ERROR_STOP=1", "-q"],
    )  # fmt: skip
    assert result.exit_code == 3  # psql's code for an error in a script with ON_ERROR_STOP
    assert "syntax error" in result.stderr
