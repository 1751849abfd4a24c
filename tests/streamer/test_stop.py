"""Stop requests in-process: termination signals, the deadline, and when each one counts.

A command that exits on its own just as the deadline passes cannot be timed reliably with a
real process, so those tests use a command whose exit and the deadline's kill are ordered by
events: it has already written everything, and the pipeline learns its exit status only after
the deadline's kill came, which is exactly the race. Everything else runs real processes.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamer.cli import main
from streamer.cli.signals import stop_on_signals
from streamer.errors import DeadlineExceeded, Interrupted
from streamer.pipeline import BackupOptions, RestoreOptions, Stop, backup, restore
from streamer.sources.base import Command, ExitStatus, Mode
from streamer.sources.local import LocalRunner
from streamer.storage.file import FileStorage

DATA = b"".join(b"row %d\n" % i for i in range(100_000))
TERM = int(signal.SIGTERM)
#: Short, so the deadline passes while the command below waits for it.
DEADLINE = 0.05


class EndsAfterTheKill(Command):
    """Gives its output (or takes its input) at once; :meth:`wait` returns only once kill()
    was called, with ``status``: ``killed=False`` for a command that had exited on its own
    before the kill landed, ``killed=True`` for one the kill ended."""

    def __init__(self, status: ExitStatus, output: bytes = b"") -> None:
        self._status = status
        self._output = io.BytesIO(output)
        self.kill_came = threading.Event()
        self.kills = 0
        self.input = bytearray()
        self.stdin_closed = False

    def readinto(self, buffer: memoryview) -> int:
        return self._output.readinto(buffer)

    def write(self, data: bytes | memoryview) -> None:
        self.input += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def wait(self) -> ExitStatus:
        assert self.kill_came.wait(30), "nothing killed the command"
        return self._status

    def kill(self) -> None:
        self.kills += 1
        self.kill_came.set()

    def close(self) -> None:
        pass


class OneCommand:
    def __init__(self, command: Command) -> None:
        self.command = command
        self.started = 0

    def start(self, argv: Sequence[str], mode: Mode) -> Command:
        self.started += 1
        return self.command


EXITED_0 = ExitStatus(0, "exit code 0")
KILLED = ExitStatus(137, "killed by signal SIGKILL", killed=True)


# --- the deadline counts only if its kill ended the command ----------------------------------


def test_a_backup_whose_command_exits_0_as_the_deadline_passes_is_stored(tmp_path: Path) -> None:
    command = EndsAfterTheKill(EXITED_0, DATA)
    options = BackupOptions(compress=False, deadline=DEADLINE)
    summary = backup(OneCommand(command), ["dump"], FileStorage(tmp_path), "db.sql", options)
    assert command.kill_came.is_set()  # the deadline did fire, before the exit was known
    assert (tmp_path / "db.sql").read_bytes() == DATA
    assert summary.plaintext_bytes == len(DATA)


def test_a_restore_whose_command_exits_0_as_the_deadline_passes_succeeds(tmp_path: Path) -> None:
    (tmp_path / "db.sql").write_bytes(DATA)
    command = EndsAfterTheKill(EXITED_0)
    options = RestoreOptions(deadline=DEADLINE)
    summary = restore(FileStorage(tmp_path), "db.sql", OneCommand(command), ["load"], options)
    assert command.kill_came.is_set()
    assert bytes(command.input) == DATA
    assert command.stdin_closed
    assert summary.plaintext_bytes == len(DATA)


def test_a_backup_the_deadline_killed_stores_nothing(tmp_path: Path) -> None:
    command = EndsAfterTheKill(KILLED, DATA)
    options = BackupOptions(compress=False, deadline=DEADLINE)
    with pytest.raises(DeadlineExceeded, match=r"deadline of 0\.05s") as info:
        backup(OneCommand(command), ["dump"], FileStorage(tmp_path), "db.sql", options)
    assert info.value.exit_code == 124
    assert list(tmp_path.iterdir()) == []


def test_a_restore_the_deadline_killed_exits_124(tmp_path: Path) -> None:
    (tmp_path / "db.sql").write_bytes(DATA)
    command = EndsAfterTheKill(KILLED)
    options = RestoreOptions(deadline=DEADLINE)
    with pytest.raises(DeadlineExceeded, match="the restore is incomplete") as info:
        restore(FileStorage(tmp_path), "db.sql", OneCommand(command), ["load"], options)
    assert info.value.exit_code == 124


# --- signals ---------------------------------------------------------------------------------


def test_a_signal_before_the_command_starts_starts_nothing(tmp_path: Path) -> None:
    stop = Stop()
    stop.request_signal(TERM)
    runner = OneCommand(EndsAfterTheKill(EXITED_0, DATA))
    with pytest.raises(Interrupted, match="nothing was stored") as info:
        backup(runner, ["dump"], FileStorage(tmp_path), "db.sql", BackupOptions(), stop)
    assert info.value.exit_code == 128 + TERM
    assert runner.started == 0
    assert list(tmp_path.iterdir()) == []


class SignalledWhileWriting(Command):
    """Writes output until it is killed; the signal arrives after its first chunk."""

    def __init__(self, stop: Stop) -> None:
        self._stop = stop
        self._killed = threading.Event()
        self.chunks = 0

    def readinto(self, buffer: memoryview) -> int:
        if self._killed.is_set():
            return 0
        self.chunks += 1
        if self.chunks == 2:
            self._stop.request_signal(TERM)
        buffer[:] = b"x" * len(buffer)
        return len(buffer)

    def write(self, data: bytes | memoryview) -> None:
        raise AssertionError("a backup writes no input")

    def close_stdin(self) -> None:
        pass

    def wait(self) -> ExitStatus:
        assert self._killed.wait(30)
        return KILLED

    def kill(self) -> None:
        self._killed.set()

    def close(self) -> None:
        self.kill()


def test_a_signal_while_the_output_streams_stops_it_and_stores_nothing(tmp_path: Path) -> None:
    stop = Stop()
    command = SignalledWhileWriting(stop)
    with pytest.raises(Interrupted, match="the backup command was killed") as info:
        backup(OneCommand(command), ["dump"], FileStorage(tmp_path), "db", BackupOptions(), stop)
    assert info.value.exit_code == 128 + TERM
    assert list(tmp_path.iterdir()) == []


def test_later_signals_do_nothing_more_than_the_first() -> None:
    stop = Stop()
    command = EndsAfterTheKill(EXITED_0)
    with stop.watching(command, deadline=None):
        stop.request_signal(TERM)
        for _ in range(5):
            stop.request_signal(int(signal.SIGINT))
    assert command.kills == 1
    assert stop.signal == TERM


def test_a_signal_that_came_first_is_not_taken_for_the_deadline() -> None:
    stop = Stop()
    command = EndsAfterTheKill(KILLED)
    with stop.watching(command, deadline=DEADLINE):
        stop.request_signal(TERM)
        assert command.kill_came.wait(10)
    assert (stop.signal, stop.deadline) == (TERM, None)


class RecordingStop(Stop):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[int] = []
        self.requested = threading.Event()

    def request_signal(self, signum: int) -> None:
        self.requests.append(signum)
        super().request_signal(signum)
        self.requested.set()


def test_signals_become_requests_and_never_raise_in_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = RecordingStop()
    command = EndsAfterTheKill(KILLED)
    with stop_on_signals(stop), stop.watching(command, deadline=None):
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt
        assert stop.requested.wait(10)
        assert command.kill_came.wait(10)
        for _ in range(10):
            os.kill(os.getpid(), signal.SIGTERM)
    assert stop.signal == int(signal.SIGINT)
    assert command.kills == 1
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_command_called_in_process_puts_the_handlers_back(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    url = (tmp_path / "db.sql").as_uri()
    result = CliRunner().invoke(main, ["backup", url, "--", "echo", "x"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --- whether the kill ended a real command ----------------------------------------------------


def read_to_end(command: Command) -> None:
    buffer = memoryview(bytearray(65536))
    while command.readinto(buffer):
        pass


@pytest.mark.parametrize(
    ("argv", "kill", "status"),
    [
        pytest.param(["sleep", "60"], "while-running", (137, True), id="killed-while-running"),
        # stdout closes only as the process exits, so its exit code is settled when kill()
        # comes, and it is not reaped yet: the race of a deadline, made certain.
        pytest.param(["true"], "after-it-exited", (0, False), id="exited-before-the-kill"),
        pytest.param(["sh", "-c", "kill -KILL $$"], "never", (137, False), id="killed-by-another"),
    ],
)
def test_a_local_command_is_killed_only_if_our_kill_ended_it(
    argv: list[str], kill: str, status: tuple[int, bool]
) -> None:
    with LocalRunner().start(argv, Mode.BACKUP) as command:
        if kill == "while-running":
            command.kill()
        read_to_end(command)
        if kill == "after-it-exited":
            command.kill()
        result = command.wait()
    assert (result.code, result.killed) == status
