"""The file-like pieces between the command, the stages and the storage.

Each counts what passes (and the storage side hashes it too); the ones the main thread drives
also look at the run's :class:`~streamer.pipeline.stop.Stop` before every chunk, which is where
a termination signal ends the stream.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from streamer.errors import CompressionError, SourceError
from streamer.pipeline.model import Compression
from streamer.pipeline.outcome import Action, Broken, Stream
from streamer.pipeline.stop import Stop
from streamer.progress import Progress
from streamer.sources.base import Command, ExitStatus
from streamer.stages.buffering import ReadAhead
from streamer.stages.gzip import GZIP_MAGIC, GunzipWriter
from streamer.storage.base import ObjectReader

__all__ = [
    "CHUNK",
    "CommandReader",
    "CommandWriter",
    "Decompressing",
    "DiscardWriter",
    "HashingReader",
    "HashingWriter",
    "Writable",
    "copy",
    "wait_status",
]

#: Size of the reads and writes between stages.
CHUNK = 1 << 20


class Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int | None: ...


class CommandReader:
    """The command's stdout as a reader, counting plaintext bytes (runs in the read-ahead)."""

    def __init__(self, command: Command, progress: Progress, stop: Stop) -> None:
        self._command = command
        self._progress = progress
        self._stop = stop
        self._buffer = bytearray(CHUNK)

    def readinto(self, buffer: memoryview) -> int:
        n = self._command.readinto(buffer)
        if n:
            self._progress.add(n)
        elif len(buffer):
            self._stop.output_ended()
        return n

    def read(self, size: int = -1) -> bytes:
        view = memoryview(self._buffer)[: size if 0 < size < CHUNK else CHUNK]
        return bytes(view[: self.readinto(view)])


class HashingWriter:
    """Passes writes on to the storage, hashing and counting them (the stored bytes)."""

    def __init__(self, inner: Writable, stop: Stop) -> None:
        self._inner = inner
        self._stop = stop  # a backup's
        self.sha256 = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self._stop.check(Action.BACKUP)
        self.sha256.update(data)
        self.count += len(data)
        self._inner.write(data)
        return len(data)


class HashingReader:
    """Reads the stored object, hashing and counting it, with a look-ahead for sniffing."""

    def __init__(self, inner: ObjectReader, progress: Progress, stop: Stop, action: Action) -> None:
        self._inner = inner
        self._progress = progress
        self._stop = stop
        self._action = action
        self.sha256 = hashlib.sha256()
        self.count = 0
        self._peeked = b""
        # Reused for every read: a fresh zeroed MiB per read costs page faults (bench/).
        self._buffer = bytearray()

    def peek(self, size: int) -> bytes:
        """Up to ``size`` first bytes, without consuming them (call before any read)."""
        while len(self._peeked) < size:
            more = self._read_inner(size - len(self._peeked))
            if not more:
                break
            self._peeked += more
        return self._peeked[:size]

    def _read_inner(self, size: int) -> bytes:
        self._stop.check(self._action)
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        n = self._inner.readinto(view)
        if n:
            data = bytes(view[:n])
            self.sha256.update(data)
            self.count += n
            self._progress.add(n)
            return data
        return b""

    def read(self, size: int = -1) -> bytes:
        if self._peeked:
            out, self._peeked = self._peeked, b""
            return out
        return self._read_inner(size if size > 0 else CHUNK)


class CommandWriter:
    """The command's stdin as a writer, counting plaintext bytes."""

    def __init__(self, command: Command) -> None:
        self._command = command
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self._command.write(data)
        self.count += len(data)
        return len(data)


class DiscardWriter:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.count += len(data)
        return len(data)


class Decompressing:
    """Plaintext side of restore: gunzips when the data is gzip (or when told to)."""

    def __init__(self, sink: Writable, compression: Compression, what: str) -> None:
        self._sink = sink
        self._mode = compression
        self._what = what
        self._head = b""
        self._target: Writable | GunzipWriter | None = None
        self.compressed = False

    def _choose(self) -> Writable | GunzipWriter:
        is_gzip = self._head.startswith(GZIP_MAGIC)
        if self._mode == "gzip" and not is_gzip:
            raise CompressionError(f"{self._what} is not gzip data (--compression gzip was given)")
        self.compressed = is_gzip and self._mode != "none"
        return GunzipWriter(self._sink, self._what) if self.compressed else self._sink

    def write(self, data: bytes | memoryview) -> int:
        if self._target is None:
            self._head += bytes(data)
            if len(self._head) < len(GZIP_MAGIC):
                return len(data)
            self._target = self._choose()
            head, self._head = self._head, b""
            self._target.write(head)
            return len(data)
        self._target.write(data)
        return len(data)

    def finish(self) -> None:
        if self._target is None:
            self._target = self._choose()
            if self._head:
                self._target.write(self._head)
        if isinstance(self._target, GunzipWriter):
            self._target.finish()


def copy(reader: HashingReader | ReadAhead, writer: Writable) -> None:
    while chunk := reader.read(CHUNK):
        writer.write(chunk)


def wait_status(command: Command, stream: Stream) -> tuple[ExitStatus | None, Stream]:
    """The command's exit status; a status that cannot be known breaks a complete stream."""
    try:
        return command.wait(), stream
    except SourceError as exc:
        return None, stream if isinstance(stream, Broken) else Broken(exc)
