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

A restore given a check is complete only once the check has passed; :func:`decide_check`
judges the check's ending by the same rules (its deadline's kill, then a signal, then its exit
status). A run that fails reports why, for ``--outputs``: :func:`failure_outputs` maps each
error to one of the contract's :data:`~streamer.contract.FAILURES`, in this one place.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from streamer.contract import Failure, Output
from streamer.errors import (
    CheckFailed,
    CommandFailed,
    CompressionError,
    ConfigError,
    DeadlineExceeded,
    EncryptionError,
    IntegrityError,
    Interrupted,
    ObjectNotFound,
    SourceError,
    StorageError,
    StreamerError,
)
from streamer.progress import human_bytes
from streamer.sources.base import ExitStatus

__all__ = [
    "DEADLINE_EXIT_CODE",
    "MAX_FAILURE_MESSAGE",
    "Action",
    "Broken",
    "Complete",
    "StoppedReading",
    "Stream",
    "check_interrupted",
    "completed_note",
    "decide",
    "decide_check",
    "failure_of",
    "failure_outputs",
    "interrupted",
    "signal_name",
    "truncate_utf8",
]

#: The exit code of a run stopped by its deadline (as coreutils' ``timeout``).
DEADLINE_EXIT_CODE = 124
#: ``--outputs DIR/failureMessage`` holds at most this many bytes (UTF-8) of the message.
MAX_FAILURE_MESSAGE = 4096


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


# --- a restore's check ------------------------------------------------------------------------

_UNCHECKED = "the backup was restored, but not checked"


def check_interrupted(signum: int, *, killed: bool = False) -> Interrupted:
    """The error of a restore that ``signum`` stopped before its check had passed."""
    how = "; the check command was killed" if killed else ""
    return Interrupted(
        f"stopped by {signal_name(signum)} before the restore's check was complete{how}: "
        f"{_UNCHECKED}",
        signum=signum,
    )


def decide_check(
    status: ExitStatus, last_stderr_line: str, *, deadline: float | None, signum: int | None
) -> StreamerError | None:
    """How a restore's check ends: the error to raise, or None when it passed. Pure.

    The deadline (one for the restore and its check together) and a signal count only if
    their kill ended the check; a check that ended on its own is judged by its exit status,
    and a failed one quotes the last line of its stderr, which usually says why.
    """
    if deadline is not None and status.killed:
        return DeadlineExceeded(
            f"the check command did not finish within the deadline of {deadline:g}s, which "
            f"covers the restore and its check, and was killed: {_UNCHECKED}; raise "
            "--deadline if they need longer",
            exit_code=DEADLINE_EXIT_CODE,
        )
    if signum is not None and status.killed:
        return check_interrupted(signum, killed=True)
    if status.ok:
        return None
    details = [] if status.reason == f"exit code {status.code}" else [status.reason]
    details.append(
        f"its last stderr line: {last_stderr_line!r}" if last_stderr_line else "no stderr"
    )
    return CheckFailed(
        "the backup was restored, but did not pass its check: the check command exited with "
        f"{status.code} ({'; '.join(details)})",
        exit_code=status.code,
    )


# --- why a run failed, for --outputs ----------------------------------------------------------

#: Each error class's reason; an error takes its nearest class's (see failure_of).
_FAILURES: dict[type[StreamerError], str] = {
    IntegrityError: Failure.DIGEST_MISMATCH,
    EncryptionError: Failure.DECRYPT_FAILED,
    CompressionError: Failure.DECOMPRESS_FAILED,
    CheckFailed: Failure.CHECK_FAILED,
    # The contract's SourceFailed includes hitting the deadline, the restore's or the check's.
    DeadlineExceeded: Failure.SOURCE_FAILED,
    CommandFailed: Failure.COMMAND_FAILED,
    SourceError: Failure.SOURCE_FAILED,  # StdinClosed too: the command was no longer reached
    ObjectNotFound: Failure.NOT_FOUND,
    StorageError: Failure.STORAGE_FAILED,
    Interrupted: Failure.INTERRUPTED,
    ConfigError: Failure.CONFIG,
    # The only plain StreamerError: the summary cannot be written to --outputs DIR, a flag
    # that names a directory the run cannot write (the same write is then likely to fail).
    StreamerError: Failure.CONFIG,
}


def failure_of(error: StreamerError) -> str:
    """The contract's reason for ``error`` (one of FAILURES): that of its nearest class."""
    for cls in type(error).__mro__:
        if cls in _FAILURES:
            return _FAILURES[cls]
    return _FAILURES[StreamerError]  # every StreamerError has StreamerError in its MRO


def failure_outputs(error: StreamerError) -> dict[str, str]:
    """The files ``--outputs DIR`` gets on failure (FAILURE_OUTPUTS): why, and the message."""
    return {
        Output.FAILURE: failure_of(error),
        Output.FAILURE_MESSAGE: truncate_utf8(str(error), MAX_FAILURE_MESSAGE),
    }


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` bytes of UTF-8, never cutting a character in two; a cut
    text ends with an ellipsis. What cannot be encoded (a lone surrogate) becomes '?'."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    ellipsis = "…".encode()
    if limit < len(ellipsis):
        return data[:limit].decode("utf-8", "ignore")
    return (data[: limit - len(ellipsis)] + ellipsis).decode("utf-8", "ignore")
