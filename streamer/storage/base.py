"""The contract every storage keeps: objects are written atomically and read as streams.

An :class:`ObjectWriter` is a context manager. Leaving it normally *commits* the object (the
S3 multipart upload is completed, the temporary file is renamed into place); leaving it with an
exception *aborts* it, so a failed backup never leaves a partial object and never replaces an
existing good one.
"""

from __future__ import annotations

import abc
import io
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import unquote

from streamer.errors import ConfigError

__all__ = ["ObjectReader", "ObjectWriter", "S3Settings", "Storage", "open_storage"]


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. Anything left ``None`` comes from the standard AWS environment."""

    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    verify_tls: bool = True
    #: First part size in bytes; ``None`` chooses one (parts grow so any stream fits 10,000 parts).
    part_size: int | None = None
    #: Upload parts in flight at once; memory is about part size times this. Three 8 MiB
    #: parts upload as fast as more on a two-core machine and keep the streamer's peak RSS
    #: well under 128 MiB; raise it for high-latency links.
    parts_in_flight: int = 3
    #: Ranged GETs in flight when reading (memory: part size times this). 1 streams the object
    #: over one connection, which is fastest where a range costs as much as the whole object
    #: (moto); AWS S3 tops out near 100 MB/s per connection, and 4-8 ranges go faster there.
    ranges_in_flight: int = 1
    #: Attempts per request before the operation fails.
    max_attempts: int = 5
    #: Seconds the first retry waits at most (full jitter); the wait doubles with each attempt.
    retry_delay: float = 0.5


class ObjectWriter(io.RawIOBase, abc.ABC):
    """A new object being written. Commit on clean exit, abort on exception.

    Only :meth:`commit` makes the object visible: :meth:`close` (also called when a writer is
    garbage-collected, or by a wrapper such as ``io.BufferedWriter``) aborts a writer that was
    not committed, and :meth:`abort` after :meth:`commit` does nothing.
    """

    def writable(self) -> bool:
        return True

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        """Take all of ``data`` (always returns ``len(data)``)."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the object visible under its key."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard everything written; leave no trace (idempotent; no-op after commit)."""

    def close(self) -> None:
        if not self.closed:
            try:
                self.abort()
            finally:
                super().close()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class ObjectReader(io.RawIOBase, abc.ABC):
    """An existing object read from start to end."""

    def readable(self) -> bool:
        return True

    @abc.abstractmethod
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` with the next bytes; 0 at the end of the object."""

    #: The object's size in bytes, when the storage knows it.
    size: int | None = None


class Storage(abc.ABC):
    """A place that holds objects under keys."""

    @abc.abstractmethod
    def open_writer(self, key: str) -> ObjectWriter:
        """Start writing a new object; raise StorageError if the storage is unusable."""

    @abc.abstractmethod
    def open_reader(self, key: str) -> ObjectReader:
        """Open an object for reading; raise ObjectNotFound if it does not exist."""

    @abc.abstractmethod
    def url(self, key: str) -> str:
        """The object's URL, as a user would pass it back to ``streamer restore``."""


def open_storage(url: str, settings: S3Settings | None = None) -> tuple[Storage, str]:
    """Parse ``s3://bucket/key`` or ``file:///path`` into a storage and a key.

    S3 keys are taken literally, as ``aws s3`` does: ``#``, ``?`` and ``%`` are part of the
    key, not a fragment, a query or an escape, so every key a path template can render can be
    restored by the URL a backup reports. File URLs are percent-decoded (RFC 8089, as
    ``Path.as_uri()`` writes them) but never split at ``#`` or ``?``. File storage is rooted
    at ``/``, so its keys are absolute paths without their leading slash. The key may be empty
    or a prefix: a caller that renders the rest from a path template joins the two.
    """
    scheme, separator, rest = url.partition("://")
    if separator and scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ConfigError(f"{url!r} has no bucket: write s3://BUCKET/KEY")
        from streamer.storage.s3 import S3Storage

        return S3Storage(bucket, settings or S3Settings()), key
    if separator and scheme == "file":
        host, _, path = rest.partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(f"{url!r}: file URLs take an absolute path, file:///path")
        from streamer.storage.file import FileStorage

        return FileStorage("/"), unquote(path)
    raise ConfigError(
        f"unsupported storage URL {url!r}: use s3://BUCKET/KEY or file:///ABSOLUTE/PATH"
    )
