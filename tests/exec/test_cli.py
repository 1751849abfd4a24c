"""``streamer backup|restore --pod … --container …`` end to end: exec, gzip, age and S3.

The command runs behind the loopback API server; S3 is the moto server. Every failure case
checks that the exit code is non-zero, nothing was stored (no object, no multipart upload left
open), and neither the S3 secret nor the bearer token appears in the output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streamer.cli import main
from tests.conftest import FAKE_SECRET, AgeKey, list_keys
from tests.exec.apiserver import V4, ApiServer
from tests.exec.conftest import EXEC_TOKEN, NAMESPACE, POD
from tests.streamer.test_cli import assert_nothing_stored
from tests.streamer.test_databases import HOST, mysql, psql

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("kubeconfig", "s3_env")]

EXEC = ("--pod", POD, "--container", "main", "--namespace", NAMESPACE, "--ready-timeout", "5")
MiB = 1024 * 1024


def streamer(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    for text in (result.stdout, result.stderr):
        assert FAKE_SECRET not in text
        assert EXEC_TOKEN not in text
        assert "Traceback" not in text
    return result


def zeros(size: int) -> list[str]:
    return ["sh", "-c", f"head -c {size} /dev/zero"]


@pytest.fixture
def stored(bucket: str, age_key: AgeKey) -> str:
    """A 24 MiB encrypted backup, made through exec, to restore from."""
    url = f"s3://{bucket}/stored.bin"
    result = streamer("backup", url, *EXEC, "-r", age_key.recipient, "--", *zeros(24 * MiB))
    assert result.exit_code == 0, result.stderr
    return url


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_gib_random_binary_round_trip(
    age_key: AgeKey, apiserver: ApiServer, tmp_path: Path
) -> None:
    """1 GiB of random bytes out of the Pod and back in, byte-identical, with bounded memory.

    The object goes to a file:// destination: this test is about the exec hop, and the S3
    server on loopback slows down on objects this large. The streamer runs as its own process
    so its peak RSS can be measured.
    """
    source = tmp_path / "random.bin"
    with source.open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(16 * MiB))
    with source.open("rb") as stream:
        expected = hashlib.file_digest(stream, "sha256").hexdigest()
    url = (tmp_path / "stored.age").as_uri()
    exe = str(Path(sys.executable).with_name("streamer"))
    digest = tmp_path / "restored.sha256"
    backup_rss = _run_measured(
        [exe, "backup", url, *EXEC, "--compression", "none", "-r", age_key.recipient,
         "--", "cat", str(source)]
    )  # fmt: skip
    source.unlink()
    restore_rss = _run_measured(
        [exe, "restore", url, *EXEC, "-i", str(age_key.identity_file),
         "--", "sh", "-c", f"sha256sum > {digest}"]
    )  # fmt: skip
    assert digest.read_text().split()[0] == expected
    assert [e.protocol for e in apiserver.execs] == ["v5.channel.k8s.io"] * 2
    for rss in (backup_rss, restore_rss):
        assert rss < 128 * MiB, f"peak RSS {rss / MiB:.0f} MiB"


def _run_measured(argv: list[str]) -> int:
    """Run ``argv``; fail on a non-zero exit; return its peak RSS in bytes.

    The peak is VmHWM from /proc, polled: rusage of a child forked from this (large) test
    process would report the parent's high-water mark from before exec.
    """
    peak = 0
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            time.sleep(0.05)
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == 0, err
    return peak


def test_mariadb_round_trip_through_exec(
    mariadb: tuple[str, str], bucket: str, age_key: AgeKey
) -> None:
    src, dst = mariadb
    mysql(
        """
        CREATE TABLE orders (id INT PRIMARY KEY, name VARCHAR(80), amount DECIMAL(12,2),
                             note TEXT, blob_col BLOB);
        INSERT INTO orders
          SELECT seq, CONCAT('customer ', seq), seq * 1.25, REPEAT('ü ', seq % 20), UNHEX(MD5(seq))
          FROM seq_1_to_20000;
        """,
        src,
    )
    url = f"s3://{bucket}/mariadb.sql.gz.age"
    result = streamer(
        "backup", url, *EXEC, "-r", age_key.recipient, "--json", "--",
        "mysqldump", "-h", HOST, "-u", "root", "--single-transaction", src,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["compressed"] is True
    assert summary["encrypted"] is True
    result = streamer(
        "restore", url, *EXEC, "-i", str(age_key.identity_file), "--",
        "mysql", "-h", HOST, "-u", "root", dst,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    checksum = "CHECKSUM TABLE orders EXTENDED"
    assert mysql(checksum, dst).split("\t")[1] == mysql(checksum, src).split("\t")[1]
    assert mysql("SELECT COUNT(*) FROM orders", dst) == "20000"


def test_postgres_round_trip_through_exec(
    postgres: tuple[str, str], bucket: str, age_key: AgeKey
) -> None:
    src, dst = postgres
    psql(
        """
        CREATE TABLE orders (id int PRIMARY KEY, name text, doc jsonb, raw bytea);
        INSERT INTO orders
          SELECT g, 'customer ' || g, jsonb_build_object('n', g, 'q', 'it''s ✓'),
                 decode(md5(g::text), 'hex')
          FROM generate_series(1, 20000) g;
        """,
        src,
    )
    url = f"s3://{bucket}/postgres.sql.gz.age"
    result = streamer(
        "backup", url, *EXEC, "-r", age_key.recipient, "--",
        "pg_dump", "-h", HOST, "-U", "postgres", "--no-owner", src,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    result = streamer(
        "restore", url, *EXEC, "-i", str(age_key.identity_file), "--",
        "psql", "-h", HOST, "-U", "postgres", "-d", dst, "-v", "ON_ERROR_STOP=1", "-q",
        "--single-transaction",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    query = "SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY id)) FROM orders t"
    assert psql(query, dst) == psql(query, src)


# -- backup failures -----------------------------------------------------------------------------


def test_backup_non_zero_exit(bucket: str, s3_client) -> None:  # type: ignore[no-untyped-def]
    script = f"head -c {20 * MiB} /dev/zero; echo 'dump failed' >&2; exit 3"
    result = streamer("backup", f"s3://{bucket}/x", *EXEC, "--", "sh", "-c", script)
    assert result.exit_code == 3
    assert "dump failed" in result.stderr
    assert_nothing_stored(s3_client, bucket)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"omit_status": True}, id="missing-status"),
        pytest.param({"drop_after": 20 * MiB}, id="dropped-connection"),
    ],
)
def test_backup_stream_faults(
    bucket: str,
    s3_client,  # type: ignore[no-untyped-def]
    apiserver: ApiServer,
    fault: dict[str, object],
) -> None:
    for name, value in fault.items():
        setattr(apiserver.behaviour, name, value)
    result = streamer(
        "backup", f"s3://{bucket}/x", *EXEC, "--compression", "none", "--", *zeros(40 * MiB)
    )
    assert result.exit_code != 0
    assert f"pod {NAMESPACE}/{POD} container main ended without the command's exit status" in (
        result.stderr
    )
    assert_nothing_stored(s3_client, bucket)


@pytest.mark.parametrize(
    ("pod", "container", "message"),
    [
        pytest.param("gone", "main", 'pods "gone" not found', id="missing-pod"),
        pytest.param(POD, "mysql", "has no container 'mysql'", id="missing-container"),
        pytest.param(POD, "finished", "container 'finished'", id="terminated-container"),
    ],
)
def test_backup_pod_problems(
    bucket: str,
    s3_client,  # type: ignore[no-untyped-def]
    apiserver: ApiServer,
    pod: str,
    container: str,
    message: str,
) -> None:
    result = streamer(
        "backup", f"s3://{bucket}/x", "--pod", pod, "--container", container,
        "--namespace", NAMESPACE, "--", "true",
    )  # fmt: skip
    assert result.exit_code != 0
    assert message in result.stderr
    assert apiserver.execs == []
    assert_nothing_stored(s3_client, bucket)


def test_backup_deadline(bucket: str, s3_client) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = streamer(
        "backup", f"s3://{bucket}/x", *EXEC, "--deadline", "1", "--",
        "sh", "-c", f"head -c {12 * MiB} /dev/urandom; sleep 30",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "deadline of 1s" in result.stderr
    assert time.monotonic() - started < 10
    assert_nothing_stored(s3_client, bucket)


def test_pod_name_from_the_downward_api(
    bucket: str,
    s3_client,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", POD)
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    result = streamer("backup", f"s3://{bucket}/x", "--container", "db", "--", "echo", "hi")
    assert result.exit_code == 0, result.stderr
    assert list_keys(s3_client, bucket) == ["x"]


# -- restore -------------------------------------------------------------------------------------


def test_restore_exit_code_is_the_commands(stored: str, age_key: AgeKey) -> None:
    """A restore command that reads part of its input and fails: its exit code is ours."""
    script = "head -c 1000000 >/dev/null; echo 'ERROR 1064 at line 1' >&2; exit 7"
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--", "sh", "-c", script
    )
    assert result.exit_code == 7
    assert "ERROR 1064 at line 1" in result.stderr


def test_restore_refuses_a_v4_only_server(
    stored: str, age_key: AgeKey, apiserver: ApiServer, tmp_path: Path
) -> None:
    apiserver.behaviour.protocols = (V4,)
    apiserver.behaviour.version = (1, 29)
    marker = tmp_path / "ran"
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--",
        "sh", "-c", f"touch {marker}; cat >/dev/null",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "Kubernetes 1.30 or newer" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"omit_status": True}, id="missing-status"),
        pytest.param({"drop_after": 8 * MiB}, id="dropped-connection"),
    ],
)
def test_restore_stream_faults(
    stored: str, age_key: AgeKey, apiserver: ApiServer, fault: dict[str, object]
) -> None:
    for name, value in fault.items():
        setattr(apiserver.behaviour, name, value)
    result = streamer(
        "restore",
        stored,
        *EXEC,
        "-i",
        str(age_key.identity_file),
        "--",
        "sh",
        "-c",
        "cat >/dev/null",
    )
    assert result.exit_code != 0
    assert "ended without the command's exit status" in result.stderr


def test_restore_deadline(stored: str, age_key: AgeKey) -> None:
    started = time.monotonic()
    result = streamer(
        "restore", stored, *EXEC, "-i", str(age_key.identity_file), "--deadline", "1", "--",
        "sleep", "30",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "deadline of 1s" in result.stderr
    assert time.monotonic() - started < 10
