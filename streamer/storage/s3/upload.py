"""The S3 writer: one streamed multipart upload, visible only once it is committed.

A backup is a stream of unknown length that must never be staged on disk nor held whole in
memory, and must appear in the bucket only when it is complete. The writer fills one part
buffer at a time, hands full parts to a small thread pool, and blocks ``write`` while
``parts_in_flight`` uploads are running, so memory is about part size times (parts in flight
+ 1); part sizes follow :mod:`.parts`.

The upload's whole life is in this file:

- **created** in :class:`S3Writer`'s constructor (``create_multipart_upload``), so a bad bucket
  or bad credentials fail before a dump starts;
- **completed** by :meth:`S3Writer.commit` (``complete_multipart_upload``; an empty stream is
  a plain empty ``put_object`` instead), and with Object Lock asked for, checked to be locked
  (:mod:`.object_lock`: the lock travels with the create or the put, and is read back after);
- **aborted** by :meth:`S3Writer.abort` (``abort_multipart_upload``) on every failure, so no
  partial object is ever visible and an existing object under the key is only replaced by a
  complete one. Abort cancels the retries of parts in flight, waits for them, then aborts the
  upload; it is idempotent, and an abort or commit interrupted part way (``KeyboardInterrupt``)
  still reaches ``abort_multipart_upload``, and again on the next call.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import logging
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamer.errors import StorageError, StreamerError
from streamer.storage.base import ObjectWriter
from streamer.storage.s3 import errors, object_lock
from streamer.storage.s3.client import Bucket
from streamer.storage.s3.parts import MAX_PARTS

__all__ = ["ORPHAN_CLOCK_SLACK", "S3Writer", "part_crc32"]

log = logging.getLogger(__name__)

#: Seconds of S3-side timing jitter allowed when matching uploads left by retried creates.
ORPHAN_CLOCK_SLACK = 1.0


class S3Writer(ObjectWriter):
    """One multipart upload of ``key``; parts uploaded by a pool with a bounded window.

    ``part_sizes(n)`` is the size of part ``n`` (1-based).
    """

    def __init__(self, bucket: Bucket, key: str, part_sizes: Callable[[int], int]) -> None:
        super().__init__()
        self._bucket = bucket
        self._client = bucket.client
        self._key = key
        self._part_sizes = part_sizes
        self._window = bucket.settings.parts_in_flight
        #: starting -> open -> committed, or -> aborting -> aborted. Nothing to abort while
        #: starting: the upload does not exist yet.
        self._state = "starting"
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
        self._written = 0
        self._slots = threading.BoundedSemaphore(self._window)
        self._pool = ThreadPoolExecutor(self._window, thread_name_prefix="s3-upload")
        #: The Object Lock every write of the object carries, its date fixed once, here (the
        #: empty stream's put uses the same); a bucket without Object Lock fails now.
        self._object_lock = bucket.settings.object_lock
        self._retain_until, self._lock_arguments = object_lock.start(bucket)
        #: Each part carries its CRC32, which S3 checks on receipt: a part damaged on the way
        #: is refused (and retried), never stored.
        self._crc32 = bucket.settings.part_checksums
        self._checksum_algorithm = {"ChecksumAlgorithm": "CRC32"} if self._crc32 else {}
        attempts = 0

        def create() -> str:
            nonlocal attempts
            attempts += 1
            response = self._client.create_multipart_upload(
                Bucket=bucket.name, Key=key, **self._checksum_algorithm, **self._lock_arguments
            )
            return str(response["UploadId"])

        started = time.monotonic()
        self._upload_id = bucket.call("create_multipart_upload", key, create)
        self._state = "open"
        if attempts > 1:
            try:
                self._abort_orphans(time.monotonic() - started)
            except BaseException:
                self.abort()
                raise

    def _abort_orphans(self, window: float) -> None:
        """Abort the uploads that failed attempts of create_multipart_upload may have left.

        Creating an upload is not idempotent: an attempt whose response was lost may still have
        created one. Those are the other uploads of this key that S3 started at most ``window``
        seconds (how long creating took) before ours. Best effort: the bucket's lifecycle rule
        for incomplete uploads remains the backstop.
        """
        try:
            listing = self._bucket.call(
                "list_multipart_uploads",
                self._key,
                lambda: self._client.list_multipart_uploads(
                    Bucket=self._bucket.name, Prefix=self._key
                ),
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
                    self._bucket.call(
                        "abort_multipart_upload",
                        self._key,
                        functools.partial(
                            self._client.abort_multipart_upload,
                            Bucket=self._bucket.name,
                            Key=self._key,
                            UploadId=upload_id,
                        ),
                    )
        except StorageError as exc:
            log.warning(
                "could not clean up the uploads of %s left by retries: %s", self._url(), exc
            )

    # -- writing -----------------------------------------------------------------------------

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
                        f"({self._written} bytes written): raise the part size"
                    )
                self._buffer = self._take_buffer(self._part_sizes(self._part_number + 1))
                self._view = memoryview(self._buffer)
                self._filled = 0
            room = len(self._buffer) - self._filled
            chunk = min(room, size - taken)
            self._view[self._filled : self._filled + chunk] = view[taken : taken + chunk]
            self._filled += chunk
            taken += chunk
            self._written += chunk
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
        return self._bucket.url(self._key)

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
            checksum = {"ChecksumCRC32": part_crc32(holder[0])} if self._crc32 else {}
            if self._object_lock:
                # S3 takes a part of a locked upload only with a checksum of its body.
                checksum["ContentMD5"] = object_lock.content_md5(holder[0])
            response = self._bucket.call(
                f"upload_part {number}",
                self._key,
                lambda: self._client.upload_part(
                    Bucket=self._bucket.name,
                    Key=self._key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=holder[0],  # the bytearray is sent as it is, without a copy
                    **checksum,
                ),
                cancelled=self._cancelled,
            )
        finally:
            if holder and not self._cancelled.is_set():
                with self._lock:
                    self._spare.append(holder.pop())
            holder.clear()
            self._slots.release()
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in checksum:
            part["ChecksumCRC32"] = checksum["ChecksumCRC32"]  # Complete lists it per part
        return part

    def _part_done(self, future: Future[dict[str, Any]]) -> None:
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:
            with self._lock:
                if self._failure is None:
                    self._failure = exc

    # -- completing --------------------------------------------------------------------------

    def commit(self) -> None:
        if self._state == "committed":
            return
        if self._state != "open":
            raise StorageError(f"cannot commit {self._url()}: it was {self._state}")
        try:
            self._raise_failure()
            if self._part_number == 0 and self._filled == 0:
                version = self._commit_empty()
            else:
                if self._filled:
                    self._submit()
                parts = [future.result() for future in self._parts]
                version = self._complete(parts)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, StreamerError | KeyboardInterrupt | SystemExit):
                raise
            raise StorageError(f"committing {self._url()} failed: {exc!r}") from exc
        self._state = "committed"
        self._pool.shutdown(wait=True)
        self._spare.clear()
        if self._object_lock is not None:
            # Stored, whatever this finds: a lock that did not take is reported, not undone.
            self.lock = object_lock.ensure_locked(
                self._bucket, self._key, version, self._object_lock, self._retain_until
            )
        self.close()

    def _complete(self, parts: list[dict[str, Any]]) -> str | None:
        """Complete the upload; return the stored version's id (None: unknown or unversioned)."""
        attempts = 0

        def complete() -> str | None:
            nonlocal attempts
            attempts += 1
            try:
                response = self._client.complete_multipart_upload(
                    Bucket=self._bucket.name,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except ClientError as exc:
                # An earlier attempt whose response was lost may have completed the upload;
                # its version is then the current one, which the HEAD just matched.
                if not (
                    attempts > 1
                    and errors.error_code(exc) == "NoSuchUpload"
                    and self._is_stored(_multipart_etag(parts))
                ):
                    raise
                return None
            return response.get("VersionId") or None

        return self._bucket.call("complete_multipart_upload", self._key, complete)

    def _is_stored(self, etag: str | None) -> bool:
        """Whether the object under the key is the one these parts make."""
        if etag is None:
            return False
        try:
            head = self._client.head_object(Bucket=self._bucket.name, Key=self._key)
        except (BotoCoreError, ClientError):
            return False
        return str(head.get("ETag", "")).strip('"') == etag

    def _commit_empty(self) -> str | None:
        """A multipart upload needs at least one part: an empty stream is a plain empty PUT,
        with the upload's lock; return the stored version's id."""
        self._abort_upload()
        arguments = dict(self._lock_arguments)
        if self._object_lock is not None:
            arguments["ContentMD5"] = object_lock.content_md5(b"")
        response = self._bucket.call(
            "put_object",
            self._key,
            lambda: self._client.put_object(
                Bucket=self._bucket.name, Key=self._key, Body=b"", **arguments
            ),
        )
        return response.get("VersionId") or None

    # -- aborting ----------------------------------------------------------------------------

    def abort(self) -> None:
        if self._state not in ("open", "aborting"):
            return
        self._state = "aborting"
        self._cancelled.set()  # parts waiting to retry give up now
        self._view.release()
        self._buffer = None
        try:
            # Parts still uploading would be stored after the abort; let them end first.
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            # Reached even if that wait is interrupted. A part still uploading may then outlive
            # this abort, so the writer stays "aborting" and the next call aborts once more.
            self._abort_upload()
        self._spare.clear()
        self._state = "aborted"
        self.close()

    def _abort_upload(self) -> None:
        """Abort the multipart upload; an upload already gone counts as aborted."""
        try:
            self._bucket.call(
                "abort_multipart_upload",
                self._key,
                lambda: self._client.abort_multipart_upload(
                    Bucket=self._bucket.name, Key=self._key, UploadId=self._upload_id
                ),
            )
        except StorageError as exc:
            if errors.is_no_such_upload(exc):
                return
            if self._state == "aborting":
                # The failure that caused the abort matters more; the parts left behind are
                # removed by the bucket's lifecycle rule for incomplete multipart uploads.
                log.warning("could not abort the multipart upload of %s: %s", self._url(), exc)
                return
            raise


def part_crc32(body: bytes | bytearray | memoryview) -> str:
    """The CRC32 of a part as S3 takes it: four big-endian bytes, base64. zlib's (~3.7 GB/s
    here, in the part's upload thread) rather than ISA-L's: the controller loads this module,
    and never the data plane's native libraries."""
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


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
