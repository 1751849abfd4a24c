"""The local process source keeps the Command contract the pipeline relies on."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from streamer.errors import SourceError, StdinClosed
from streamer.sources.base import MAX_LINE, Mode
from streamer.sources.local import LocalRunner


def read_all(command) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    buffer = bytearray(65536)
    while n := command.readinto(memoryview(buffer)):
        out += buffer[:n]
    return bytes(out)


def test_backup_mode_reads_stdout_and_logs_stderr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamer.command")
    with LocalRunner().start(
        ["sh", "-c", "echo out; echo err1 >&2; echo err2 >&2"], Mode.BACKUP
    ) as cmd:
        assert read_all(cmd) == b"out\n"
        status = cmd.wait()
    assert status.ok
    assert [r.getMessage() for r in caplog.records if r.name == "streamer.command"] == [
        "err1",
        "err2",
    ]


def test_backup_mode_stdin_is_empty() -> None:
    with LocalRunner().start(["sh", "-c", "wc -c"], Mode.BACKUP) as cmd:
        assert read_all(cmd).strip() == b"0"
        assert cmd.wait().code == 0


def test_exit_code_and_signal() -> None:
    with LocalRunner().start(["sh", "-c", "exit 7"], Mode.BACKUP) as cmd:
        read_all(cmd)
        assert (cmd.wait().code, cmd.wait().reason) == (7, "exit code 7")
    with LocalRunner().start(["sh", "-c", "kill -TERM $$"], Mode.BACKUP) as cmd:
        read_all(cmd)
        status = cmd.wait()
        assert (status.code, status.reason) == (143, "killed by signal SIGTERM")


def test_restore_mode_writes_stdin_and_closes_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    with LocalRunner().start(["sh", "-c", f"cat > {out}"], Mode.RESTORE) as cmd:
        cmd.write(b"hello ")
        cmd.write(memoryview(b"world"))
        cmd.close_stdin()
        assert cmd.wait().ok
    assert out.read_bytes() == b"hello world"


def test_restore_command_that_stops_reading_raises_stdin_closed() -> None:
    with LocalRunner().start(["sh", "-c", "head -c 10 >/dev/null; exit 4"], Mode.RESTORE) as cmd:

        def write_forever() -> None:
            for _ in range(1000):
                cmd.write(b"x" * 65536)

        with pytest.raises(StdinClosed, match="stopped reading"):
            write_forever()
        assert cmd.wait().code == 4


def test_kill_stops_the_whole_process_group() -> None:
    # The shell's child (sleep) holds stdout open; killing only the shell would hang the read.
    with LocalRunner().start(["sh", "-c", "sleep 60 | cat; echo never"], Mode.BACKUP) as cmd:
        threading.Timer(0.3, cmd.kill).start()
        started = time.monotonic()
        assert read_all(cmd) == b""
        assert time.monotonic() - started < 30
        assert cmd.wait().reason == "killed by signal SIGKILL"


def test_kill_stops_the_group_after_the_shell_has_exited() -> None:
    # The shell exits at once; the background sleep keeps stdout open.
    argv = ["sh", "-c", "sleep 20 2>/dev/null & echo started"]
    with LocalRunner().start(argv, Mode.BACKUP) as cmd:
        buffer = bytearray(64)
        assert cmd.readinto(memoryview(buffer)) == len(b"started\n")
        assert cmd.wait().ok
        threading.Timer(0.3, cmd.kill).start()
        started = time.monotonic()
        assert read_all(cmd) == b""
        assert time.monotonic() - started < 10


def test_missing_program() -> None:
    with pytest.raises(SourceError, match="cannot start 'no-such-program-x'"):
        LocalRunner().start(["no-such-program-x"], Mode.BACKUP)


def test_empty_command() -> None:
    with pytest.raises(SourceError, match="no command given"):
        LocalRunner().start([], Mode.BACKUP)


def test_check_mode_logs_stdout_and_stderr_and_keeps_the_last_stderr_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streamer.command")
    script = "wc -c; echo first >&2; printf 'count 0, expected 1000' >&2; exit 5"
    with LocalRunner().start(["sh", "-c", script], Mode.CHECK) as cmd:
        status = cmd.wait()
        assert cmd.last_stderr_line() == "count 0, expected 1000"
        with pytest.raises(SourceError, match="not started for backup"):
            cmd.readinto(memoryview(bytearray(16)))
        with pytest.raises(StdinClosed):
            cmd.write(b"x")
    assert status.code == 5
    lines = sorted(r.getMessage() for r in caplog.records if r.name == "streamer.command")
    assert lines == ["0", "count 0, expected 1000", "first"]  # stdin is empty


def test_a_long_output_line_is_logged_in_pieces(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamer.command")
    argv = ["sh", "-c", f"head -c {2 * MAX_LINE + 10} /dev/zero | tr '\\0' x"]
    with LocalRunner().start(argv, Mode.CHECK) as cmd:
        assert cmd.wait().ok
        assert cmd.last_stderr_line() == ""
    lines = [r.getMessage() for r in caplog.records if r.name == "streamer.command"]
    assert [len(line) for line in lines] == [MAX_LINE, MAX_LINE, 10]
