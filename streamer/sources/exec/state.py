"""How far an exec connection has got, decided once, so errors are judged by state, not type.

The frame loop, the stdin sender, the keep-alive pinger, and :meth:`ExecCommand.kill` all run
in different threads over one socket. The first of them to see the stream end records how it
ended here, under a lock; everyone else asks. After our own kill() or close(), or after the
pinger declared the peer dead, the socket fails in whatever way websocket-client and ssl fail
when a socket is shut down under them (``WebSocketConnectionClosedException``, ``OSError``,
``ValueError``, ``AttributeError`` on a ``None`` socket): any of these is expected then, and
only then. While the connection is :attr:`Phase.OPEN`, a socket error means the connection
was lost, and any other exception is a bug.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

from streamer.sources.base import ExitStatus

__all__ = ["ConnectionState", "Ending", "Phase"]


class Phase(enum.Enum):
    OPEN = "open"  #: frames flow; an error from the socket is news
    FINISHED = "finished"  #: the Status arrived: an exit status, or the server's failure
    KILLED = "killed"  #: kill() or close() is closing the connection
    LOST = "lost"  #: it ended without a Status: closed by the peer, broken, or silent
    BROKEN = "broken"  #: an unexpected exception in the streamer ended it


@dataclass(frozen=True)
class Ending:
    """How the stream ended; only the fields of its phase are set."""

    phase: Phase
    status: ExitStatus | None = None  #: FINISHED with an exit code
    failure: str | None = None  #: FINISHED: the server's message for a failure with no code
    reason: str | None = None  #: LOST: why, for the error message
    bug: BaseException | None = None  #: BROKEN: the exception


class ConnectionState:
    """The phase of one exec connection: OPEN until the first ending, which is final."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ending: Ending | None = None
        #: Set once the stream has ended, for threads that wait for that.
        self.ended = threading.Event()

    @property
    def phase(self) -> Phase:
        with self._lock:
            return Phase.OPEN if self._ending is None else self._ending.phase

    @property
    def ending(self) -> Ending | None:
        with self._lock:
            return self._ending

    @property
    def is_open(self) -> bool:
        return self.phase is Phase.OPEN

    def finish(self, status: ExitStatus | None, failure: str | None) -> bool:
        return self._end(Ending(Phase.FINISHED, status=status, failure=failure))

    def kill(self) -> bool:
        return self._end(Ending(Phase.KILLED))

    def lose(self, reason: str) -> bool:
        return self._end(Ending(Phase.LOST, reason=reason))

    def break_down(self, bug: BaseException) -> bool:
        return self._end(Ending(Phase.BROKEN, bug=bug))

    def _end(self, ending: Ending) -> bool:
        """Record ``ending`` unless the stream already ended; return whether this one counted."""
        with self._lock:
            if self._ending is not None:
                return False
            self._ending = ending
        self.ended.set()
        return True
