"""Termination signals as stop requests: SIGTERM and SIGINT never raise in the main thread.

Argo stops a step with SIGTERM (its deadline, ``argo stop``, a node drain) and sends SIGKILL
once the grace period is over. A Python signal handler runs in the main thread between two
bytecodes, wherever that thread is: half-way through aborting an upload, or holding a lock the
handler itself would need. So the handler here does nothing. The interpreter's own C-level
handler writes the signal's number to a pipe (:func:`signal.set_wakeup_fd`), even while the main
thread is busy in C code, and a thread of our own reads it and calls
:meth:`~streamer.pipeline.stop.Stop.request_signal`, which kills the running command; the
pipeline then ends the run at its next defined point. Later signals change nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from streamer.pipeline import Stop

__all__ = ["SIGNALS", "stop_on_signals"]

#: The signals that stop a run.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Nothing: the wakeup pipe carries the signal to the watcher thread."""


def _watch(fd: int, stop: Stop) -> None:
    while data := os.read(fd, 64):  # b"" once the write end is closed
        for signum in data:
            if signum in SIGNALS:
                stop.request_signal(signum)


@contextlib.contextmanager
def stop_on_signals(stop: Stop, *, restore: bool = True) -> Iterator[Stop]:
    """While inside, SIGTERM and SIGINT become requests to ``stop`` (main thread only).

    Every signal that arrived before leaving has been handed to ``stop`` once this returns.
    Then the previous handlers come back, unless ``restore`` is false: a process that exits
    right after ignores the signals from then on (``SIG_IGN``, which the interpreter keeps
    while it shuts down), so one in its last instants cannot kill it with an exit code other
    than the one its run decided.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread's handlers: nothing to install
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block
    watcher = threading.Thread(target=_watch, args=(read_fd, stop), name="signals", daemon=True)
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        previous = {signum: signal.signal(signum, _ignore) for signum in SIGNALS}
        try:
            yield stop
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler if restore else signal.SIG_IGN)
    finally:
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)
        watcher.join()
        os.close(read_fd)
