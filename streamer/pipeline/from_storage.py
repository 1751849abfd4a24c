"""Restore and verify: a stored object through age and gunzip, into a command or nowhere.

Both find out from the bytes whether the object is encrypted (the age header) and compressed
(the gzip magic), so a user never has to say how a backup was written. A restore given a
:class:`~streamer.pipeline.model.Check` runs it once the restore command has exited 0 and the
whole stream was read and verified (age's tags, gzip's trailer); only its exit 0 completes the
restore, which is how a restore drill proves a backup restores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamer.errors import (
    EncryptionError,
    IntegrityError,
    SourceError,
    StdinClosed,
    StreamerError,
)
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
from streamer.pipeline.model import Check, RestoreOptions, Summary
from streamer.pipeline.outcome import (
    Action,
    Broken,
    Complete,
    StoppedReading,
    Stream,
    check_interrupted,
    decide,
    decide_check,
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
    check: Check | None = None,
) -> Summary:
    """Feed the object under ``key`` to ``argv``'s stdin; succeed only if it exits 0, and
    then only if ``check`` (when given) exits 0 too.

    How the restore ends (its exit code and message) is :func:`~streamer.pipeline.outcome.decide`'s
    call, from the command's exit status, the stream, the deadline and ``stop``'s signal; how
    its check ends, :func:`~streamer.pipeline.outcome.decide_check`'s. The deadline covers both.
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
    if check is not None:
        _run_check(check, stop, options.deadline)
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
        mismatch = _digest_mismatch(stored, options, url)
        if mismatch is not None:
            raise mismatch  # before the command sees the end of its input
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


def _run_check(check: Check, stop: Stop, deadline: float | None) -> None:
    """Run the restore's check in CHECK mode (its output goes to the log); raise unless it
    exits 0. The check's argv is never logged: it may hold a password."""
    if stop.signal is not None:
        raise check_interrupted(stop.signal)
    _LOG.info("checking the restore with %s", check.argv[0] if check.argv else "nothing")
    try:
        with (
            check.runner.start(check.argv, Mode.CHECK) as command,
            stop.watching(command, deadline),
        ):
            status = command.wait()
            last_line = command.last_stderr_line()
    except SourceError as exc:
        raise SourceError(f"the backup was restored, but its check could not run: {exc}") from exc
    error = decide_check(status, last_line, deadline=stop.deadline, signum=stop.signal)
    if error is not None:
        raise error
    _LOG.info("the restore passed its check")


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
    mismatch = _digest_mismatch(stored, options, url)
    if mismatch is not None:
        raise mismatch
    digest = stored.sha256.hexdigest()
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


def _digest_mismatch(
    stored: HashingReader, options: RestoreOptions, url: str
) -> IntegrityError | None:
    """The error of a stored object read whole whose SHA-256 is not the expected one."""
    digest = stored.sha256.hexdigest()
    if not options.expected_sha256 or options.expected_sha256.lower() == digest:
        return None
    return IntegrityError(
        f"{url} has SHA-256 {digest}, not the expected {options.expected_sha256.lower()}: "
        "the object was changed or replaced after the backup"
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
