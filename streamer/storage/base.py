"""The contract every storage keeps: objects are written atomically and read as streams.

An :class:`ObjectWriter` is a context manager. Leaving it normally *commits* the object (the
S3 multipart upload is completed, the temporary file is renamed into place); leaving it with an
exception *aborts* it, so a failed backup never leaves a partial object and never replaces an
existing good one.
"""

from __future__ import annotations

import abc
import io
from types import TracebackType

__all__ = ["ObjectReader", "ObjectWriter", "Storage"]


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
