"""The S3 storage against a real S3 server (moto, server mode, on loopback)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import boto3
import moto.settings
import pytest

from streamer.errors import ConfigError, ObjectNotFound, StorageError
from streamer.storage import open_storage
from streamer.storage.s3 import MIN_PART_SIZE, S3Storage, make_client
from tests.conftest import FAKE_SECRET, list_keys, pending_uploads
from tests.storage.conftest import (
    PART,
    WINDOW,
    payload,
    read_all,
    settings,
    write_in_chunks,
    write_then_fail,
)


def _growing(number: int) -> int:
    """Two minimum parts, then twice the size: growth without megabytes of test data."""
    return MIN_PART_SIZE if number <= 2 else 2 * MIN_PART_SIZE


SIZES = [
    pytest.param(0, 1, id="empty"),
    pytest.param(1, 1, id="one-byte"),
    pytest.param(PART - 1, 1, id="one-part-minus-one"),
    pytest.param(PART, 1, id="exactly-one-part"),
    pytest.param(PART + 1, 2, id="one-part-plus-one"),
    pytest.param(4 * PART + 3, 4, id="several-parts-with-growth"),
]


def _parts_in(client: Any, bucket: str, key: str) -> int:
    etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    return int(etag.partition("-")[2] or 1)


@pytest.mark.parametrize(
    "ranges", [pytest.param(1, id="streamed"), pytest.param(WINDOW, id="parallel-ranges")]
)
@pytest.mark.parametrize(("size", "parts"), SIZES)
def test_round_trip(
    s3_client: Any, bucket: str, s3_env: str, size: int, parts: int, ranges: int
) -> None:
    storage = S3Storage(bucket, settings(ranges_in_flight=ranges), part_sizes=_growing)
    data = payload(size)
    with storage.open_writer("dir/object") as writer:
        write_in_chunks(writer, data)
    assert list_keys(s3_client, bucket) == ["dir/object"]
    assert pending_uploads(s3_client, bucket) == []
    if size:
        assert _parts_in(s3_client, bucket, "dir/object") == parts
    reader = storage.open_reader("dir/object")
    assert reader.size == size
    assert read_all(reader) == data
    assert reader.readinto(bytearray(10)) == 0


def test_url_and_open_storage(s3_env: str) -> None:
    storage, key = open_storage("s3://some-bucket/backups/a%20b#1?.sql")
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, key) == ("some-bucket", "backups/a%20b#1?.sql")
    assert storage.url("x/y") == "s3://some-bucket/x/y"


def test_a_parallel_ranged_read_is_byte_identical(s3_client: Any, bucket: str, s3_env: str) -> None:
    data = payload(5 * PART + 12345, seed=7)
    s3_client.put_object(Bucket=bucket, Key="big", Body=data)
    configured = settings(ranges_in_flight=WINDOW)
    calls = _Concurrency(make_client(configured), "get_object")
    storage = S3Storage(bucket, configured, client=calls)
    reader = storage.open_reader("big")
    assert reader.size == len(data)
    assert read_all(reader, chunk=333_333) == data
    assert len(calls.ranges) == 6  # five full ranges and the rest
    assert calls.ranges == sorted(calls.ranges)
    assert calls.max_in_flight <= WINDOW


def test_reading_through_buffered_io(s3_client: Any, bucket: str, storage: S3Storage) -> None:
    import io

    data = payload(PART + 17, seed=3)
    s3_client.put_object(Bucket=bucket, Key="k", Body=data)
    with io.BufferedReader(storage.open_reader("k"), buffer_size=65536) as stream:
        assert stream.read() == data


def test_abort_on_exception_leaves_no_object_and_no_upload(
    s3_client: Any, bucket: str, storage: S3Storage
) -> None:
    with pytest.raises(RuntimeError, match="the command failed"):
        write_then_fail(storage, "k", payload(2 * PART + 5))
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_closing_without_commit_aborts(s3_client: Any, bucket: str, storage: S3Storage) -> None:
    writer = storage.open_writer("k")
    writer.write(b"partial")
    writer.close()
    writer.abort()  # idempotent
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


@pytest.mark.parametrize(
    "size", [pytest.param(0, id="empty"), pytest.param(PART + 1, id="one-part-plus-one")]
)
def test_a_failed_write_never_replaces_an_existing_object(
    s3_client: Any, bucket: str, storage: S3Storage, size: int
) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"the good backup")
    with pytest.raises(RuntimeError):
        write_then_fail(storage, "k", payload(size))
    body = s3_client.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert body == b"the good backup"
    assert pending_uploads(s3_client, bucket) == []


def test_a_committed_write_replaces_an_existing_object(
    s3_client: Any, bucket: str, storage: S3Storage
) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"old")
    with storage.open_writer("k") as writer:
        writer.write(b"new")
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"new"


def test_writing_after_commit_is_an_error(storage: S3Storage) -> None:
    writer = storage.open_writer("k")
    writer.commit()
    writer.commit()  # idempotent
    with pytest.raises(StorageError, match="after it was committed"):
        writer.write(b"x")


def test_a_missing_bucket_fails_when_the_writer_opens(s3_env: str) -> None:
    storage = S3Storage("no-such-bucket-here", settings())
    with pytest.raises(StorageError, match="the bucket 'no-such-bucket-here' does not exist"):
        storage.open_writer("k")


@pytest.mark.parametrize(
    "key", [pytest.param("missing", id="top-level"), pytest.param("a/b/missing.sql", id="nested")]
)
def test_a_missing_object_is_object_not_found_naming_the_url(storage: S3Storage, key: str) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        storage.open_reader(key)
    assert f"s3://{storage.bucket}/{key}" in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"part_size": MIN_PART_SIZE - 1}, id="part-size-too-small"),
        pytest.param({"parts_in_flight": 0}, id="no-parts-in-flight"),
        pytest.param({"max_attempts": 0}, id="no-attempts"),
        pytest.param({"ranges_in_flight": 0}, id="no-ranges-in-flight"),
        pytest.param({"endpoint_url": "not a url"}, id="endpoint-not-a-url"),
        pytest.param({"endpoint_url": "http://[::1"}, id="endpoint-unparsable"),
    ],
)
def test_invalid_settings_are_config_errors(s3_env: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        S3Storage("bucket", settings(**overrides))


# -- credentials ---------------------------------------------------------------------------------


@pytest.fixture
def iam_key(s3_env: str) -> tuple[str, str]:
    """A real access key of the moto account, created before authentication is enforced."""
    iam = boto3.client("iam", endpoint_url=s3_env, region_name="us-east-1")
    user = f"streamer-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    created = iam.create_access_key(UserName=user)["AccessKey"]
    return created["AccessKeyId"], created["SecretAccessKey"]


@pytest.fixture
def enforce_auth(monkeypatch: pytest.MonkeyPatch, bucket: str) -> str:
    """Make the (in-process) moto server check signatures, as S3 does; returns the bucket."""
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return bucket


@pytest.mark.parametrize(
    ("use_real_key_id", "code"),
    [
        pytest.param(False, "InvalidAccessKeyId", id="unknown-access-key"),
        pytest.param(True, "SignatureDoesNotMatch", id="wrong-secret"),
    ],
)
@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s: s.open_writer("k"), id="open_writer"),
        pytest.param(lambda s: s.open_reader("k"), id="open_reader"),
    ],
)
def test_wrong_credentials_say_which_and_never_show_the_secret(
    monkeypatch: pytest.MonkeyPatch,
    iam_key: tuple[str, str],
    enforce_auth: str,
    use_real_key_id: bool,
    code: str,
    operation: Any,
) -> None:
    if use_real_key_id:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_key[0])
    storage = S3Storage(enforce_auth, settings())  # the secret is FAKE_SECRET, from s3_env
    with pytest.raises(StorageError) as caught:
        operation(storage)
    message = str(caught.value)
    assert f"S3 rejected the credentials ({code})" in message
    assert "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message
    assert FAKE_SECRET not in message
    assert FAKE_SECRET not in repr(caught.value.__cause__)


class _Concurrency:
    """Wraps a client, counting concurrent calls of one method and recording their ranges."""

    def __init__(self, client: Any, method: str) -> None:
        self._client = client
        self._method = method
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.ranges: list[int] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != self._method:
            return attribute

        def counted(**kwargs: Any) -> Any:
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if "Range" in kwargs:
                    self.ranges.append(int(kwargs["Range"].split("=")[1].split("-")[0]))
            try:
                response = attribute(**kwargs)
                response["Body"] = _Eager(response["Body"].read())
                return response
            finally:
                with self._lock:
                    self.in_flight -= 1

        return counted


class _Eager:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


def test_the_client_follows_the_settings_and_the_environment(s3_env: str, bucket: str) -> None:
    from_env = S3Storage(bucket, settings())
    assert from_env.client.meta.endpoint_url == s3_env  # AWS_ENDPOINT_URL_S3
    assert from_env.client.meta.region_name == "us-east-1"  # AWS_REGION
    explicit = S3Storage(
        bucket,
        settings(
            endpoint_url=s3_env + "/", region="eu-west-3", path_style=True, parts_in_flight=12
        ),
    )
    config = explicit.client.meta.config
    assert explicit.client.meta.region_name == "eu-west-3"
    assert config.s3["addressing_style"] == "path"
    assert config.max_pool_connections >= 12
    with explicit.open_writer("k") as writer:
        writer.write(b"path-style")
    assert read_all(explicit.open_reader("k")) == b"path-style"
