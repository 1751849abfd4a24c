"""The contract every storage keeps: objects are written atomically and read as streams.

An :class:`ObjectWriter` is a context manager. Leaving it normally *commits* the object (the
S3 multipart upload is completed, the temporary file is renamed into place); leaving it with an
exception *aborts* it, so a failed backup never leaves a partial object and never replaces an
existing good one.

A storage that locks objects (S3 Object Lock) reads the lock back once the object is stored and
reports what it found as the writer's :class:`LockStatus`: a lock the storage ignored is a
failure the caller reports, never a reason to remove the stored object.
"""

from __future__ import annotations

import abc
import datetime
import io
from dataclasses import dataclass
from types import TracebackType

from streamer.errors import ConfigError

__all__ = ["LockStatus", "ObjectReader", "ObjectWriter", "Storage", "iso_utc"]


def iso_utc(moment: datetime.datetime) -> str:
    """``moment`` as ISO 8601 in UTC to the second, e.g. ``2024-03-07T09:05:02Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LockStatus:
    """The lock a committed object was found to carry, read back from the storage."""

    #: The retention mode found (``GOVERNANCE``, ``COMPLIANCE``), or None.
    mode: str | None
    #: When the retention found ends, or None.
    retain_until: datetime.datetime | None
    legal_hold: bool
    #: Whether the object carries at least the lock that was asked for.
    locked: bool
    #: When it does not: why, and what to do, in a sentence a user can act on.
    problem: str = ""


class ObjectWriter(io.RawIOBase, abc.ABC):
    """A new object being written. Commit on clean exit, abort on exception.

    Only :meth:`commit` makes the object visible: :meth:`close` (also called when a writer is
    garbage-collected, or by a wrapper such as ``io.BufferedWriter``) aborts a writer that was
    not committed, and :meth:`abort` after :meth:`commit` does nothing.
    """

    #: After a commit that was asked to lock the object: the lock it was found to carry.
    lock: LockStatus | None = None

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
        """Discard everything written; leave no trace (idempotent; no-op after commit).

        An abort interrupted part way (a ``KeyboardInterrupt`` while it waits) is resumed by
        the next call, so calling it again until it returns always leaves no trace.
        """

    def close(self) -> None:
        if not self.closed:
            # Closed only once the abort has returned: an interrupted abort leaves the writer
            # open, and the next close() (at the latest when it is garbage-collected) resumes it.
            self.abort()
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

    def latest(self, prefix: str) -> str:
        """The key of the newest object whose key starts with ``prefix``.

        Raises ObjectNotFound when there is none; ConfigError where the storage cannot list.
        """
        raise ConfigError(f"{self.url(prefix)}: finding the newest object needs an s3:// URL")
