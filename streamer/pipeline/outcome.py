"""How a run ends, decided in one place: what happened in, exit code and message out.

A run's end has four inputs, each recorded by the pipeline as plain data:

- the command's exit status, or ``None`` when it has none (it never started, or its status is
  unknown); :attr:`ExitStatus.killed` says whether our own kill ended it;
- what became of the stream: :class:`Complete`, :class:`StoppedReading` (a restore command
  closed its input early) or :class:`Broken` (with the error that broke it);
- the deadline, when it passed before any signal arrived;
- the first termination signal, when one arrived before the decision.

:func:`decide` turns them into the error the run ends with (its message and exit code are
what the user sees), or ``None`` for a success, by these rules in order:

1. the deadline counts only if its kill came first: it ended the command, or it cut a backup's
   output short (a shell that exited 0 while its background job still wrote): 124 (as
   coreutils' ``timeout``);
2. a signal stops the run (128 + N) unless the command's own ending already decided it: a
   command that failed on its own reports its failure, and a restore whose command read its
   whole input and exited 0 is complete. A backup is complete only once its object is stored,
   so a signal before that always stops it;
3. a broken stream reports what broke it;
4. otherwise the command's exit status decides: a restore exits with its command's code, and a
   restore command that exited 0 without reading all of its input has not restored the backup.

A signal that arrives after the decision finds the run complete: :func:`completed_note` says so.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from streamer.errors import CommandFailed, DeadlineExceeded, Interrupted, StreamerError
from streamer.progress import human_bytes
from streamer.sources.base import ExitStatus

__all__ = [
    "DEADLINE_EXIT_CODE",
    "Action",
    "Broken",
    "Complete",
    "StoppedReading",
    "Stream",
    "completed_note",
    "decide",
    "interrupted",
    "signal_name",
]

#: The exit code of a run stopped by its deadline (as coreutils' ``timeout``).
DEADLINE_EXIT_CODE = 124


class Action(enum.Enum):
    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"


@dataclass(frozen=True)
class Complete:
    """Every byte was passed on: a backup read the output to its end; a restore wrote all of
    its input and closed the command's stdin."""


@dataclass(frozen=True)
class StoppedReading:
    """The restore command closed its input after ``bytes_read`` bytes."""

    bytes_read: int


@dataclass(frozen=True)
class Broken:
    """The stream failed: storage, decryption, decompression, the connection, or a stop."""

    error: StreamerError


Stream = Complete | StoppedReading | Broken


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_INCOMPLETE = {
    Action.BACKUP: "nothing was stored",
    Action.RESTORE: "the restore is incomplete",
    Action.VERIFY: "nothing was verified",
}


def interrupted(action: Action, signum: int, *, killed: bool = False) -> Interrupted:
    """The error of a run that ``signum`` stopped before it was complete."""
    how = f"; the {action.value} command was killed" if killed else ""
    return Interrupted(
        f"stopped by {signal_name(signum)} before the {action.value} was complete{how}: "
        f"{_INCOMPLETE[action]}",
        signum=signum,
    )


def decide(
    action: Action,
    status: ExitStatus | None,
    stream: Stream,
    *,
    deadline: float | None,
    signum: int | None,
    output_cut: bool = False,
) -> StreamerError | None:
    """How a backup (before its object is committed) or a restore (once its command has
    exited) ends: the error to raise, or None. Pure: the same inputs give the same answer.

    ``output_cut``: the deadline's kill came before the end of the command's output.
    """
    killed = status is not None and status.killed
    if deadline is not None and (killed or output_cut):
        return DeadlineExceeded(
            f"the {action.value} command did not finish within its deadline of "
            f"{deadline:g}s and was killed: {_INCOMPLETE[action]}; raise --deadline if it "
            "needs longer",
            exit_code=DEADLINE_EXIT_CODE,
        )
    if signum is not None and not _decided_by_command(action, status, stream):
        return interrupted(action, signum, killed=killed)
    if isinstance(stream, Broken):
        return stream.error
    if status is None:
        # The pipeline reports a missing status as a broken stream; this is the fallback.
        return CommandFailed(f"the {action.value} command has no exit status", exit_code=1)
    if not status.ok:
        consequence = "; nothing was stored" if action is Action.BACKUP else ""
        return CommandFailed(
            f"the {action.value} command failed ({status.reason}){consequence}",
            exit_code=status.code,
        )
    if isinstance(stream, StoppedReading):
        return CommandFailed(
            f"the restore command exited 0 before reading the whole backup (it read "
            f"{human_bytes(stream.bytes_read)}): the restore is incomplete",
            exit_code=1,
        )
    return None


def _decided_by_command(action: Action, status: ExitStatus | None, stream: Stream) -> bool:
    """Whether the command's own ending settles the run, whatever signal came after it."""
    if status is None or status.killed:
        return False
    if not status.ok:
        return True
    return action is Action.RESTORE and not isinstance(stream, Broken)


def completed_note(action: Action, signum: int, url: str) -> str:
    """What to say when a signal arrived after the run's outcome was settled successfully."""
    done = {
        Action.BACKUP: "stored: the backup",
        Action.RESTORE: "restored: the restore",
        Action.VERIFY: "verified: the verification",
    }
    return f"{signal_name(signum)} arrived after {url} was {done[action]} is complete"
