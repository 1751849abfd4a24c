"""How a run ends, as a table: exit status x stream x deadline x signal -> exit code, message.

The decision is one pure function (:func:`streamer.pipeline.outcome.decide`); every row here is
a way a backup or a restore can end, named by its id.
"""

from __future__ import annotations

import signal

import pytest

from streamer.errors import (
    CommandFailed,
    CompressionError,
    DeadlineExceeded,
    EncryptionError,
    Interrupted,
    SourceError,
    StorageError,
    StreamerError,
)
from streamer.pipeline.outcome import (
    DEADLINE_EXIT_CODE,
    Action,
    Broken,
    Complete,
    StoppedReading,
    Stream,
    completed_note,
    decide,
)
from streamer.sources.base import ExitStatus

BACKUP, RESTORE = Action.BACKUP, Action.RESTORE
TERM, INT = int(signal.SIGTERM), int(signal.SIGINT)

OK = ExitStatus(0, "exit code 0")
EXIT_3 = ExitStatus(3, "exit code 3")
#: Ended by our own kill (the deadline's or a signal's, or because the stream broke).
KILLED = ExitStatus(137, "killed by signal SIGKILL", killed=True)
#: Killed by someone else (the OOM killer): the command's own ending.
OOM = ExitStatus(137, "killed by signal SIGKILL")
COMPLETE = Complete()
STOPPED = StoppedReading(10)
BAD_KEY = Broken(EncryptionError("none of the given identities can decrypt s3://b/k"))
TRUNCATED = Broken(CompressionError("s3://b/k is truncated"))
S3_DOWN = Broken(StorageError("upload_part 3 of s3://b/k failed"))
NO_STATUS = Broken(SourceError("the exit status of the command in pod ns/p is unknown"))
HALTED = Broken(Interrupted("stopped by SIGTERM", signum=TERM))


def row(
    action: Action,
    status: ExitStatus | None,
    stream: Stream,
    deadline: float | None,
    signum: int | None,
    exit_code: int,
    message: str,
    error: type[StreamerError] | None,
    id: str,
):  # type: ignore[no-untyped-def]
    return pytest.param(action, status, stream, deadline, signum, exit_code, message, error, id=id)


TABLE = [
    # --- restore: the command decides ------------------------------------------------------
    row(RESTORE, OK, COMPLETE, None, None, 0, "", None, id="restore-ok"),
    row(RESTORE, EXIT_3, COMPLETE, None, None, 3, "the restore command failed (exit code 3)",
        CommandFailed, id="restore-command-fails"),
    row(RESTORE, OOM, COMPLETE, None, None, 137, "killed by signal SIGKILL", CommandFailed,
        id="restore-command-killed-by-someone-else"),
    row(RESTORE, OK, STOPPED, None, None, 1, "exited 0 before reading the whole backup",
        CommandFailed, id="restore-command-exits-0-early"),
    row(RESTORE, EXIT_3, STOPPED, None, None, 3, "(exit code 3)", CommandFailed,
        id="restore-command-fails-early"),
    # --- restore: the stream breaks ---------------------------------------------------------
    row(RESTORE, KILLED, BAD_KEY, None, None, 1, "none of the given identities",
        EncryptionError, id="restore-wrong-key"),
    row(RESTORE, KILLED, TRUNCATED, None, None, 1, "truncated", CompressionError,
        id="restore-truncated"),
    row(RESTORE, EXIT_3, TRUNCATED, None, None, 1, "truncated", CompressionError,
        id="restore-broken-stream-wins-over-exit-code"),
    row(RESTORE, None, NO_STATUS, None, None, 1, "exit status of the command", SourceError,
        id="restore-no-exit-status"),
    # --- restore: the deadline --------------------------------------------------------------
    row(RESTORE, KILLED, COMPLETE, 5.0, None, DEADLINE_EXIT_CODE,
        "did not finish within its deadline of 5s", DeadlineExceeded, id="restore-deadline"),
    row(RESTORE, KILLED, STOPPED, 5.0, None, DEADLINE_EXIT_CODE, "the restore is incomplete",
        DeadlineExceeded, id="restore-deadline-broke-the-pipe"),
    row(RESTORE, OK, COMPLETE, 5.0, None, 0, "", None,
        id="restore-exits-0-as-the-deadline-passes"),
    row(RESTORE, EXIT_3, COMPLETE, 5.0, None, 3, "(exit code 3)", CommandFailed,
        id="restore-fails-as-the-deadline-passes"),
    row(RESTORE, KILLED, COMPLETE, 5.0, TERM, DEADLINE_EXIT_CODE, "deadline of 5s",
        DeadlineExceeded, id="restore-deadline-then-signal"),
    # --- restore: a signal ------------------------------------------------------------------
    row(RESTORE, KILLED, STOPPED, None, TERM, 128 + TERM,
        "stopped by SIGTERM before the restore was complete; the restore command was killed",
        Interrupted, id="restore-signal-kills-the-command"),
    row(RESTORE, KILLED, HALTED, None, INT, 128 + INT, "stopped by SIGINT", Interrupted,
        id="restore-sigint"),
    row(RESTORE, KILLED, COMPLETE, None, TERM, 128 + TERM, "the restore is incomplete",
        Interrupted, id="restore-signal-after-stdin-closed"),
    row(RESTORE, OK, HALTED, None, TERM, 128 + TERM, "the restore is incomplete", Interrupted,
        id="restore-signal-stopped-the-stream"),
    row(RESTORE, None, NO_STATUS, None, TERM, 128 + TERM, "stopped by SIGTERM", Interrupted,
        id="restore-signal-no-exit-status"),
    row(RESTORE, OK, COMPLETE, None, TERM, 0, "", None,
        id="restore-signal-after-the-command-finished"),
    row(RESTORE, EXIT_3, COMPLETE, None, TERM, 3, "(exit code 3)", CommandFailed,
        id="restore-signal-after-the-command-failed"),
    row(RESTORE, OK, STOPPED, None, TERM, 1, "before reading the whole backup", CommandFailed,
        id="restore-signal-after-the-command-exited-early"),
    # --- backup -----------------------------------------------------------------------------
    row(BACKUP, OK, COMPLETE, None, None, 0, "", None, id="backup-ok"),
    row(BACKUP, EXIT_3, COMPLETE, None, None, 3,
        "the backup command failed (exit code 3); nothing was stored", CommandFailed,
        id="backup-command-fails"),
    row(BACKUP, KILLED, S3_DOWN, None, None, 1, "upload_part 3", StorageError,
        id="backup-storage-fails"),
    row(BACKUP, None, NO_STATUS, None, None, 1, "exit status", SourceError,
        id="backup-no-exit-status"),
    row(BACKUP, KILLED, COMPLETE, 5.0, None, DEADLINE_EXIT_CODE,
        "deadline of 5s and was killed: nothing was stored", DeadlineExceeded,
        id="backup-deadline"),
    row(BACKUP, OK, COMPLETE, 5.0, None, 0, "", None,
        id="backup-exits-0-as-the-deadline-passes"),
    row(BACKUP, KILLED, COMPLETE, None, TERM, 128 + TERM,
        "stopped by SIGTERM before the backup was complete; the backup command was killed: "
        "nothing was stored", Interrupted, id="backup-signal-kills-the-command"),
    row(BACKUP, OK, HALTED, None, TERM, 128 + TERM, "nothing was stored", Interrupted,
        id="backup-signal-stopped-the-stream"),
    row(BACKUP, OK, COMPLETE, None, TERM, 128 + TERM, "nothing was stored", Interrupted,
        id="backup-signal-before-commit"),
    row(BACKUP, OK, COMPLETE, 5.0, TERM, 128 + TERM, "nothing was stored", Interrupted,
        id="backup-deadline-too-late-then-signal"),
    row(BACKUP, KILLED, S3_DOWN, None, TERM, 128 + TERM, "nothing was stored", Interrupted,
        id="backup-signal-and-storage-failure"),
    row(BACKUP, EXIT_3, COMPLETE, None, TERM, 3, "(exit code 3); nothing was stored",
        CommandFailed, id="backup-signal-after-the-command-failed"),
    row(BACKUP, KILLED, COMPLETE, 5.0, TERM, DEADLINE_EXIT_CODE, "deadline of 5s",
        DeadlineExceeded, id="backup-deadline-then-signal"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "output_cut", "expected"),
    [
        pytest.param(OK, True, DeadlineExceeded, id="shell-exited-0-background-job-cut"),
        pytest.param(OK, False, None, id="output-ended-before-the-deadline"),
        pytest.param(EXIT_3, True, DeadlineExceeded, id="failed-shell-background-job-cut"),
        pytest.param(KILLED, False, DeadlineExceeded, id="killed-after-the-output-ended"),
    ],
)
def test_a_deadline_that_cut_the_output_counts(
    status: ExitStatus, output_cut: bool, expected: type[StreamerError] | None
) -> None:
    outcome = decide(BACKUP, status, COMPLETE, deadline=5.0, signum=None, output_cut=output_cut)
    if expected is None:
        assert outcome is None
    else:
        assert type(outcome) is expected
        assert outcome.exit_code == DEADLINE_EXIT_CODE


def test_output_cut_without_a_deadline_changes_nothing() -> None:
    assert decide(BACKUP, OK, COMPLETE, deadline=None, signum=None, output_cut=True) is None


@pytest.mark.parametrize(
    ("action", "status", "stream", "deadline", "signum", "exit_code", "message", "error"), TABLE
)
def test_decide(
    action: Action,
    status: ExitStatus | None,
    stream: Stream,
    deadline: float | None,
    signum: int | None,
    exit_code: int,
    message: str,
    error: type[StreamerError] | None,
) -> None:
    outcome = decide(action, status, stream, deadline=deadline, signum=signum)
    if error is None:
        assert outcome is None
        assert (exit_code, message) == (0, "")
        return
    assert type(outcome) is error
    assert outcome.exit_code == exit_code
    assert message in str(outcome)
    if action is Action.RESTORE:
        assert "nothing was stored" not in str(outcome)  # a restore stores nothing


def test_a_broken_stream_is_reported_as_the_error_that_broke_it() -> None:
    assert decide(RESTORE, KILLED, BAD_KEY, deadline=None, signum=None) is BAD_KEY.error


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [pytest.param(255, 255, id="255"), pytest.param(300, 1, id="out-of-range")],
)
def test_an_exit_code_outside_1_to_255_exits_1(code: int, exit_code: int) -> None:
    status = ExitStatus(code, f"exit code {code}")
    outcome = decide(RESTORE, status, COMPLETE, deadline=None, signum=None)
    assert outcome is not None
    assert outcome.exit_code == exit_code


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(Action.BACKUP, "SIGTERM arrived after s3://b/k was stored: the backup is complete", id="backup"),
        pytest.param(Action.RESTORE, "SIGTERM arrived after s3://b/k was restored: the restore is complete", id="restore"),
        pytest.param(Action.VERIFY, "SIGTERM arrived after s3://b/k was verified: the verification is complete", id="verify"),
    ],
)  # fmt: skip
def test_completed_note(action: Action, expected: str) -> None:
    assert completed_note(action, TERM, "s3://b/k") == expected
