"""Real faults on the wire between the storage and S3: resets, cut responses, 5xx, throttling.

Transient faults are retried and the result is byte-identical; faults that persist beyond the
attempts fail the operation with a message naming it, abort the upload and leave no object.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from streamer.errors import ObjectNotFound, StorageError, StreamerError
from streamer.storage.s3 import S3Storage
from tests.conftest import FAKE_SECRET, free_port, list_keys, pending_uploads
from tests.faultproxy import FOREVER, FaultProxy
from tests.storage.conftest import (
    ATTEMPTS,
    PART,
    payload,
    read_all,
    settings,
    write_in_chunks,
    write_then_fail,
)

UPLOAD_PART = r"^PUT .*partNumber="
CREATE = r"^POST .*\?uploads"
COMPLETE = r"^POST .*uploadId="
RANGED_GET = r"^GET "
ABORT = r"^DELETE .*uploadId="

TRANSIENT_UPLOAD_FAULTS = [
    pytest.param(lambda p: p.fail(2, status=503, code="SlowDown", match=UPLOAD_PART), id="503-slowdown"),
    pytest.param(lambda p: p.fail(2, status=500, code="InternalError", match=UPLOAD_PART), id="500-internal"),
    pytest.param(lambda p: p.reset(2, after_bytes=256 * 1024, match=UPLOAD_PART), id="reset-mid-part"),
    pytest.param(lambda p: p.reset(1, after_bytes=0, match=UPLOAD_PART), id="reset-before-body"),
    pytest.param(lambda p: p.reset(1, direction="response", match=UPLOAD_PART), id="reset-before-response"),
    pytest.param(lambda p: p.fail(1, status=503, code="SlowDown", match=CREATE), id="create-throttled"),
    pytest.param(lambda p: p.reset(1, match=CREATE), id="create-reset"),
    pytest.param(lambda p: p.reset(2, direction="response", match=CREATE), id="create-response-lost"),
    pytest.param(lambda p: p.fail(2, status=500, code="InternalError", match=COMPLETE), id="complete-500"),
    pytest.param(lambda p: p.reset(1, direction="response", match=COMPLETE), id="complete-response-lost"),
]  # fmt: skip


@pytest.mark.parametrize("inject", TRANSIENT_UPLOAD_FAULTS)
def test_transient_upload_faults_are_retried(
    s3_client: Any, bucket: str, proxy: FaultProxy, faulty_storage: S3Storage, inject: Any
) -> None:
    inject(proxy)
    data = payload(2 * PART + 99, seed=1)
    with faulty_storage.open_writer("k") as writer:
        write_in_chunks(writer, data)
    assert proxy.injected >= 1
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == data
    assert pending_uploads(s3_client, bucket) == []


PERSISTENT_UPLOAD_FAULTS = [
    pytest.param(lambda p: p.fail(FOREVER, status=503, code="SlowDown", match=UPLOAD_PART), r"upload_part \d", "SlowDown", id="503-slowdown"),
    pytest.param(lambda p: p.fail(FOREVER, status=500, code="InternalError", match=UPLOAD_PART), r"upload_part \d", "InternalError", id="500-internal"),
    pytest.param(lambda p: p.reset(FOREVER, after_bytes=256 * 1024, match=UPLOAD_PART), r"upload_part \d", "Connection", id="reset-mid-part"),
    pytest.param(lambda p: p.fail(FOREVER, status=500, code="InternalError", match=COMPLETE), "complete_multipart_upload", "InternalError", id="complete-500"),
]  # fmt: skip


@pytest.mark.parametrize(("inject", "operation", "cause"), PERSISTENT_UPLOAD_FAULTS)
def test_persistent_upload_faults_fail_abort_and_leave_no_object(
    s3_client: Any,
    bucket: str,
    proxy: FaultProxy,
    faulty_storage: S3Storage,
    inject: Any,
    operation: str,
    cause: str,
) -> None:
    inject(proxy)
    data = payload(3 * PART + 1, seed=2)
    with pytest.raises(StorageError) as caught, faulty_storage.open_writer("dir/k") as writer:
        write_in_chunks(writer, data)
    message = str(caught.value)
    # parts upload in parallel: whichever fails first is named
    expected = rf"^{operation} of s3://{bucket}/dir/k failed after {ATTEMPTS} attempts: "
    assert re.search(expected, message), message
    assert cause in message
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []
    assert proxy.requests(r"^DELETE .*uploadId="), "the upload was not aborted"


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda p: p.reset(1, direction="response", match=ABORT), id="response-lost"),
        pytest.param(lambda p: p.fail(2, status=503, code="SlowDown", match=ABORT), id="throttled"),
    ],
)
def test_an_abort_is_retried_and_the_original_error_kept(
    s3_client: Any, bucket: str, proxy: FaultProxy, faulty_storage: S3Storage, inject: Any
) -> None:
    inject(proxy)
    with pytest.raises(RuntimeError, match="the command failed"):
        write_then_fail(faulty_storage, "k", payload(PART + 1))
    assert proxy.injected >= 1
    assert list_keys(s3_client, bucket) == []
    assert pending_uploads(s3_client, bucket) == []


def test_a_failed_upload_never_replaces_the_existing_object(
    s3_client: Any, bucket: str, proxy: FaultProxy, faulty_storage: S3Storage
) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"the good backup")
    proxy.fail(FOREVER, status=503, code="SlowDown", match=UPLOAD_PART)
    with pytest.raises(StorageError, match="upload_part"), faulty_storage.open_writer("k") as w:
        write_in_chunks(w, payload(2 * PART))
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"the good backup"
    assert pending_uploads(s3_client, bucket) == []


TRANSIENT_READ_FAULTS = [
    pytest.param(lambda p: p.reset(2, after_bytes=1024 * 1024, direction="response", match=RANGED_GET), id="cut-mid-range"),
    pytest.param(lambda p: p.reset(1, direction="request", match=RANGED_GET), id="reset-range-request"),
    pytest.param(lambda p: p.fail(2, status=503, code="SlowDown", match=RANGED_GET), id="503-slowdown"),
    # The first request of either reader: the streamed reader's GET, the ranged reader's HEAD.
    pytest.param(lambda p: p.fail(1, status=500, code="InternalError", match=r"^(GET|HEAD) "), id="first-request-500"),
]  # fmt: skip


READERS = [
    pytest.param(1, id="streamed"),
    pytest.param(2, id="parallel-ranges"),
]


@pytest.mark.parametrize("ranges", READERS)
@pytest.mark.parametrize("inject", TRANSIENT_READ_FAULTS)
def test_transient_read_faults_are_retried(
    s3_client: Any, bucket: str, proxy: FaultProxy, inject: Any, ranges: int
) -> None:
    data = payload(3 * PART + 7, seed=3)
    s3_client.put_object(Bucket=bucket, Key="k", Body=data)
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url, ranges_in_flight=ranges))
    inject(proxy)
    assert read_all(storage.open_reader("k")) == data
    assert proxy.injected >= 1


@pytest.mark.parametrize(
    ("ranges", "request_name"),
    [
        # The streamed reader's first GET is the one that learns the size: it has no range.
        pytest.param(1, "get_object", id="streamed"),
        pytest.param(2, r"get_object bytes=0-\d+", id="parallel-ranges"),
    ],
)
def test_a_read_cut_short_every_time_fails_naming_the_request(
    s3_client: Any, bucket: str, proxy: FaultProxy, ranges: int, request_name: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=payload(2 * PART, seed=4))
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url, ranges_in_flight=ranges))
    proxy.reset(FOREVER, after_bytes=100, direction="response", match=RANGED_GET)
    with pytest.raises(StorageError) as caught:
        read_all(storage.open_reader("k"))
    expected = rf"^{request_name} of s3://{bucket}/k failed after {ATTEMPTS} attempts"
    assert re.search(expected, str(caught.value)), str(caught.value)


def test_a_streamed_read_sends_one_request_before_the_first_byte(
    s3_client: Any, bucket: str, proxy: FaultProxy
) -> None:
    """No HEAD before the GET: the GET's own headers give the size and the ETag."""
    data = payload(2 * PART + 3, seed=6)
    s3_client.put_object(Bucket=bucket, Key="k", Body=data)
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url))
    with storage.open_reader("k") as reader:
        assert reader.size == len(data)
        assert reader.read(1) == data[:1]
        assert [line.split()[0] for line in proxy.requests()] == ["GET"]
        assert reader.read() == data[1:]
    assert [line.split()[0] for line in proxy.requests()] == ["GET"]


@pytest.mark.parametrize("ranges", READERS)
def test_an_object_replaced_while_reading_is_an_error(
    s3_client: Any, bucket: str, proxy: FaultProxy, ranges: int
) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=payload(5 * PART, seed=5))
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url, ranges_in_flight=ranges))
    reader = storage.open_reader("k")
    reader.readinto(bytearray(10))
    s3_client.put_object(Bucket=bucket, Key="k", Body=payload(3 * PART, seed=6))
    proxy.cut_connections()  # a streamed read notices when it resumes
    with pytest.raises(StorageError, match="replaced while it was being read"):
        read_all(reader)


# -- nothing but StreamerError leaves the storage API -----------------------------------------


def _upload(storage: S3Storage) -> None:
    with storage.open_writer("k") as writer:
        writer.write(payload(PART + 1))


def _download(storage: S3Storage) -> None:
    read_all(storage.open_reader("k"))


def _download_ranges(storage: S3Storage) -> None:
    ranged = S3Storage(
        storage.bucket, settings(**{**vars(storage.settings), "ranges_in_flight": 2})
    )
    read_all(ranged.open_reader("k"))


OPERATIONS = [
    pytest.param(_upload, id="upload"),
    pytest.param(_download, id="download"),
    pytest.param(_download_ranges, id="download-ranges"),
]
FAULTS = [
    pytest.param(lambda p: p.fail(FOREVER, status=503, code="SlowDown"), id="always-503"),
    pytest.param(lambda p: p.fail(FOREVER, status=403, code="AccessDenied"), id="always-403"),
    pytest.param(lambda p: p.fail(FOREVER, status=400, code="InvalidRequest"), id="always-400"),
    pytest.param(lambda p: p.reset(FOREVER), id="always-reset"),
    # every response lost: S3 did the work, so uploads may remain (nothing can abort them)
    pytest.param(lambda p: p.reset(FOREVER, direction="response", after_bytes=10), id="always-cut"),
    pytest.param(
        lambda p: p.fail(FOREVER, status=503, code="SlowDown", match=r"^(PUT|GET|HEAD) "),
        id="data-requests-503",
    ),
]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("inject", FAULTS)
def test_no_botocore_exception_leaves_the_storage_api(
    s3_client: Any,
    bucket: str,
    proxy: FaultProxy,
    faulty_storage: S3Storage,
    operation: Any,
    inject: Any,
    request: pytest.FixtureRequest,
) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=payload(PART + 1))
    inject(proxy)
    with pytest.raises(StreamerError) as caught:
        operation(faulty_storage)
    _assert_clean(caught.value)
    if "always-cut" not in request.node.name:
        assert pending_uploads(s3_client, bucket) == []


def test_a_forbidden_bucket_says_so(proxy: FaultProxy, faulty_storage: S3Storage) -> None:
    proxy.fail(FOREVER, status=403, code="AccessDenied")
    with pytest.raises(StorageError) as caught:
        faulty_storage.open_writer("k")
    message = str(caught.value)
    assert f"the bucket '{faulty_storage.bucket}' does not exist, or is forbidden" in message
    assert "AccessDenied" in message


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_unreachable_endpoint_names_it(s3_env: str, operation: Any) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage = S3Storage("bucket", settings(endpoint_url=endpoint))
    with pytest.raises(StorageError) as caught:
        operation(storage)
    assert f"cannot connect to the S3 endpoint {endpoint}" in str(caught.value)
    assert "AWS_ENDPOINT_URL_S3" in str(caught.value)
    _assert_clean(caught.value)


def _assert_clean(error: BaseException) -> None:
    assert isinstance(error, StreamerError)
    assert not isinstance(
        error, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError
    )
    assert FAKE_SECRET not in str(error)
    if isinstance(error, ObjectNotFound):
        assert "s3://" in str(error)


# -- secrets from outside the environment --------------------------------------------------------

FILE_SECRET = "fIlE-sEcReT-nOtInEnV-7c2e91"
FILE_TOKEN = "fIlE-tOkEn-nOtInEnV-3b8d05"


@pytest.fixture
def file_credentials(s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials from a shared credentials file only: no secret in the environment."""
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\n"
        "aws_access_key_id = AKIAFILEACCESSKEY001\n"
        f"aws_secret_access_key = {FILE_SECRET}\n"
        f"aws_session_token = {FILE_TOKEN}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))


@pytest.mark.parametrize(
    "secret", [pytest.param(FILE_SECRET, id="secret-key"), pytest.param(FILE_TOKEN, id="token")]
)
def test_secrets_the_client_signs_with_never_reach_messages_or_logs(
    bucket: str,
    proxy: FaultProxy,
    file_credentials: None,
    caplog: pytest.LogCaptureFixture,
    secret: str,
) -> None:
    # A server (or a proxy) that echoes the credentials back in its error messages.
    proxy.fail(1, status=503, code="SlowDown", message=f"slow down, {secret}", match=CREATE)
    proxy.fail(FOREVER, status=400, code="InvalidRequest", message=f"not {secret}", match=CREATE)
    caplog.set_level(logging.INFO, logger="streamer.storage.s3")
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url))
    with pytest.raises(StorageError) as caught:
        storage.open_writer("k")
    assert proxy.injected == 2
    assert str(caught.value).endswith("InvalidRequest (HTTP 400): not ***")
    assert "slow down, ***" in caplog.text
    assert secret not in caplog.text
