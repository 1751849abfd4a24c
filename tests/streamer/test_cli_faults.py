"""The streamer command under real faults on the wire between it and S3.

A loopback proxy resets connections mid-body and answers with S3 error documents; the checks
are made through a direct client, so they see what the bucket really holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streamer.cli import main
from tests.conftest import FAKE_SECRET, AgeKey, list_keys, pending_uploads
from tests.faultproxy import FOREVER, FaultProxy

#: Large enough for several 5 MiB parts and several ranged reads.
DATA = b"".join(b"INSERT INTO t VALUES (%d,'%032x');\n" % (i, i * 7919) for i in range(400_000))
PARTS = "partNumber="


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "dump.sql"
    path.write_bytes(DATA)
    return path


def streamer(proxy: FaultProxy, *args: str) -> Result:
    result = CliRunner().invoke(
        main, [args[0], args[1], "--endpoint-url", proxy.url, *args[2:]], catch_exceptions=False
    )
    assert FAKE_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def backup(proxy: FaultProxy, bucket: str, dump: Path, age_key: AgeKey) -> Result:
    return streamer(
        proxy, "backup", f"s3://{bucket}/db.sql", "--compression", "none", "--part-size", "5",
        "-r", age_key.recipient, "--", "cat", str(dump),
    )  # fmt: skip


def restore(proxy: FaultProxy, bucket: str, out: Path, age_key: AgeKey) -> Result:
    return streamer(
        proxy, "restore", f"s3://{bucket}/db.sql", "-i", str(age_key.identity_file), "--part-size", "5",
        "--", "sh", "-c", f"cat > {out}",
    )  # fmt: skip


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            lambda p: p.reset(times=2, after_bytes=1 << 20, match=PARTS), id="resets-mid-part"
        ),
        pytest.param(
            lambda p: p.fail(times=2, status=503, code="SlowDown", match=PARTS), id="slow-down"
        ),
        pytest.param(
            lambda p: p.fail(times=1, status=500, code="InternalError", match=PARTS),
            id="internal-error",
        ),
        pytest.param(
            lambda p: p.reset(times=1, after_bytes=200, direction="response", match=PARTS),
            id="response-lost",
        ),
    ],
)
def test_transient_faults_are_retried(
    proxy: FaultProxy, bucket: str, s3_client, dump: Path, tmp_path: Path, age_key: AgeKey, fault
) -> None:
    fault(proxy)
    result = backup(proxy, bucket, dump, age_key)
    assert result.exit_code == 0, result.stderr
    assert proxy.injected >= 1
    assert list_keys(s3_client, bucket) == ["db.sql"]
    out = tmp_path / "out"
    assert restore(proxy, bucket, out, age_key).exit_code == 0
    assert out.read_bytes() == DATA


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        pytest.param(
            lambda p: p.reset(times=FOREVER, after_bytes=1 << 20, match=PARTS),
            "upload_part",
            id="resets",
        ),
        pytest.param(
            lambda p: p.fail(times=FOREVER, status=500, code="InternalError", match=PARTS),
            "upload_part",
            id="internal-errors",
        ),
        pytest.param(
            lambda p: p.fail(times=FOREVER, status=403, code="InvalidAccessKeyId", match=""),
            "credentials",
            id="bad-credentials",
        ),
        pytest.param(
            lambda p: p.fail(times=FOREVER, status=403, code="AccessDenied", match=PARTS),
            "upload_part",
            id="access-denied-mid-upload",
        ),
    ],
)
def test_persistent_faults_fail_and_store_nothing(
    proxy: FaultProxy, bucket: str, s3_client, dump: Path, age_key: AgeKey, fault, message: str
) -> None:
    fault(proxy)
    result = backup(proxy, bucket, dump, age_key)
    assert result.exit_code != 0
    assert message in result.stderr
    proxy.clear()
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_restore_survives_a_reset_read(
    proxy: FaultProxy, bucket: str, dump: Path, tmp_path: Path, age_key: AgeKey
) -> None:
    assert backup(proxy, bucket, dump, age_key).exit_code == 0
    proxy.reset(times=2, after_bytes=1 << 20, direction="response", match="^GET ")
    out = tmp_path / "out"
    result = restore(proxy, bucket, out, age_key)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == DATA


def test_restore_fails_when_reads_keep_failing(
    proxy: FaultProxy, bucket: str, dump: Path, tmp_path: Path, age_key: AgeKey
) -> None:
    assert backup(proxy, bucket, dump, age_key).exit_code == 0
    # Resets that still deliver bytes are resumed; a server that delivers none must fail.
    proxy.fail(times=FOREVER, status=500, code="InternalError", match="^GET ")
    out = tmp_path / "out"
    result = restore(proxy, bucket, out, age_key)
    assert result.exit_code != 0
    assert "get_object" in result.stderr, result.stderr
    assert not out.exists() or out.read_bytes() != DATA
