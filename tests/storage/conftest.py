"""Storage fixtures: S3 storages on the loopback server (directly or behind the fault proxy),
and an in-memory S3 client for properties that a real server cannot show (memory, window)."""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import botocore.session
import pytest

from streamer.storage import S3Settings
from streamer.storage.s3 import MIN_PART_SIZE, S3Storage
from tests.faultproxy import FaultProxy

PART = MIN_PART_SIZE
#: Small windows and quick retries keep the tests fast; the behaviour is the same.
WINDOW = 2
ATTEMPTS = 3


def settings(**overrides: Any) -> S3Settings:
    values: dict[str, Any] = {
        "part_size": PART,
        "parts_in_flight": WINDOW,
        "max_attempts": ATTEMPTS,
        "retry_delay": 0.01,
    }
    values.update(overrides)
    return S3Settings(**values)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def write_in_chunks(writer: Any, data: bytes, chunk: int = 1_000_003) -> None:
    """Write in odd-sized chunks, so writes straddle part boundaries."""
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        assert writer.write(view[start : start + chunk]) == len(view[start : start + chunk])


def write_then_fail(storage: Any, key: str, data: bytes) -> None:
    """Write ``data``, then fail inside the writer's context, as a failing command would."""
    with storage.open_writer(key) as writer:
        write_in_chunks(writer, data)
        raise RuntimeError("the command failed")


def read_all(reader: Any, chunk: int = 700_001) -> bytes:
    out = bytearray()
    buffer = bytearray(chunk)
    while count := reader.readinto(buffer):
        out += buffer[:count]
    return bytes(out)


@pytest.fixture
def storage(s3_env: str, bucket: str) -> S3Storage:
    """An S3 storage on the loopback server, configured from the environment."""
    return S3Storage(bucket, settings())


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture
def faulty_storage(s3_env: str, bucket: str, proxy: FaultProxy) -> S3Storage:
    """An S3 storage whose every request goes through the fault proxy."""
    return S3Storage(bucket, settings(endpoint_url=proxy.url))


#: The S3 service model a real client carries in ``client.meta``; loaded once.
_S3_MODEL = botocore.session.get_session().get_service_model("s3")


class MemoryS3:
    """An in-memory S3 client for the writer: keeps part sizes and CRCs, never the bytes.

    ``hold`` makes every upload_part wait until ``release()`` is called, so a test can look at
    the writer while its window is full. ``interrupt`` maps a method's name to how many of its
    first calls raise KeyboardInterrupt, as a Ctrl-C arriving while the caller waits for it.
    """

    def __init__(self, *, hold: bool = False, interrupt: dict[str, int] | None = None) -> None:
        self.meta = SimpleNamespace(endpoint_url="memory://", service_model=_S3_MODEL)
        self._interrupt = dict(interrupt or {})
        self._lock = threading.Condition()
        self._held = hold
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed_bytes = 0
        self.parts: dict[int, tuple[int, int]] = {}
        self.completed: list[dict[str, Any]] | None = None
        #: Calls of abort_multipart_upload that returned.
        self.aborts = 0
        self.put: bytes | None = None

    @property
    def aborted(self) -> bool:
        return self.aborts > 0

    def _maybe_interrupt(self, method: str) -> None:
        if self._interrupt.get(method, 0) > 0:
            self._interrupt[method] -= 1
            raise KeyboardInterrupt

    def release(self) -> None:
        with self._lock:
            self._held = False
            self._lock.notify_all()

    def wait_in_flight(self, count: int, timeout: float = 10) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: self.in_flight >= count, timeout), (
                f"only {self.in_flight} uploads in flight, expected {count}"
            )

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        return {"UploadId": "upload-1"}

    def upload_part(self, *, PartNumber: int, Body: Any, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._lock.notify_all()
            assert self._lock.wait_for(lambda: not self._held, 10), "never released"
        size, crc = len(Body), zlib.crc32(Body)
        with self._lock:
            self.parts[PartNumber] = (size, crc)
            self.completed_bytes += size
            self.in_flight -= 1
            self._lock.notify_all()
        return {"ETag": f'"{crc:08x}"'}

    def complete_multipart_upload(self, *, MultipartUpload: Any, **kwargs: Any) -> dict[str, Any]:
        self._maybe_interrupt("complete_multipart_upload")
        self.completed = MultipartUpload["Parts"]
        return {}

    def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._maybe_interrupt("abort_multipart_upload")
        with self._lock:
            self.aborts += 1
        return {}

    def put_object(self, *, Body: bytes, **kwargs: Any) -> dict[str, Any]:
        self.put = Body
        return {}


@pytest.fixture
def memory_s3() -> MemoryS3:
    return MemoryS3()
