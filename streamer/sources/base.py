"""The contract between the pipeline and the place a command runs.

A :class:`Runner` starts a command in one of three modes. In ``BACKUP`` mode the pipeline reads
the command's stdout with :meth:`Command.readinto`; its stdin is empty. In ``RESTORE`` mode the
pipeline writes the command's stdin with :meth:`Command.write` and then
:meth:`Command.close_stdin`; its stdout is discarded. In ``CHECK`` mode (a restore's check) the
pipeline uses neither end: stdin is empty and stdout goes to the log, line by line, so the
streamer's own stdout stays clean. In every mode the command's stderr goes to the
``streamer.command`` logger line by line, :meth:`Command.last_stderr_line` keeps the last of
those lines for an error message, and :meth:`Command.wait` gives the exit status.

Implementations must make :meth:`Command.kill` safe to call from another thread at any time
(the deadline and a termination signal do), and must raise :class:`~streamer.errors.SourceError`
from :meth:`Command.wait` when the exit status cannot be known: a stream that ended without one
is never a success. :attr:`ExitStatus.killed` says whether :meth:`Command.kill` is what ended
the command: a command that had already exited when the kill came keeps its own status, so a
deadline that passes just as the command exits 0 does not turn a success into a failure.
"""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "MAX_LINE",
    "MAX_QUOTED_LINE",
    "STDERR_LOGGER",
    "Command",
    "ExitStatus",
    "LineLog",
    "Mode",
    "Runner",
]

#: The logger that receives the command's stderr (and a check's stdout), one record per line.
STDERR_LOGGER = logging.getLogger("streamer.command")
#: A line longer than this is logged in pieces, so an output without newlines cannot grow memory.
MAX_LINE = 64 * 1024
#: The last stderr line an error message quotes is cut to this many characters.
MAX_QUOTED_LINE = 300


class Mode(enum.Enum):
    """Which end of the command the pipeline uses."""

    BACKUP = "backup"  #: read stdout
    RESTORE = "restore"  #: write stdin
    CHECK = "check"  #: neither: stdin is empty, stdout goes to the log


@dataclass(frozen=True)
class ExitStatus:
    """How a command ended."""

    code: int  #: 0 on success; 128 + N when killed by signal N
    reason: str  #: for people: "exit code 3", "killed by signal SIGKILL", the server's message
    #: True only when :meth:`Command.kill` ended the command (it was still running then).
    killed: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0


class Command(abc.ABC):
    """One started command. Use it as a context manager so it is always cleaned up."""

    @abc.abstractmethod
    def readinto(self, buffer: memoryview) -> int:
        """Read stdout into ``buffer``; return the number of bytes, 0 at end of stream."""

    @abc.abstractmethod
    def write(self, data: bytes | memoryview) -> None:
        """Write all of ``data`` to stdin; raise StdinClosed if the command stopped reading."""

    @abc.abstractmethod
    def close_stdin(self) -> None:
        """Signal end of input: the command sees EOF on stdin."""

    @abc.abstractmethod
    def wait(self) -> ExitStatus:
        """Wait for the command to end; raise SourceError if its status cannot be known."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop the command now (thread-safe, idempotent); one that has ended keeps its status."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every resource; kills the command if it is still running."""

    def last_stderr_line(self) -> str:
        """The last non-empty line of stderr, cut to MAX_QUOTED_LINE; "" if there was none.

        Complete once :meth:`wait` has returned.
        """
        return ""

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Runner(Protocol):
    """Starts commands somewhere."""

    def start(self, argv: Sequence[str], mode: Mode) -> Command:
        """Start ``argv``; raise SourceError if it cannot be started."""
        ...


class LineLog:
    """One of a command's outputs into the log, one record per line, keeping the last line.

    A failed check's exit code says that it failed; the last line of its stderr usually says
    why, so the error quotes it. Lines come from one thread; :attr:`last` is read after it.
    """

    def __init__(self) -> None:
        self.last = ""

    def line(self, line: bytes) -> None:
        """Log one line (decoded leniently, newline stripped); an empty one is skipped."""
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        if text:
            STDERR_LOGGER.info("%s", text)
            if len(text) > MAX_QUOTED_LINE:
                text = text[: MAX_QUOTED_LINE - 1] + "…"
            self.last = text
