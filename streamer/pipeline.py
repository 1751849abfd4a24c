"""Backup, restore and verify: the stream from a command to storage and back.

::

    backup:  command stdout ─► gzip ─► age ─► sha256 ─► storage writer (commit iff exit 0)
    restore: storage reader ─► sha256 ─► [age -d] ─► [gunzip] ─► command stdin ─► exit status
    verify:  storage reader ─► sha256 ─► [age -d] ─► [gunzip] ─► count

Restore and verify find out from the bytes whether the object is encrypted (the age header)
and compressed (the gzip magic), so a user never has to say how a backup was written. Each
function takes the place to run commands (a :class:`~streamer.sources.base.Runner`) and the
storage as arguments; nothing here knows about processes, Kubernetes or S3.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol

from streamer.contract import OUTPUTS, Output
from streamer.errors import (
    CommandFailed,
    CompressionError,
    DeadlineExceeded,
    EncryptionError,
    IntegrityError,
    StdinClosed,
)
from streamer.progress import Progress, human_bytes
from streamer.sources.base import Command, ExitStatus, Mode, Runner
from streamer.stages import age
from streamer.stages.buffering import Coalesce, ReadAhead, WriteBehind
from streamer.stages.gzip import GZIP_MAGIC, GunzipWriter, GzipReader
from streamer.storage.base import ObjectReader, Storage

__all__ = [
    "CHUNK",
    "DEADLINE_EXIT_CODE",
    "BackupOptions",
    "Compression",
    "RestoreOptions",
    "Summary",
    "backup",
    "restore",
    "verify",
]

_LOG = logging.getLogger("streamer")
#: Size of the reads and writes between stages.
CHUNK = 1 << 20
#: The exit code of a run stopped by its deadline (as coreutils' ``timeout``).
DEADLINE_EXIT_CODE = 124

Compression = Literal["auto", "gzip", "none"]


@dataclass(frozen=True)
class BackupOptions:
    compress: bool = True
    level: int | None = None
    recipients: Sequence[age.Recipient] = ()
    deadline: float | None = None


@dataclass(frozen=True)
class RestoreOptions:
    identities: Sequence[age.Identity] = ()
    #: ``auto`` decompresses when the data starts with the gzip magic.
    compression: Compression = "auto"
    deadline: float | None = None
    #: For verify: the SHA-256 the stored object must have.
    expected_sha256: str | None = None


@dataclass(frozen=True)
class Summary:
    """What a backup wrote, or what a restore or verify read."""

    url: str
    path: str
    plaintext_bytes: int
    stored_bytes: int
    sha256: str
    duration_seconds: float
    compressed: bool
    encrypted: bool

    def outputs(self) -> dict[str, str]:
        """One value per Argo output parameter (``--outputs DIR`` writes a file for each)."""
        values = {
            Output.PATH: self.path,
            Output.URL: self.url,
            Output.SIZE_IN_BYTES: str(self.stored_bytes),
            Output.SIZE: human_bytes(self.stored_bytes),
            Output.PLAINTEXT_BYTES: str(self.plaintext_bytes),
            Output.SHA256: self.sha256,
            Output.DURATION_SECONDS: f"{self.duration_seconds:.3f}",
            Output.COMPRESSED: str(self.compressed).lower(),
            Output.ENCRYPTED: str(self.encrypted).lower(),
        }
        return {name: values[name] for name in OUTPUTS}

    def as_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "path": self.path,
            "plaintextBytes": self.plaintext_bytes,
            "storedBytes": self.stored_bytes,
            "size": human_bytes(self.stored_bytes),
            "sha256": self.sha256,
            "durationSeconds": round(self.duration_seconds, 3),
            "compressed": self.compressed,
            "encrypted": self.encrypted,
        }


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int | None: ...


class _Deadline:
    """Kills the command when the deadline passes; :meth:`check` then raises."""

    def __init__(self, command: Command, seconds: float | None) -> None:
        self._command = command
        self._seconds = seconds
        self.expired = False
        self._timer: threading.Timer | None = None
        if seconds is not None:
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True

    def _fire(self) -> None:
        self.expired = True
        _LOG.error("deadline of %ss passed: killing the command", self._seconds)
        self._command.kill()

    def check(self) -> None:
        if self.expired:
            raise DeadlineExceeded(
                f"the command did not finish within its deadline of {self._seconds:g}s "
                "and was killed; raise --deadline if it needs longer",
                exit_code=DEADLINE_EXIT_CODE,
            )

    def __enter__(self) -> _Deadline:
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if exc is not None and not isinstance(exc, DeadlineExceeded):
            # A stream broken by the kill is reported as what it is: the deadline.
            self.check()


class _CommandReader:
    """The command's stdout as a reader, counting plaintext bytes."""

    def __init__(self, command: Command, progress: Progress) -> None:
        self._command = command
        self._progress = progress
        self._buffer = bytearray(CHUNK)

    def readinto(self, buffer: memoryview) -> int:
        n = self._command.readinto(buffer)
        self._progress.add(n)
        return n

    def read(self, size: int = -1) -> bytes:
        view = memoryview(self._buffer)[: size if 0 < size < CHUNK else CHUNK]
        return bytes(view[: self.readinto(view)])


class _HashingWriter:
    """Passes writes on, hashing and counting them (the stored bytes)."""

    def __init__(self, inner: _Writable) -> None:
        self._inner = inner
        self.sha256 = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha256.update(data)
        self.count += len(data)
        self._inner.write(data)
        return len(data)


class _HashingReader:
    """Reads the stored object, hashing and counting it, with a look-ahead for sniffing."""

    def __init__(self, inner: ObjectReader, progress: Progress) -> None:
        self._inner = inner
        self._progress = progress
        self.sha256 = hashlib.sha256()
        self.count = 0
        self._peeked = b""

    def peek(self, size: int) -> bytes:
        """Up to ``size`` first bytes, without consuming them (call before any read)."""
        while len(self._peeked) < size:
            more = self._read_inner(size - len(self._peeked))
            if not more:
                break
            self._peeked += more
        return self._peeked[:size]

    def _read_inner(self, size: int) -> bytes:
        buffer = bytearray(size)
        n = self._inner.readinto(buffer)
        if n:
            del buffer[n:]
            self.sha256.update(buffer)
            self.count += n
            self._progress.add(n)
            return bytes(buffer)
        return b""

    def read(self, size: int = -1) -> bytes:
        if self._peeked:
            out, self._peeked = self._peeked, b""
            return out
        return self._read_inner(size if size > 0 else CHUNK)


class _CommandWriter:
    """The command's stdin as a writer, counting plaintext bytes."""

    def __init__(self, command: Command) -> None:
        self._command = command
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self._command.write(data)
        self.count += len(data)
        return len(data)


class _DiscardWriter:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        self.count += len(data)
        return len(data)


class _Decompressing:
    """Plaintext side of restore: gunzips when the data is gzip (or when told to)."""

    def __init__(self, sink: _Writable, compression: Compression, what: str) -> None:
        self._sink = sink
        self._mode = compression
        self._what = what
        self._head = b""
        self._target: _Writable | GunzipWriter | None = None
        self.compressed = False

    def _choose(self) -> _Writable | GunzipWriter:
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


def _copy(reader: _HashingReader | ReadAhead, writer: _Writable) -> None:
    while chunk := reader.read(CHUNK):
        writer.write(chunk)


def _failed(status: ExitStatus, action: str) -> CommandFailed:
    return CommandFailed(f"the {action} command failed ({status.reason})", exit_code=status.code)


def backup(
    runner: Runner, argv: Sequence[str], storage: Storage, key: str, options: BackupOptions
) -> Summary:
    """Run ``argv`` and store its stdout under ``key``; the object exists only on success."""
    url = storage.url(key)
    progress = Progress("backup")
    writer = storage.open_writer(key)  # fails fast on a bad bucket, before the command runs
    with writer:
        stored = _HashingWriter(writer)
        with (
            runner.start(argv, Mode.BACKUP) as command,
            _Deadline(command, options.deadline) as deadline,
        ):
            plain = _CommandReader(command, progress)
            staged = GzipReader(plain, options.level) if options.compress else plain
            with ReadAhead(staged, CHUNK) as data:
                if options.recipients:
                    age.encrypt(data, stored, options.recipients)
                else:
                    _copy(data, stored)
            status = command.wait()
            deadline.check()
            if not status.ok:
                raise _failed(status, "backup")
    progress.finish()
    summary = Summary(
        url=url,
        path=key,
        plaintext_bytes=progress.done,
        stored_bytes=stored.count,
        sha256=stored.sha256.hexdigest(),
        duration_seconds=progress.elapsed,
        compressed=options.compress,
        encrypted=bool(options.recipients),
    )
    _LOG.info(
        "backup stored %s: %s from %s of data in %.1fs",
        url,
        human_bytes(summary.stored_bytes),
        human_bytes(summary.plaintext_bytes),
        summary.duration_seconds,
    )
    return summary


def _inspect_stored(
    reader: ObjectReader, url: str, options: RestoreOptions, action: str
) -> tuple[_HashingReader, bool, Progress]:
    progress = Progress(action, total=reader.size)
    stored = _HashingReader(reader, progress)
    head = stored.peek(max(len(age.AGE_MAGIC), len(age.ARMOR_MAGIC)))
    encrypted = head.startswith((age.AGE_MAGIC, age.ARMOR_MAGIC))
    if encrypted and not options.identities:
        raise EncryptionError(
            f"{url} is encrypted with age: pass the identity that decrypts it "
            "with -i/--identity FILE or the AGE_IDENTITY environment variable"
        )
    return stored, encrypted, progress


def _stream_plaintext(
    stored: _HashingReader,
    encrypted: bool,
    sink: _Writable,
    options: RestoreOptions,
    what: str,
) -> bool:
    """Decrypt/decompress ``stored`` into ``sink``; return whether it was gzip.

    Decryption runs in this thread; decompression and the writes to ``sink`` run in a
    write-behind thread, so on two cores the two halves overlap.
    """
    plain = _Decompressing(sink, options.compression, what)
    behind = WriteBehind(plain)
    try:
        gathered = Coalesce(behind, CHUNK)
        if encrypted:
            age.decrypt(stored, gathered, options.identities, what)
        else:
            _copy(stored, gathered)
        gathered.flush()
    except BaseException:
        behind.abandon()
        raise
    behind.close()
    plain.finish()
    return plain.compressed


def restore(
    storage: Storage, key: str, runner: Runner, argv: Sequence[str], options: RestoreOptions
) -> Summary:
    """Feed the object under ``key`` to ``argv``'s stdin; succeed only if it exits 0."""
    url = storage.url(key)
    with storage.open_reader(key) as reader:
        stored, encrypted, progress = _inspect_stored(reader, url, options, "restore")
        with (
            runner.start(argv, Mode.RESTORE) as command,
            _Deadline(command, options.deadline) as deadline,
        ):
            sink = _CommandWriter(command)
            try:
                compressed = _stream_plaintext(stored, encrypted, sink, options, url)
            except StdinClosed:
                # The command stopped reading: what it says about why is its exit status.
                status = command.wait()
                deadline.check()
                if status.ok:
                    raise CommandFailed(
                        f"the restore command exited 0 before reading the whole backup "
                        f"(it read {human_bytes(sink.count)}); the restore is incomplete",
                        exit_code=1,
                    ) from None
                raise _failed(status, "restore") from None
            except BaseException:
                # A broken stream must not look like a complete input: stop the command
                # before it can see the end of its input (close() closes stdin afterwards).
                command.kill()
                raise
            command.close_stdin()
            status = command.wait()
            deadline.check()
            if not status.ok:
                raise _failed(status, "restore")
    progress.finish()
    _LOG.info("restored %s: %s of data", url, human_bytes(sink.count))
    return Summary(
        url=url,
        path=key,
        plaintext_bytes=sink.count,
        stored_bytes=stored.count,
        sha256=stored.sha256.hexdigest(),
        duration_seconds=progress.elapsed,
        compressed=compressed,
        encrypted=encrypted,
    )


def verify(storage: Storage, key: str, options: RestoreOptions) -> Summary:
    """Read, decrypt and decompress the object, checking every layer; restore nothing."""
    url = storage.url(key)
    sink = _DiscardWriter()
    with storage.open_reader(key) as reader:
        stored, encrypted, progress = _inspect_stored(reader, url, options, "verify")
        compressed = _stream_plaintext(stored, encrypted, sink, options, url)
    progress.finish()
    digest = stored.sha256.hexdigest()
    if options.expected_sha256 and options.expected_sha256.lower() != digest:
        raise IntegrityError(
            f"{url} has SHA-256 {digest}, not the expected {options.expected_sha256.lower()}: "
            "the object was changed or replaced after the backup"
        )
    return Summary(
        url=url,
        path=key,
        plaintext_bytes=sink.count,
        stored_bytes=stored.count,
        sha256=digest,
        duration_seconds=progress.elapsed,
        compressed=compressed,
        encrypted=encrypted,
    )
