"""Stopping a run early, on a termination signal or at the deadline, at defined points.

Argo stops a step with SIGTERM, then SIGKILL once the grace period is over. A signal must never
unwind the stack from wherever the main thread happens to be (half-way through aborting an
upload, say): it is a *request*. :meth:`Stop.request_signal` records the first one and kills
the running command (the Command contract makes :meth:`~Command.kill` thread-safe and
idempotent); the pipeline looks at the request at defined points (before the command starts,
before each chunk it passes on, once the command has exited) and ends the run through its
ordinary error path, so the storage writer aborts exactly once. Later signals change nothing.

The deadline kills the command the same way. It is one for the whole run: it starts with the
first command watched, and a later one (a restore's check) gets what is left of it. Whether it
*counts* is decided afterwards, from what the kill cut short, never from the timer having
fired: a command that exits 0 just as the deadline passes has succeeded. The kill came first
when it ended the command (:attr:`ExitStatus.killed`), or when a backup's output had not yet
ended: a shell that exited 0 while a process it started in the background still wrote its
stdout was cut off mid-stream.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from streamer.pipeline.outcome import Action, interrupted, signal_name
from streamer.sources.base import Command

__all__ = ["Stop"]

_LOG = logging.getLogger("streamer")


class Stop:
    """The stop requests of one run: its first termination signal, and its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signal: int | None = None
        self._repeats = 0
        self._deadline: float | None = None
        self._deadline_at: float | None = None  # when the deadline passes (time.monotonic)
        self._output_ended = False
        self._deadline_cut_output = False
        self._command: Command | None = None

    @property
    def signal(self) -> int | None:
        """The first termination signal that arrived, if any."""
        return self._signal

    @property
    def deadline(self) -> float | None:
        """The command's deadline in seconds, when it passed before any signal arrived."""
        return self._deadline

    @property
    def deadline_cut_output(self) -> bool:
        """Whether the deadline's kill came before the end of the command's output."""
        return self._deadline_cut_output

    def output_ended(self) -> None:
        """Record that the command's output reached its end (called from any thread)."""
        with self._lock:
            self._output_ended = True

    def request_signal(self, signum: int) -> None:
        """Ask the run to stop: the first call kills the command; later ones change nothing.

        Thread-safe. It takes a lock, so a signal handler must not call it directly (the
        handler may have interrupted the very thread that holds it): the CLI hands signals to
        a thread of its own.
        """
        with self._lock:
            first = self._signal is None
            if first:
                self._signal = signum
            else:
                self._repeats += 1
            command = self._command if first else None
            repeats = self._repeats
        if first:
            _LOG.warning(
                "%s received: stopping (the command is killed; nothing incomplete is kept)",
                signal_name(signum),
            )
            if command is not None:
                command.kill()
        elif repeats == 1:
            _LOG.warning("%s received again: already stopping", signal_name(signum))

    def check(self, action: Action) -> None:
        """Raise :class:`~streamer.errors.Interrupted` if a signal asked ``action`` to stop."""
        signum = self._signal
        if signum is not None:
            raise interrupted(action, signum)

    @contextlib.contextmanager
    def watching(self, command: Command, deadline: float | None) -> Iterator[None]:
        """While inside, a stop request kills ``command``, and so does the run's ``deadline``.

        The deadline's clock starts with the first command watched; a later command gets
        what is left of it (nothing left: it is killed at once).
        """
        with self._lock:
            self._command = command
            already = self._signal is not None
            now = time.monotonic()
            if deadline is not None and self._deadline_at is None:
                self._deadline_at = now + deadline
            left = None if self._deadline_at is None else max(0.0, self._deadline_at - now)
        if already:
            command.kill()
        timer = None
        if deadline is not None and left is not None:
            timer = threading.Timer(left, self._deadline_passed, args=(command, deadline))
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._command = None

    def _deadline_passed(self, command: Command, seconds: float) -> None:
        with self._lock:
            if self._signal is None and self._deadline is None:
                self._deadline = seconds
                self._deadline_cut_output = not self._output_ended
        _LOG.error("deadline of %gs passed: killing the command", seconds)
        command.kill()
