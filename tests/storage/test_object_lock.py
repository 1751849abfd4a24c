"""S3 Object Lock on a real S3 server (moto over HTTP): the lock travels with the write, and
is read back and verified once the object is stored.

What moto 5.2 does, which these tests rely on and say so: it honours the lock on PutObject and
PutObjectRetention/PutObjectLegalHold, refuses to delete a locked version, reports the lock in
a HEAD's ``x-amz-object-lock-*`` headers, and ignores the lock on CreateMultipartUpload: the
case of a server that drops it, where the writer must apply the lock to the stored version.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from streamer.errors import ConfigError, StorageError
from streamer.storage.s3 import S3Storage
from streamer.storage.settings import ObjectLock
from tests.conftest import list_keys, pending_uploads
from tests.faultproxy import FOREVER, FaultProxy
from tests.storage.conftest import PART, payload, settings, write_in_chunks, write_then_fail

DAY = datetime.timedelta(days=1)
RETENTION = r"^PUT .*\?retention"
LEGAL_HOLD = r"^PUT .*\?legal-hold"


class Sent:
    """Every request a client sends, as botocore hands it to the wire: operation, headers,
    body; and the URLs, in ``urls``."""

    def __init__(self, client: Any) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.urls: list[str] = []
        client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, event_name: str, **kwargs: Any) -> None:
        headers = {
            name.lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        body = request.body if isinstance(request.body, bytes | bytearray) else b""
        self.requests.append((event_name.rsplit(".", 1)[-1], headers, bytes(body)))
        self.urls.append(str(request.url))

    def operations(self) -> list[str]:
        return [operation for operation, _, _ in self.requests]

    def of(self, operation: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for op, h, b in self.requests if op == operation]


@pytest.fixture
def locked_bucket(s3_client: Any) -> str:
    name = f"locked-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _lock_of(client: Any, bucket: str, key: str) -> dict[str, Any]:
    head = client.head_object(Bucket=bucket, Key=key)
    return {k: v for k, v in head.items() if k.startswith("ObjectLock") or k == "VersionId"}


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 -- S3's checksum


def _write(storage: S3Storage, key: str, data: bytes) -> Any:
    before = datetime.datetime.now(datetime.UTC)
    with storage.open_writer(key) as writer:
        write_in_chunks(writer, data)
    after = datetime.datetime.now(datetime.UTC)
    return writer, before, after


def _assert_date(until: datetime.datetime, before: datetime.datetime, after: datetime.datetime):  # type: ignore[no-untyped-def]
    """now + 1 day, taken as the upload started, rounded up to the second."""
    assert before + DAY <= until <= after + DAY + datetime.timedelta(seconds=1)
    assert until.microsecond == 0


SIZES = [
    pytest.param(0, id="empty-stream"),
    pytest.param(1, id="one-byte"),
    pytest.param(2 * PART + 123, id="three-parts"),
]


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
@pytest.mark.parametrize("size", SIZES)
def test_the_stored_object_carries_the_lock(
    s3_client: Any, locked_bucket: str, s3_env: str, size: int, mode: str
) -> None:
    storage = S3Storage(locked_bucket, settings(object_lock=ObjectLock(mode, 1)))  # type: ignore[arg-type]
    writer, before, after = _write(storage, "db.sql", payload(size))
    found = _lock_of(s3_client, locked_bucket, "db.sql")
    assert found["ObjectLockMode"] == mode
    _assert_date(found["ObjectLockRetainUntilDate"], before, after)
    assert "ObjectLockLegalHoldStatus" not in found
    assert writer.lock is not None
    assert writer.lock.locked
    assert writer.lock.mode == mode
    assert writer.lock.retain_until == found["ObjectLockRetainUntilDate"]
    assert pending_uploads(s3_client, locked_bucket) == []


def test_a_multipart_write_carries_the_lock_and_md5s_and_moto_needs_it_applied_after(
    s3_client: Any, locked_bucket: str, s3_env: str
) -> None:
    storage = S3Storage(locked_bucket, settings(object_lock=ObjectLock("GOVERNANCE", 1)))
    sent = Sent(storage.client)
    data = payload(2 * PART + 123, seed=3)
    _, before, after = _write(storage, "db.sql", data)
    ((create, _),) = sent.of("CreateMultipartUpload")
    assert create["x-amz-object-lock-mode"] == "GOVERNANCE"
    until = datetime.datetime.fromisoformat(create["x-amz-object-lock-retain-until-date"])
    _assert_date(until, before, after)
    parts = {
        int(re.search(r"partNumber=(\d+)", url).group(1)): (headers, body)  # type: ignore[union-attr]
        for (operation, headers, body), url in zip(sent.requests, sent.urls, strict=True)
        if operation == "UploadPart"
    }
    assert sorted(parts) == [1, 2, 3]
    for headers, body in parts.values():
        assert headers["content-md5"] == _md5(body)
    assert b"".join(parts[n][1] for n in sorted(parts)) == data
    # moto ignored the lock on CreateMultipartUpload: the HEAD after completing found none,
    # and the lock was put on the stored version, then read back.
    assert sent.operations()[-4:] == [
        "CompleteMultipartUpload",
        "HeadObject",
        "PutObjectRetention",
        "HeadObject",
    ]
    version = _lock_of(s3_client, locked_bucket, "db.sql")["VersionId"]
    ((headers, body),) = sent.of("PutObjectRetention")
    assert headers["x-amz-checksum-crc32"]  # S3 requires a checksum of this body too
    assert f"<RetainUntilDate>{until.strftime('%Y-%m-%dT%H:%M:%S')}".encode() in body
    assert f"versionId={version}" in sent.urls[-2]  # on the stored version, not the key's latest
    assert _lock_of(s3_client, locked_bucket, "db.sql")["ObjectLockMode"] == "GOVERNANCE"


def test_an_empty_stream_is_locked_by_its_put_alone(
    s3_client: Any, locked_bucket: str, s3_env: str
) -> None:
    storage = S3Storage(locked_bucket, settings(object_lock=ObjectLock("COMPLIANCE", 1)))
    sent = Sent(storage.client)
    _write(storage, "empty.sql", b"")
    ((put, body),) = sent.of("PutObject")
    assert body == b""
    assert put["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert put["x-amz-object-lock-retain-until-date"]
    assert put["content-md5"] == _md5(b"")
    # The lock took with the put: nothing to apply afterwards, no moment unlocked.
    assert "PutObjectRetention" not in sent.operations()
    assert sent.operations()[-1] == "HeadObject"
    assert s3_client.list_multipart_uploads(Bucket=locked_bucket).get("Uploads", []) == []


@pytest.mark.parametrize("size", [pytest.param(0, id="empty"), pytest.param(PART + 1, id="parts")])
def test_s3_refuses_to_delete_the_locked_version(
    s3_client: Any, locked_bucket: str, s3_env: str, size: int
) -> None:
    storage = S3Storage(locked_bucket, settings(object_lock=ObjectLock("GOVERNANCE", 1)))
    _write(storage, "db.sql", payload(size))
    version = _lock_of(s3_client, locked_bucket, "db.sql")["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3_client.delete_object(Bucket=locked_bucket, Key="db.sql", VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    versions = s3_client.list_object_versions(Bucket=locked_bucket)["Versions"]
    assert [(v["Key"], v["VersionId"]) for v in versions] == [("db.sql", version)]


@pytest.mark.parametrize(
    "lock",
    [
        pytest.param(ObjectLock(legal_hold=True), id="legal-hold-alone"),
        pytest.param(ObjectLock("GOVERNANCE", 2, legal_hold=True), id="retention-and-hold"),
    ],
)
@pytest.mark.parametrize("size", [pytest.param(0, id="empty"), pytest.param(PART + 1, id="parts")])
def test_a_legal_hold_is_on_the_stored_object(
    s3_client: Any, locked_bucket: str, s3_env: str, lock: ObjectLock, size: int
) -> None:
    storage = S3Storage(locked_bucket, settings(object_lock=lock))
    writer, _, _ = _write(storage, "db.sql", payload(size))
    found = _lock_of(s3_client, locked_bucket, "db.sql")
    assert found["ObjectLockLegalHoldStatus"] == "ON"
    assert found.get("ObjectLockMode") == lock.mode
    assert writer.lock.locked
    assert writer.lock.legal_hold


def test_a_bucket_without_object_lock_fails_before_any_upload(
    s3_client: Any, bucket: str, s3_env: str
) -> None:
    storage = S3Storage(bucket, settings(object_lock=ObjectLock("GOVERNANCE", 1)))
    sent = Sent(storage.client)
    with pytest.raises(StorageError) as failed:
        storage.open_writer("db.sql")
    message = str(failed.value)
    assert f"the bucket {bucket!r} does not have Object Lock enabled" in message
    assert "--object-lock-enabled-for-bucket" in message
    assert "\n" not in message
    assert sent.operations() == ["GetObjectLockConfiguration"]
    assert pending_uploads(s3_client, bucket) == []
    storage.check()  # the bucket itself is fine
    with pytest.raises(StorageError, match="does not have Object Lock enabled"):
        storage.check_object_lock()


def test_a_missing_bucket_is_still_said_to_be_missing(s3_env: str) -> None:
    storage = S3Storage("no-such-bucket-here", settings(object_lock=ObjectLock("GOVERNANCE", 1)))
    with pytest.raises(StorageError, match="'no-such-bucket-here' does not exist"):
        storage.open_writer("k")


def test_a_failed_locked_upload_is_aborted_and_leaves_nothing(
    s3_client: Any, locked_bucket: str, s3_env: str
) -> None:
    storage = S3Storage(locked_bucket, settings(object_lock=ObjectLock("COMPLIANCE", 1)))
    with pytest.raises(RuntimeError, match="the command failed"):
        write_then_fail(storage, "db.sql", payload(2 * PART + 5))
    assert list_keys(s3_client, locked_bucket) == []
    assert s3_client.list_object_versions(Bucket=locked_bucket).get("Versions", []) == []
    assert pending_uploads(s3_client, locked_bucket) == []


# --- a lock that does not take ----------------------------------------------------------------


@pytest.fixture
def locked_through_proxy(s3_env: str, locked_bucket: str, proxy: FaultProxy) -> S3Storage:
    lock = ObjectLock("GOVERNANCE", 1, legal_hold=True)
    return S3Storage(locked_bucket, settings(endpoint_url=proxy.url, object_lock=lock))


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(
            lambda p: p.fail(FOREVER, status=403, code="AccessDenied", match=RETENTION),
            id="retention-refused",
        ),
        # A 200 with a body botocore does not read for this operation: a server that says yes
        # and ignores the lock, the case only the read-back catches.
        pytest.param(
            lambda p: p.fail(FOREVER, status=200, code="Ignored", match=RETENTION),
            id="retention-ignored",
        ),
        pytest.param(
            lambda p: p.fail(FOREVER, status=501, code="NotImplemented", match=LEGAL_HOLD),
            id="legal-hold-not-implemented",
        ),
    ],
)
@pytest.mark.parametrize("size", [pytest.param(PART + 1, id="parts")])
def test_a_lock_that_does_not_take_is_reported_and_the_object_kept(
    s3_client: Any,
    locked_bucket: str,
    proxy: FaultProxy,
    locked_through_proxy: S3Storage,
    refuse: Any,
    size: int,
) -> None:
    refuse(proxy)
    data = payload(size, seed=9)
    with locked_through_proxy.open_writer("db.sql") as writer:
        write_in_chunks(writer, data)
    assert proxy.injected >= 1
    assert writer.lock is not None
    assert not writer.lock.locked
    problem = writer.lock.problem
    assert f"s3://{locked_bucket}/db.sql (version " in problem
    assert "is stored but NOT locked" in problem
    assert "The object was kept" in problem
    # Stored, never deleted: the object is there, whole.
    assert s3_client.get_object(Bucket=locked_bucket, Key="db.sql")["Body"].read() == data
    assert proxy.requests(r"^DELETE ") == []


def test_a_lock_refused_then_granted_on_a_retry_is_locked(
    s3_client: Any, locked_bucket: str, proxy: FaultProxy, locked_through_proxy: S3Storage
) -> None:
    proxy.fail(1, status=503, code="SlowDown", match=RETENTION)
    with locked_through_proxy.open_writer("db.sql") as writer:
        write_in_chunks(writer, payload(PART + 1))
    assert proxy.injected == 1
    assert writer.lock.locked
    found = _lock_of(s3_client, locked_bucket, "db.sql")
    assert (found["ObjectLockMode"], found["ObjectLockLegalHoldStatus"]) == ("GOVERNANCE", "ON")


def test_an_unreadable_lock_is_not_taken_for_a_lock(
    s3_client: Any, locked_bucket: str, proxy: FaultProxy, locked_through_proxy: S3Storage
) -> None:
    proxy.fail(FOREVER, status=403, code="AccessDenied", match=r"^HEAD ")
    with locked_through_proxy.open_writer("db.sql") as writer:
        write_in_chunks(writer, payload(10))
    assert not writer.lock.locked
    assert "it carries unknown" in writer.lock.problem
    assert list_keys(s3_client, locked_bucket) == ["db.sql"]


# --- the request itself -----------------------------------------------------------------------


def test_an_object_lock_needs_a_mode_with_days() -> None:
    with pytest.raises(ConfigError, match="both a mode and a number of days"):
        ObjectLock("GOVERNANCE")
    with pytest.raises(ConfigError, match="at least 1"):
        ObjectLock("GOVERNANCE", 0)
    with pytest.raises(ConfigError, match="a retention, a legal hold, or both"):
        ObjectLock()


def test_the_retain_until_date_is_the_start_plus_the_days_rounded_up() -> None:
    start = datetime.datetime(2024, 3, 7, 9, 5, 2, 250_000, tzinfo=datetime.UTC)
    assert ObjectLock("COMPLIANCE", 30).retain_until(start) == datetime.datetime(
        2024, 4, 6, 9, 5, 3, tzinfo=datetime.UTC
    )
    exact = start.replace(microsecond=0)
    assert ObjectLock("COMPLIANCE", 1).retain_until(exact) == exact + DAY
    assert ObjectLock(legal_hold=True).retain_until(start) is None
