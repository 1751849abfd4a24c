"""Restore and verify: a stored object through age and gunzip, into a command or nowhere.

Both find out from the bytes whether the object is encrypted (the age header) and compressed
(the gzip magic), so a user never has to say how a backup was written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamer.errors import EncryptionError, IntegrityError, StdinClosed, StreamerError
from streamer.pipeline.adapters import (
    CHUNK,
    CommandWriter,
    Decompressing,
    DiscardWriter,
    HashingReader,
    Writable,
    copy,
    wait_status,
)
from streamer.pipeline.model import RestoreOptions, Summary
from streamer.pipeline.outcome import (
    Action,
    Broken,
    Complete,
    StoppedReading,
    Stream,
    decide,
)
from streamer.pipeline.stop import Stop
from streamer.progress import Progress, human_bytes
from streamer.sources.base import Command, Mode, Runner
from streamer.stages import age
from streamer.stages.buffering import Coalesce, WriteBehind
from streamer.storage.base import ObjectReader, Storage

__all__ = ["restore", "verify"]

_LOG = logging.getLogger("streamer")


def restore(
    storage: Storage,
    key: str,
    runner: Runner,
    argv: Sequence[str],
    options: RestoreOptions,
    stop: Stop | None = None,
) -> Summary:
    """Feed the object under ``key`` to ``argv``'s stdin; succeed only if it exits 0.

    How the restore ends (its exit code and message) is :func:`~streamer.pipeline.outcome.decide`'s
    call, from the command's exit status, the stream, the deadline and ``stop``'s signal.
    """
    stop = stop or Stop()
    url = storage.url(key)
    with storage.open_reader(key) as reader:
        stored, encrypted, progress = _inspect_stored(reader, url, options, Action.RESTORE, stop)
        stop.check(Action.RESTORE)
        with runner.start(argv, Mode.RESTORE) as command, stop.watching(command, options.deadline):
            sink = CommandWriter(command)
            stream, compressed = _feed(command, stored, encrypted, sink, options, url)
            status, stream = wait_status(command, stream)
        error = decide(Action.RESTORE, status, stream, deadline=stop.deadline, signum=stop.signal)
        if error is not None:
            raise error
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


def _feed(
    command: Command,
    stored: HashingReader,
    encrypted: bool,
    sink: CommandWriter,
    options: RestoreOptions,
    url: str,
) -> tuple[Stream, bool]:
    """Write the plaintext to the command's stdin; return how the stream ended, and whether
    it was gzip."""
    try:
        compressed = _stream_plaintext(stored, encrypted, sink, options, url)
    except StdinClosed:
        return StoppedReading(sink.count), False  # what it says about why is its exit status
    except BaseException as exc:
        # A broken stream must not look like a complete input: stop the command before it
        # can see the end of its input (closing the command closes stdin afterwards).
        command.kill()
        if isinstance(exc, StreamerError):
            return Broken(exc), False
        raise
    command.close_stdin()
    return Complete(), compressed


def verify(
    storage: Storage, key: str, options: RestoreOptions, stop: Stop | None = None
) -> Summary:
    """Read, decrypt and decompress the object, checking every layer; restore nothing."""
    stop = stop or Stop()
    url = storage.url(key)
    sink = DiscardWriter()
    with storage.open_reader(key) as reader:
        stored, encrypted, progress = _inspect_stored(reader, url, options, Action.VERIFY, stop)
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


def _inspect_stored(
    reader: ObjectReader, url: str, options: RestoreOptions, action: Action, stop: Stop
) -> tuple[HashingReader, bool, Progress]:
    progress = Progress(action.value, total=reader.size)
    stored = HashingReader(reader, progress, stop, action)
    head = stored.peek(max(len(age.AGE_MAGIC), len(age.ARMOR_MAGIC)))
    encrypted = head.startswith((age.AGE_MAGIC, age.ARMOR_MAGIC))
    if encrypted and not options.identities:
        raise EncryptionError(
            f"{url} is encrypted with age: pass the identity that decrypts it "
            "with -i/--identity FILE or the AGE_IDENTITY environment variable"
        )
    return stored, encrypted, progress


def _stream_plaintext(
    stored: HashingReader,
    encrypted: bool,
    sink: Writable,
    options: RestoreOptions,
    what: str,
) -> bool:
    """Decrypt/decompress ``stored`` into ``sink``; return whether it was gzip.

    Decryption runs in this thread; decompression and the writes to ``sink`` run in a
    write-behind thread, so on two cores the two halves overlap.
    """
    plain = Decompressing(sink, options.compression, what)
    behind = WriteBehind(plain)
    try:
        gathered = Coalesce(behind, CHUNK)
        if encrypted:
            age.decrypt(stored, gathered, options.identities, what)
        else:
            copy(stored, gathered)
        gathered.flush()
    except BaseException:
        behind.abandon()
        raise
    behind.close()
    plain.finish()
    return plain.compressed
