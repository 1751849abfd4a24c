"""The retry policy on the wire: which failures are retried, how often, and cancelling a wait.

Each case puts a real failure between the storage and the loopback S3 server (the fault proxy)
on create_multipart_upload, whose error responses carry an S3 error document, and counts the
requests that reached the proxy.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import pytest

from streamer.errors import StorageError
from streamer.storage.s3 import S3Storage
from tests.conftest import pending_uploads
from tests.faultproxy import FOREVER, FaultProxy
from tests.storage.conftest import ATTEMPTS, PART, payload, settings

CREATE = r"^POST .*\?uploads"
UPLOAD_PART = r"^PUT .*partNumber="

RETRIED = [
    pytest.param(lambda p: p.fail(1, status=503, code="SlowDown", match=CREATE), id="throttled-503-slowdown"),
    pytest.param(lambda p: p.fail(1, status=400, code="Throttling", match=CREATE), id="throttled-400-code"),
    pytest.param(lambda p: p.fail(1, status=429, code="TooManyRequests", match=CREATE), id="throttled-429"),
    pytest.param(lambda p: p.fail(1, status=500, code="InternalError", match=CREATE), id="500-internal"),
    pytest.param(lambda p: p.fail(1, status=502, code="BadGateway", match=CREATE), id="502"),
    pytest.param(lambda p: p.fail(1, status=504, code="GatewayTimeout", match=CREATE), id="504"),
    pytest.param(lambda p: p.fail(1, status=400, code="RequestTimeout", match=CREATE), id="400-request-timeout"),
    pytest.param(lambda p: p.reset(1, match=CREATE), id="connection-reset"),
    pytest.param(lambda p: p.reset(1, direction="response", match=CREATE), id="response-lost"),
]  # fmt: skip


@pytest.mark.parametrize("inject", RETRIED)
def test_transient_failures_are_retried(
    s3_client: Any, bucket: str, proxy: FaultProxy, faulty_storage: S3Storage, inject: Any
) -> None:
    inject(proxy)
    writer = faulty_storage.open_writer("k")
    writer.abort()
    assert len(proxy.requests(CREATE)) == 2
    assert proxy.injected == 1
    assert pending_uploads(s3_client, bucket) == []


NOT_RETRIED = [
    pytest.param(403, "AccessDenied", "does not exist, or is forbidden", id="403-access-denied"),
    pytest.param(404, "NoSuchBucket", "does not exist", id="404-no-such-bucket"),
    pytest.param(400, "InvalidRequest", "InvalidRequest (HTTP 400)", id="400-invalid-request"),
    pytest.param(501, "NotImplemented", "NotImplemented (HTTP 501)", id="501-not-implemented"),
    pytest.param(403, "InvalidAccessKeyId", "S3 rejected the credentials", id="403-bad-key"),
]


@pytest.mark.parametrize(("status", "code", "message"), NOT_RETRIED)
def test_permanent_failures_fail_at_once(
    proxy: FaultProxy, faulty_storage: S3Storage, status: int, code: str, message: str
) -> None:
    proxy.fail(FOREVER, status=status, code=code, match=CREATE)
    with pytest.raises(StorageError, match=re.escape(message)) as caught:
        faulty_storage.open_writer("k")
    assert len(proxy.requests(CREATE)) == 1
    assert "attempts" not in str(caught.value)


def test_retries_stop_after_max_attempts(proxy: FaultProxy, faulty_storage: S3Storage) -> None:
    proxy.fail(FOREVER, status=503, code="SlowDown", match=CREATE)
    with pytest.raises(StorageError) as caught:
        faulty_storage.open_writer("k")
    assert len(proxy.requests(CREATE)) == ATTEMPTS
    assert str(caught.value).startswith(
        f"create_multipart_upload of s3://{faulty_storage.bucket}/k failed after {ATTEMPTS} "
        "attempts: SlowDown (HTTP 503)"
    )


class _Retries(logging.Handler):
    """Counts the retries the storage logs; ``scheduled`` is set at the first one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.scheduled = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.count += 1
            self.scheduled.set()


def test_abort_cancels_a_part_waiting_to_retry(
    s3_client: Any,
    bucket: str,
    proxy: FaultProxy,
    s3_env: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Waits of up to 20 s (the cap): the abort comes while the part waits to retry.
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url, retry_delay=20.0))
    proxy.fail(FOREVER, status=503, code="SlowDown", match=UPLOAD_PART)
    caplog.set_level(logging.INFO, logger="streamer.storage.s3")
    retries = _Retries()
    logging.getLogger("streamer.storage.s3").addHandler(retries)
    try:
        writer = storage.open_writer("k")
        writer.write(payload(PART + 1))  # one full part goes to the pool
        assert retries.scheduled.wait(30), "the part was never retried"
        writer.abort()
    finally:
        logging.getLogger("streamer.storage.s3").removeHandler(retries)
    # Every attempt but the last would be followed by a wait; the abort ended the last wait,
    # so no attempt followed it.
    assert len(proxy.requests(UPLOAD_PART)) == retries.count < ATTEMPTS
    assert pending_uploads(s3_client, bucket) == []
