"""How a run ends, as a table: exit status x stream x deadline x signal -> exit code, message.

The decision is one pure function (:func:`streamer.pipeline.outcome.decide`); every row here is
a way a backup or a restore can end, named by its id. A restore's check is judged the same way
(:func:`~streamer.pipeline.outcome.decide_check`), and every error maps to one of the
contract's failure reasons (:func:`~streamer.pipeline.outcome.failure_of`).
"""

from __future__ import annotations

import signal

import pytest

from streamer.contract import FAILURE_OUTPUTS, FAILURES, Failure, Output
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
    StdinClosed,
    StorageError,
    StreamerError,
)
from streamer.pipeline.outcome import (
    DEADLINE_EXIT_CODE,
    MAX_FAILURE_MESSAGE,
    Action,
    Broken,
    Complete,
    StoppedReading,
    Stream,
    check_interrupted,
    completed_note,
    decide,
    decide_check,
    failure_of,
    failure_outputs,
    truncate_utf8,
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


def _assert_outcome(
    outcome: StreamerError | None, exit_code: int, message: str, error: type[StreamerError] | None
) -> bool:
    """``outcome`` is ``error`` with ``exit_code`` and ``message`` (None: a success); whether
    it is an error."""
    if error is None:
        assert outcome is None
        assert (exit_code, message) == (0, "")
        return False
    assert type(outcome) is error
    assert outcome.exit_code == exit_code
    assert message in str(outcome)
    return True


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
    if not _assert_outcome(outcome, exit_code, message, error):
        return
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


# --- a restore's check ------------------------------------------------------------------------

EXIT_4 = ExitStatus(4, "exit code 4")
SEGV = ExitStatus(139, "killed by signal SIGSEGV")


@pytest.mark.parametrize(
    ("status", "last_line", "deadline", "signum", "exit_code", "message", "error"),
    [
        pytest.param(OK, "", None, None, 0, "", None, id="passes"),
        pytest.param(EXIT_4, "count is 999", None, None, 4,
                     "the check command exited with 4 (its last stderr line: 'count is 999')",
                     CheckFailed, id="fails"),
        pytest.param(EXIT_4, "", None, None, 4, "exited with 4 (no stderr)", CheckFailed,
                     id="fails-silently"),
        pytest.param(SEGV, "core dumped", None, None, 139,
                     "exited with 139 (killed by signal SIGSEGV; its last stderr line: "
                     "'core dumped')", CheckFailed, id="crashes"),
        pytest.param(KILLED, "", 5.0, None, DEADLINE_EXIT_CODE,
                     "did not finish within the deadline of 5s, which covers the restore and "
                     "its check", DeadlineExceeded, id="deadline"),
        pytest.param(OK, "", 5.0, None, 0, "", None, id="passes-as-the-deadline-passes"),
        pytest.param(EXIT_4, "x", 5.0, None, 4, "exited with 4", CheckFailed,
                     id="fails-as-the-deadline-passes"),
        pytest.param(KILLED, "", None, TERM, 128 + TERM,
                     "stopped by SIGTERM before the restore's check was complete; the check "
                     "command was killed: the backup was restored, but not checked",
                     Interrupted, id="signal-kills-the-check"),
        pytest.param(OK, "", None, TERM, 0, "", None, id="signal-after-the-check-passed"),
        pytest.param(EXIT_4, "x", None, TERM, 4, "exited with 4", CheckFailed,
                     id="signal-after-the-check-failed"),
        pytest.param(KILLED, "", 5.0, TERM, DEADLINE_EXIT_CODE, "deadline of 5s",
                     DeadlineExceeded, id="deadline-then-signal"),
    ],
)  # fmt: skip
def test_decide_check(
    status: ExitStatus,
    last_line: str,
    deadline: float | None,
    signum: int | None,
    exit_code: int,
    message: str,
    error: type[StreamerError] | None,
) -> None:
    outcome = decide_check(status, last_line, deadline=deadline, signum=signum)
    _assert_outcome(outcome, exit_code, message, error)


def test_a_check_stopped_before_it_ran() -> None:
    error = check_interrupted(INT)
    assert error.exit_code == 128 + INT
    assert str(error) == (
        "stopped by SIGINT before the restore's check was complete: the backup was restored, "
        "but not checked"
    )


# --- why a run failed, for --outputs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        pytest.param(IntegrityError("x"), Failure.DIGEST_MISMATCH, id="integrity"),
        pytest.param(EncryptionError("x"), Failure.DECRYPT_FAILED, id="encryption"),
        pytest.param(CompressionError("x"), Failure.DECOMPRESS_FAILED, id="compression"),
        pytest.param(CheckFailed("x", exit_code=4), Failure.CHECK_FAILED, id="check"),
        pytest.param(CommandFailed("x", exit_code=3), Failure.COMMAND_FAILED, id="command"),
        pytest.param(DeadlineExceeded("x", exit_code=124), Failure.SOURCE_FAILED, id="deadline"),
        pytest.param(SourceError("x"), Failure.SOURCE_FAILED, id="source"),
        pytest.param(StdinClosed("x"), Failure.SOURCE_FAILED, id="stdin-closed"),
        pytest.param(ObjectNotFound("x"), Failure.NOT_FOUND, id="not-found"),
        pytest.param(StorageError("x"), Failure.STORAGE_FAILED, id="storage"),
        pytest.param(Interrupted("x", signum=TERM), Failure.INTERRUPTED, id="interrupted"),
        pytest.param(ConfigError("x"), Failure.CONFIG, id="config"),
        pytest.param(StreamerError("x"), Failure.CONFIG, id="outputs-not-writable"),
    ],
)
def test_failure_of(error: StreamerError, failure: str) -> None:
    assert failure_of(error) == failure
    assert failure in FAILURES
    assert failure_outputs(error) == {Output.FAILURE: failure, Output.FAILURE_MESSAGE: "x"}
    assert tuple(failure_outputs(error)) == FAILURE_OUTPUTS


def test_every_error_class_of_the_tree_has_a_failure() -> None:
    def subclasses(cls: type[StreamerError]) -> set[type[StreamerError]]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(sub) for sub in found)) if found else found

    import streamer.errors

    public = {getattr(streamer.errors, name) for name in streamer.errors.__all__}
    assert subclasses(StreamerError) >= public - {StreamerError}
    # Every value an error can report; SourceFailed and ConfigError are reached more than once.
    reported = {failure_of(cls.__new__(cls)) for cls in public}
    assert reported == set(FAILURES)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        pytest.param("short", 4096, "short", id="fits"),
        pytest.param("a" * 10, 10, "a" * 10, id="exactly"),
        pytest.param("a" * 11, 10, "a" * 7 + "…", id="ascii-cut"),
        pytest.param("ü" * 6, 10, "üüü…", id="two-byte-chars"),  # 7 bytes kept -> 3 chars
        pytest.param("a✓✓✓", 9, "a✓…", id="never-half-a-char"),
        pytest.param("bad \udcff byte", 4096, "bad ? byte", id="lone-surrogate"),
    ],
)
def test_truncate_utf8(text: str, limit: int, expected: str) -> None:
    cut = truncate_utf8(text, limit)
    assert cut == expected
    assert len(cut.encode()) <= limit


def test_a_long_failure_message_is_cut_to_4096_bytes() -> None:
    message = failure_outputs(SourceError("é" * 5000))[Output.FAILURE_MESSAGE]
    assert MAX_FAILURE_MESSAGE == 4096
    assert 4090 < len(message.encode()) <= 4096
    assert message.endswith("…")
