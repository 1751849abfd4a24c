"""S3 storage: a streamed multipart upload that appears only on commit, and a streamed reader.

A backup is a stream of unknown length that must never be staged on disk nor held whole in
memory, and must appear in the bucket only when it is complete. So the writer is a multipart
upload: it fills one part buffer at a time, hands full parts to a small thread pool, and blocks
``write`` while ``parts_in_flight`` uploads are running, so memory is about part size times
(parts in flight + 1). :func:`part_size` grows the parts as the part numbers rise, so any
stream up to S3's 5 TiB object maximum fits the 10,000-part limit while small and medium
streams use small parts. ``commit`` completes the upload; every failure aborts it, so no
partial object is ever visible and an existing object under the same key is only replaced by a
complete one.

The reader heads the object (size, ETag), then either streams it over one connection, resuming
with a ranged GET where a lost connection broke off, or, with ``ranges_in_flight`` > 1, fetches
ranges in parallel (a bounded window, reassembled in order) for servers whose per-connection
throughput is the limit. Every GET is pinned to the ETag the read started with.

Every request is retried here, not in botocore, when it is idempotent and the failure is
transient (connection reset, timeout, 5xx, throttling): a bounded number of attempts with
jittered exponential backoff, and the final error names the operation, the part and the
object. Reading a response body is part of the attempt, so a connection lost mid-body is
retried too. This is the only module that imports boto3 and botocore; their exceptions are
translated into :class:`~streamer.errors.StorageError` here and never leave it.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from streamer.errors import ConfigError, ObjectNotFound, StorageError, StreamerError
from streamer.storage.base import ObjectReader, ObjectWriter, S3Settings, Storage

#: botocore builds the S3 client's methods at run time; the S3 stubs are not required here.
S3Client = Any

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "S3Storage",
    "capacity",
    "is_transient",
    "make_client",
    "part_size",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3's limits on multipart uploads (every part but the last is at least MIN_PART_SIZE).
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB
#: The first part's size unless configured; also the size of the ranges a reader fetches.
DEFAULT_PART_SIZE = 8 * MiB
#: Backoff between attempts never exceeds this many seconds.
MAX_RETRY_DELAY = 20.0
#: Socket timeouts: a stalled connection is a transient failure, retried like a reset.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: Seconds of S3-side timing jitter allowed when matching uploads left by retried creates.
ORPHAN_CLOCK_SLACK = 1.0

_THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "BandwidthLimitExceeded",
    }
)
_TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException"}
)
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

T = TypeVar("T")


# -- the part size policy -----------------------------------------------------------------------


def _validate_first_part_size(first_part_size: int) -> None:
    if not MIN_PART_SIZE <= first_part_size <= MAX_PART_SIZE:
        raise ConfigError(
            f"part size {first_part_size} bytes is outside S3's limits: "
            f"use {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB)"
        )


def _sizes_total(first_part_size: int, period: int) -> int:
    """Bytes that MAX_PARTS parts hold when the size doubles every ``period`` parts."""
    total = 0
    for start in range(0, MAX_PARTS, period):
        count = min(period, MAX_PARTS - start)
        total += count * min(MAX_PART_SIZE, first_part_size << (start // period))
    return total


@functools.lru_cache(maxsize=64)
def _doubling_period(first_part_size: int) -> int:
    """The longest doubling period with which MAX_PARTS parts still hold MAX_OBJECT_SIZE.

    The longest period keeps parts (and so memory) small for as long as possible.
    """
    _validate_first_part_size(first_part_size)
    low, high = 1, MAX_PARTS  # _sizes_total(first, 1) is always enough; find the largest period
    while low < high:
        middle = (low + high + 1) // 2
        if _sizes_total(first_part_size, middle) >= MAX_OBJECT_SIZE:
            low = middle
        else:
            high = middle - 1
    return low


def part_size(part_number: int, first_part_size: int = DEFAULT_PART_SIZE) -> int:
    """The size of part ``part_number`` (1-based) of a stream of unknown length.

    Parts keep ``first_part_size`` for the first period, then double every period, where the
    period is the longest one with which 10,000 parts still hold 5 TiB. With the default 8 MiB,
    parts stay 8 MiB for the first ~8.5 GiB of a stream.
    """
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"part number {part_number} is outside 1..{MAX_PARTS}")
    period = _doubling_period(first_part_size)
    return min(MAX_PART_SIZE, first_part_size << ((part_number - 1) // period))


def capacity(first_part_size: int = DEFAULT_PART_SIZE) -> int:
    """The largest stream the policy fits in MAX_PARTS parts (at least MAX_OBJECT_SIZE)."""
    return _sizes_total(first_part_size, _doubling_period(first_part_size))


# -- errors -------------------------------------------------------------------------------------


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _forbidden(exc: StorageError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ClientError) and _status(cause) == 403


def is_transient(exc: BaseException) -> bool:
    """Whether repeating the same request may succeed: resets, timeouts, 5xx, throttling."""
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        return code in _THROTTLING_CODES or code in _TRANSIENT_CODES or _status(exc) >= 500
    return isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError)


def _backoff(attempt: int, first_delay: float) -> float:
    """Full-jitter exponential backoff before attempt ``attempt + 1``."""
    return random.uniform(0, min(MAX_RETRY_DELAY, first_delay * 2 ** (attempt - 1)))  # noqa: S311


# -- the storage --------------------------------------------------------------------------------


def make_client(settings: S3Settings) -> S3Client:
    """A client from the standard AWS environment plus ``settings``; retries are ours."""
    config = Config(
        region_name=settings.region,
        s3={"addressing_style": "path"} if settings.path_style else {},
        max_pool_connections=max(10, 2 * settings.parts_in_flight),
        # One attempt per call: the retry loop below knows which calls are idempotent and
        # names the operation when it gives up.
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        tcp_keepalive=True,
        # botocore's default flexible checksums wrap https bodies in aws-chunked encoding,
        # which several S3-compatible servers reject, and made no measurable difference to
        # throughput against moto. Bodies stay protected: by TLS, or over plain HTTP by the
        # payload SHA-256 that SigV4 signs; restore checks the whole stream (age's MAC).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            verify=settings.verify_tls,
            config=config,
        )
    except BotoCoreError as exc:
        raise ConfigError(f"cannot configure the S3 client: {exc}") from exc
    except ValueError as exc:  # botocore's check of the endpoint URL
        raise ConfigError(
            f"the S3 endpoint {settings.endpoint_url!r} is not a URL ({exc}): "
            "write it as https://HOST[:PORT] in AWS_ENDPOINT_URL_S3 or --endpoint-url"
        ) from exc


class S3Storage(Storage):
    """Objects in one S3 bucket. ``client`` is the seam: tests pass instrumented clients."""

    def __init__(
        self,
        bucket: str,
        settings: S3Settings | None = None,
        client: S3Client | None = None,
        *,
        part_sizes: Callable[[int], int] | None = None,
    ) -> None:
        self.bucket = bucket
        self.settings = settings or S3Settings()
        if self.settings.parts_in_flight < 1:
            raise ConfigError(
                f"parts in flight must be at least 1, not {self.settings.parts_in_flight}"
            )
        if self.settings.ranges_in_flight < 1:
            raise ConfigError(
                f"ranges in flight must be at least 1, not {self.settings.ranges_in_flight}"
            )
        if self.settings.max_attempts < 1:
            raise ConfigError(f"max attempts must be at least 1, not {self.settings.max_attempts}")
        first = self.settings.part_size or DEFAULT_PART_SIZE
        _validate_first_part_size(first)
        #: Which size part N gets; the policy is replaceable so tests can exercise growth cheaply.
        self.part_sizes = part_sizes or functools.partial(part_size, first_part_size=first)
        self.range_size = first
        self.client: S3Client = client if client is not None else make_client(self.settings)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def open_writer(self, key: str) -> ObjectWriter:
        """Create the multipart upload now, so a bad bucket or credentials fail before a dump."""
        return _S3Writer(self, key)

    def open_reader(self, key: str) -> ObjectReader:
        """Stream the object over one connection, or in parallel ranges if so configured."""
        if self.settings.ranges_in_flight > 1:
            return _S3RangeReader(self, key)
        return _S3StreamReader(self, key)

    def check(self) -> None:
        """Raise StorageError unless the bucket is reachable with these credentials."""
        try:
            self.call("head_bucket", None, lambda: self.client.head_bucket(Bucket=self.bucket))
        except StorageError as exc:
            if _forbidden(exc):
                # HEAD responses carry no error code; a listing tells bad credentials apart
                # from a forbidden bucket.
                self.call(
                    "list_objects_v2",
                    None,
                    lambda: self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1),
                )
            raise

    # -- requests ----------------------------------------------------------------------------

    def call(
        self,
        operation: str,
        key: str | None,
        request: Callable[[], T],
        *,
        cancelled: threading.Event | None = None,
    ) -> T:
        """Run an idempotent ``request``, retrying transient failures; raise StorageError."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return request()
            except (BotoCoreError, ClientError) as exc:
                if attempt == attempts or not is_transient(exc):
                    raise self.translate(exc, operation, key, attempt) from exc
                delay = _backoff(attempt, self.settings.retry_delay)
                log.info(
                    "%s of %s failed (attempt %d of %d), retrying in %.2fs: %s",
                    operation,
                    self._target(key),
                    attempt,
                    attempts,
                    delay,
                    self._redact(str(exc)),
                )
                if cancelled is not None:
                    if cancelled.wait(delay):
                        raise self.translate(exc, operation, key, attempt) from exc
                else:
                    time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _target(self, key: str | None) -> str:
        return self.url(key) if key is not None else f"bucket {self.bucket!r}"

    def translate(
        self, exc: BaseException, operation: str, key: str | None, attempts: int = 1
    ) -> StorageError:
        """A StorageError a user can act on, naming the object; never containing a secret."""
        target = self._target(key)
        bucket = self.bucket
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            status = _status(exc)
            detail = self._redact(str(exc.response.get("Error", {}).get("Message", "")) or code)
            if code in _CREDENTIAL_CODES:
                message = (
                    f"S3 rejected the credentials ({code}) on {operation} of {target}: "
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
                if code in ("InvalidToken", "ExpiredToken"):
                    message += " and AWS_SESSION_TOKEN"
                return StorageError(message)
            if code == "NoSuchBucket" or (key is None and status == 404):
                return StorageError(
                    f"the bucket {bucket!r} does not exist (S3 said {code or status} "
                    f"on {operation}): create it or fix the bucket in the URL"
                )
            if status == 403:
                return StorageError(
                    f"the bucket {bucket!r} does not exist, or is forbidden for the given "
                    f"credentials ({code or status} on {operation} of {target}): check the "
                    "bucket name and that the credentials may write and read it"
                )
            if key is not None and (code in _MISSING_OBJECT_CODES or status == 404):
                if code == "NoSuchUpload":
                    return StorageError(
                        f"{operation} of {target} failed: the multipart upload no longer "
                        "exists (aborted by another process or a lifecycle rule)"
                    )
                return ObjectNotFound(f"{target} does not exist: check the bucket and the key")
            if code == "PreconditionFailed":
                return StorageError(f"{target} was replaced while it was being read; read it again")
            what = f"{code} (HTTP {status}): {detail}" if code else f"HTTP {status}: {detail}"
        elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(
                f"no usable S3 credentials for {operation} of {target}: set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY (or another source in the standard AWS chain)"
            )
        elif isinstance(exc, BotoConnectionError) and not isinstance(exc, HTTPClientError):
            endpoint = self.client.meta.endpoint_url
            what = (
                f"cannot connect to the S3 endpoint {endpoint} ({self._redact(str(exc))}); "
                "check AWS_ENDPOINT_URL_S3 / --endpoint-url and the network"
            )
        else:
            what = self._redact(str(exc)) or type(exc).__name__
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return StorageError(f"{operation} of {target} failed{tries}: {what}")

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _secrets(self) -> list[str]:
        found = [
            os.environ.get(name, "") for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        ]
        signer = getattr(self.client, "_request_signer", None)
        credentials = getattr(signer, "_credentials", None)
        for attribute in ("secret_key", "token"):
            value = getattr(credentials, attribute, None)
            if isinstance(value, str):
                found.append(value)
        return [secret for secret in found if len(secret) >= 8]


# -- the writer ---------------------------------------------------------------------------------


class _S3Writer(ObjectWriter):
    """One multipart upload; parts uploaded by a pool with a bounded window."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._client = storage.client
        self._bucket = storage.bucket
        self._key = key
        self._window = storage.settings.parts_in_flight
        self._state = "starting"  # nothing to abort until the upload exists
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._buffer: bytearray | None = None
        #: Part buffers back from finished uploads, reused for the next parts. Allocating a
        #: fresh 8 MiB buffer per part and freeing it in another thread fragments the heap
        #: and makes the peak RSS creep with the stream's length. The pool first grows to its
        #: bound (window + 1 buffers), then reuses the oldest spare: every stream longer than
        #: a few parts peaks at the same, configured RSS, instead of one that depends on how
        #: often the window happened to fill.
        self._spare: list[bytearray] = []
        self._allocated = 0
        #: Writes copy through this view: slice-assigning a memoryview to a bytearray copies twice.
        self._view = memoryview(b"")
        self._filled = 0
        self._part_number = 0
        #: Bytes taken by ``write`` so far.
        self.bytes_written = 0
        attempts = 0

        def create() -> str:
            nonlocal attempts
            attempts += 1
            response = self._client.create_multipart_upload(Bucket=self._bucket, Key=key)
            return str(response["UploadId"])

        started = time.monotonic()
        self._upload_id = storage.call("create_multipart_upload", key, create)
        if attempts > 1:
            self._abort_orphans(time.monotonic() - started)
        self._slots = threading.BoundedSemaphore(self._window)
        self._pool = ThreadPoolExecutor(self._window, thread_name_prefix="s3-upload")
        self._state = "open"

    def _abort_orphans(self, window: float) -> None:
        """Abort the uploads that failed attempts of create_multipart_upload may have left.

        Creating an upload is not idempotent: an attempt whose response was lost may still have
        created one. Those are the other uploads of this key that S3 started at most ``window``
        seconds (how long creating took) before ours. Best effort: the bucket's lifecycle rule
        for incomplete uploads remains the backstop.
        """
        try:
            listing = self._storage.call(
                "list_multipart_uploads",
                self._key,
                lambda: self._client.list_multipart_uploads(Bucket=self._bucket, Prefix=self._key),
            )
            uploads = [u for u in listing.get("Uploads", []) if u.get("Key") == self._key]
            ours = [u["Initiated"] for u in uploads if u.get("UploadId") == self._upload_id]
            if not ours:
                return
            slack = datetime.timedelta(seconds=window + ORPHAN_CLOCK_SLACK)
            for upload in uploads:
                upload_id = upload.get("UploadId")
                if (
                    upload_id != self._upload_id
                    and ours[0] - slack <= upload["Initiated"] <= ours[0]
                ):
                    self._storage.call(
                        "abort_multipart_upload",
                        self._key,
                        functools.partial(
                            self._client.abort_multipart_upload,
                            Bucket=self._bucket,
                            Key=self._key,
                            UploadId=upload_id,
                        ),
                    )
        except StorageError as exc:
            log.warning(
                "could not clean up the uploads of %s left by retries: %s", self._url(), exc
            )

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._state != "open":
            raise StorageError(f"write to {self._url()} after it was {self._state}")
        self._raise_failure()
        view = memoryview(data).cast("B")
        size = len(view)
        taken = 0
        while taken < size:
            if self._buffer is None:
                if self._part_number >= MAX_PARTS:
                    raise StorageError(
                        f"{self._url()} exceeds S3's limit of {MAX_PARTS} parts "
                        f"({self.bytes_written} bytes written): raise the part size"
                    )
                self._buffer = self._take_buffer(self._storage.part_sizes(self._part_number + 1))
                self._view = memoryview(self._buffer)
                self._filled = 0
            room = len(self._buffer) - self._filled
            chunk = min(room, size - taken)
            self._view[self._filled : self._filled + chunk] = view[taken : taken + chunk]
            self._filled += chunk
            taken += chunk
            self.bytes_written += chunk
            if self._filled == len(self._buffer):
                self._submit()
        return size

    def _take_buffer(self, size: int) -> bytearray:
        with self._lock:
            # Parts grow for very long streams: spares of the old size are dropped.
            kept = [buffer for buffer in self._spare if len(buffer) == size]
            self._allocated -= len(self._spare) - len(kept)
            self._spare = kept
            if self._allocated > self._window and self._spare:
                return self._spare.pop(0)
            self._allocated += 1
        return bytearray(size)

    def _url(self) -> str:
        return self._storage.url(self._key)

    def _raise_failure(self) -> None:
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    def _submit(self) -> None:
        """Hand the current buffer to the pool; block while the window is full."""
        body = self._buffer
        assert body is not None
        self._view.release()
        if self._filled < len(body):
            del body[self._filled :]  # the last part: shrinks in place
        self._buffer = None
        self._filled = 0
        # The upload owns the only reference, and frees the slot only once the buffer is gone.
        holder = [body]
        del body
        self._slots.acquire()
        try:
            self._raise_failure()
            self._part_number += 1
            future = self._pool.submit(self._upload_part, self._part_number, holder)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._part_done)
        self._parts.append(future)

    def _upload_part(self, number: int, holder: list[bytearray]) -> dict[str, Any]:
        try:
            response = self._storage.call(
                f"upload_part {number}",
                self._key,
                lambda: self._client.upload_part(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=holder[0],  # the bytearray is sent as it is, without a copy
                ),
                cancelled=self._cancelled,
            )
        finally:
            if holder and not self._cancelled.is_set():
                with self._lock:
                    self._spare.append(holder.pop())
            holder.clear()
            self._slots.release()
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _part_done(self, future: Future[dict[str, Any]]) -> None:
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:
            with self._lock:
                if self._failure is None:
                    self._failure = exc

    def commit(self) -> None:
        if self._state == "committed":
            return
        if self._state != "open":
            raise StorageError(f"cannot commit {self._url()}: it was {self._state}")
        try:
            self._raise_failure()
            if self._part_number == 0 and self._filled == 0:
                self._commit_empty()
            else:
                if self._filled:
                    self._submit()
                parts = [future.result() for future in self._parts]
                self._complete(parts)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, StreamerError | KeyboardInterrupt | SystemExit):
                raise
            raise StorageError(f"committing {self._url()} failed: {exc!r}") from exc
        self._state = "committed"
        self._pool.shutdown(wait=True)
        self._spare.clear()
        self.close()

    def _complete(self, parts: list[dict[str, Any]]) -> None:
        attempts = 0

        def complete() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except ClientError as exc:
                # An earlier attempt whose response was lost may have completed the upload.
                if not (
                    attempts > 1
                    and _error_code(exc) == "NoSuchUpload"
                    and self._is_stored(_multipart_etag(parts))
                ):
                    raise

        self._storage.call("complete_multipart_upload", self._key, complete)

    def _is_stored(self, etag: str | None) -> bool:
        """Whether the object under the key is the one these parts make."""
        if etag is None:
            return False
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=self._key)
        except (BotoCoreError, ClientError):
            return False
        return str(head.get("ETag", "")).strip('"') == etag

    def _commit_empty(self) -> None:
        """A multipart upload needs at least one part: an empty stream is a plain empty PUT."""
        self._abort_upload()
        self._storage.call(
            "put_object",
            self._key,
            lambda: self._client.put_object(Bucket=self._bucket, Key=self._key, Body=b""),
        )

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._view.release()
        self._buffer = None
        self._cancelled.set()
        # Parts still uploading would be stored after the abort; let them end first.
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._spare.clear()
        self._abort_upload()
        self.close()

    def _abort_upload(self) -> None:
        try:
            self._storage.call(
                "abort_multipart_upload",
                self._key,
                lambda: self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                ),
            )
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _error_code(cause) == "NoSuchUpload":
                return
            if self._state == "aborted":
                # The failure that caused the abort matters more; the parts left behind are
                # removed by the bucket's lifecycle rule for incomplete multipart uploads.
                log.warning("could not abort the multipart upload of %s: %s", self._url(), exc)
                return
            raise


def _multipart_etag(parts: list[dict[str, Any]]) -> str | None:
    """The ETag S3 gives the object these parts make: MD5 of the parts' MD5s, then ``-N``.

    ``None`` when the parts' ETags are not MD5s (SSE-KMS, some S3-compatible servers).
    """
    digests = b""
    for part in parts:
        try:
            digests += bytes.fromhex(str(part["ETag"]).strip('"'))
        except ValueError:
            return None
    if len(digests) != 16 * len(parts):
        return None
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"


# -- the reader ---------------------------------------------------------------------------------


def _head(storage: S3Storage, key: str) -> tuple[int, str]:
    """The object's size and ETag; ObjectNotFound, or which credentials problem it is."""
    client = storage.client
    try:
        head = storage.call(
            "head_object", key, lambda: client.head_object(Bucket=storage.bucket, Key=key)
        )
    except StorageError as exc:
        if _forbidden(exc):
            # HEAD responses carry no error code; a one-byte GET tells bad credentials apart
            # from a forbidden bucket or object.
            storage.call(
                "get_object",
                key,
                lambda: client.get_object(Bucket=storage.bucket, Key=key, Range="bytes=0-0"),
            )
        raise
    return int(head["ContentLength"]), str(head["ETag"])


class _S3StreamReader(ObjectReader):
    """One GET streamed over one connection; a lost connection resumes where it broke off.

    Each resumption is a ranged GET pinned to the ETag the read started with, so a replaced
    object is an error rather than a splice of two objects.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._key = key
        self._body: Any = None
        self._offset = 0
        self.size, self._etag = _head(storage, key)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("read from a closed reader")
        size = self.size or 0
        want = min(len(buffer), size - self._offset)
        if want <= 0:
            self._drop_body()
            return 0
        data = self._storage.call(
            f"get_object bytes={self._offset}-{size - 1}", self._key, lambda: self._read(want)
        )
        count = len(data)
        memoryview(buffer).cast("B")[:count] = data
        self._offset += count
        return count

    def _read(self, want: int) -> bytes:
        """One attempt: (re)open the stream at the current offset if needed, read from it."""
        if self._body is None:
            extra = {"Range": f"bytes={self._offset}-"} if self._offset else {}
            response = self._storage.client.get_object(
                Bucket=self._storage.bucket, Key=self._key, IfMatch=self._etag, **extra
            )
            self._body = response["Body"]
        try:
            data: bytes = self._body.read(want)
        except BaseException:
            self._drop_body()
            raise
        if not data:
            self._drop_body()
            raise IncompleteReadError(actual_bytes=self._offset, expected_bytes=self.size or 0)
        return data

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()

    def close(self) -> None:
        if not self.closed and hasattr(self, "_body"):
            self._drop_body()
        super().close()


class _S3RangeReader(ObjectReader):
    """Ranges fetched by a pool, a bounded window ahead of the consumer, delivered in order."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._client = storage.client
        self._bucket = storage.bucket
        self._key = key
        self._range_size = storage.range_size
        self._window = storage.settings.ranges_in_flight
        self._cancelled = threading.Event()
        self._pending: deque[Future[bytes]] = deque()
        self._next_offset = 0
        self._current = memoryview(b"")
        self._pool: ThreadPoolExecutor | None = None
        self.size, self._etag = _head(storage, key)
        self._pool = ThreadPoolExecutor(self._window, thread_name_prefix="s3-download")
        for _ in range(self._window):
            self._schedule()

    def _schedule(self) -> None:
        if self._next_offset >= (self.size or 0):
            return
        start = self._next_offset
        end = min(start + self._range_size, self.size or 0) - 1
        self._next_offset = end + 1
        assert self._pool is not None
        self._pending.append(self._pool.submit(self._fetch, start, end))

    def _fetch(self, start: int, end: int) -> bytes:
        def request() -> bytes:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end}", IfMatch=self._etag
            )
            data: bytes = response["Body"].read()
            if len(data) != end - start + 1:
                raise IncompleteReadError(actual_bytes=len(data), expected_bytes=end - start + 1)
            return data

        return self._storage.call(
            f"get_object bytes={start}-{end}", self._key, request, cancelled=self._cancelled
        )

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("read from a closed reader")
        while not self._current:
            if not self._pending:
                return 0
            future = self._pending.popleft()
            try:
                self._current = memoryview(future.result())
            except BaseException:
                self.close()
                raise
            self._schedule()
        count = min(len(buffer), len(self._current))
        memoryview(buffer).cast("B")[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._cancelled.set()
            self._pending.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._current = memoryview(b"")
        super().close()
