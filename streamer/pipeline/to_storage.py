"""Backup: a command's stdout through gzip and age into a new object, stored only on success."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamer.errors import StreamerError
from streamer.pipeline.adapters import CHUNK, CommandReader, HashingWriter, copy, wait_status
from streamer.pipeline.model import BackupOptions, Summary
from streamer.pipeline.outcome import Action, Broken, Complete, Stream, decide
from streamer.pipeline.stop import Stop
from streamer.progress import Progress, human_bytes
from streamer.sources.base import Command, Mode, Runner
from streamer.stages import age
from streamer.stages.buffering import ReadAhead
from streamer.stages.gzip import GzipReader
from streamer.storage.base import Storage

__all__ = ["backup"]

_LOG = logging.getLogger("streamer")


def backup(
    runner: Runner,
    argv: Sequence[str],
    storage: Storage,
    key: str,
    options: BackupOptions,
    stop: Stop | None = None,
) -> Summary:
    """Run ``argv`` and store its stdout under ``key``; the object exists only on success.

    ``stop`` carries termination signals in (the CLI's); a signal before the object is
    committed aborts the upload and raises :class:`~streamer.errors.Interrupted`.
    """
    stop = stop or Stop()
    url = storage.url(key)
    progress = Progress("backup")
    writer = storage.open_writer(key)  # fails fast on a bad bucket, before the command runs
    with writer:  # commits on a clean exit, aborts on any exception
        stop.check(Action.BACKUP)
        stored = HashingWriter(writer, stop)
        with runner.start(argv, Mode.BACKUP) as command, stop.watching(command, options.deadline):
            stream = _store_output(command, stored, options, progress, stop)
            status, stream = wait_status(command, stream)
        error = decide(
            Action.BACKUP,
            status,
            stream,
            deadline=stop.deadline,
            signum=stop.signal,
            output_cut=stop.deadline_cut_output,
        )
        if error is not None:
            raise error
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
        lock=writer.lock,
    )
    _LOG.info(
        "backup stored %s: %s from %s of data in %.1fs",
        url,
        human_bytes(summary.stored_bytes),
        human_bytes(summary.plaintext_bytes),
        summary.duration_seconds,
    )
    return summary


def _store_output(
    command: Command,
    stored: HashingWriter,
    options: BackupOptions,
    progress: Progress,
    stop: Stop,
) -> Stream:
    plain = CommandReader(command, progress, stop)
    staged = GzipReader(plain, options.level) if options.compress else plain
    try:
        with ReadAhead(staged, CHUNK) as data:
            if options.recipients:
                age.encrypt(data, stored, options.recipients)
            else:
                copy(data, stored)
    except StreamerError as exc:
        command.kill()  # a command still writing would otherwise wait for a reader forever
        return Broken(exc)
    return Complete()
