"""Plumbing between stages: a read-ahead thread, and writes gathered into large chunks.

:class:`ReadAhead` runs another reader in a thread of its own, a bounded number of chunks
ahead. In a backup that thread reads the command's output and compresses it (ISA-L and
zlib-ng release the GIL) while the main thread encrypts, hashes and uploads: on two cores the
stages overlap instead of taking turns. Memory stays bounded by ``depth`` chunks.

:class:`WriteBehind` is the mirror image for restore: a thread feeds the command's stdin
while the main thread decrypts and decompresses the next chunks.

:class:`Coalesce` gathers small writes (age decrypts in 64 KiB pieces, gunzip returns a few
KiB at a time) into large ones, so the command's stdin is fed in a few big writes instead of
many small ones, each of which would wake the reader on the other end of the pipe.
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

__all__ = ["Coalesce", "ReadAhead", "WriteBehind"]


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes | memoryview, /) -> int | None: ...


_END = object()
_POLL = 0.2  # seconds between checks for a stop request while the queue is full


class ReadAhead:
    """Reads ``inner`` in a background thread, up to ``depth`` chunks ahead."""

    def __init__(self, inner: _Reader, chunk: int, depth: int = 4) -> None:
        self._inner = inner
        self._chunk = chunk
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._inner.read(self._chunk)
                if not data:
                    break
                if not self._put(data):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def read(self, size: int = -1) -> bytes:
        while not self._current:
            if self._finished:
                return b""
            item = self._queue.get()
            if item is _END:
                self._finished = True
                return b""
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            assert isinstance(item, bytes)
            self._current = memoryview(item)
        if size < 0 or size >= len(self._current):
            out, self._current = self._current, memoryview(b"")
        else:
            out, self._current = self._current[:size], self._current[size:]
        return out.tobytes()

    def close(self) -> None:
        """Stop the thread (it may still be blocked in the inner read until that returns)."""
        self._stop.set()
        self._thread.join(timeout=1)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Coalesce:
    """Passes writes on in chunks of ``size`` bytes; :meth:`flush` sends the rest."""

    def __init__(self, inner: _Writer, size: int) -> None:
        self._inner = inner
        self._size = size
        self._buffer = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        if not self._buffer and n >= self._size:
            self._inner.write(data)
            return n
        self._buffer += data
        if len(self._buffer) >= self._size:
            self.flush()
        return n

    def flush(self) -> None:
        if self._buffer:
            data, self._buffer = self._buffer, bytearray()
            self._inner.write(memoryview(data))


class WriteBehind:
    """Writes to ``inner`` from a background thread, up to ``depth`` chunks behind.

    A failure of the inner writer is raised by the next :meth:`write` or by :meth:`close`,
    which waits until everything written has been passed on.
    """

    def __init__(self, inner: _Writer, depth: int = 4) -> None:
        self._inner = inner
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="write-behind", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._abandoned.is_set():
                    return
                continue
            if item is _END:
                return
            if self._error is not None or self._abandoned.is_set():
                continue  # drain, so a blocked producer is released
            try:
                self._inner.write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # raised again in the producer's thread
                self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes | memoryview) -> int:
        self._check()
        self._queue.put(data)
        return len(data)

    def abandon(self) -> None:
        """Give up without waiting: the rest is discarded. The caller stops the consumer's
        peer (kills the command), which unblocks a write in progress."""
        self._abandoned.set()

    def close(self) -> None:
        """Wait until every chunk is written; raise the inner writer's failure, if any."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        self._check()
