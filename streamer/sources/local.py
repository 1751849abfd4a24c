"""The embedded default: the command runs as a local process.

This is the only module of the streamer that imports :mod:`subprocess`. Each command gets its
own session (process group) so a deadline or failure stops the whole pipeline the user wrote
(``sh -c "mysqldump … | sed …"``), not just the shell.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, cast

from streamer.errors import SourceError, StdinClosed
from streamer.sources.base import MAX_LINE, Command, ExitStatus, LineLog, Mode

__all__ = ["LocalCommand", "LocalRunner"]


class LocalRunner:
    """Runs commands as child processes of the streamer."""

    def start(self, argv: Sequence[str], mode: Mode) -> LocalCommand:
        if not argv:
            raise SourceError("no command given: put the command after '--'")
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if mode is Mode.RESTORE else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if mode is Mode.RESTORE else subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise SourceError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                _enlarge_pipe(pipe.fileno())
        return LocalCommand(proc, mode)


#: Pipe buffer we ask the kernel for: fewer, larger transfers (and wake-ups) than the 64 KiB
#: default. The kernel may refuse (fs.pipe-max-size); the default still works, only slower.
PIPE_SIZE = 1 << 20


def _enlarge_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


class LocalCommand(Command):
    """A running child process.

    Threads of its own log stderr and, in check mode, stdout, a line at a time.
    """

    def __init__(self, proc: subprocess.Popen[bytes], mode: Mode) -> None:
        self._proc = proc
        self._stdout: IO[bytes] | None = proc.stdout if mode is Mode.BACKUP else None
        self._stdin: IO[bytes] | None = proc.stdin
        self._kill_sent = False
        self._stderr = LineLog()
        assert proc.stderr is not None
        self._pumps = [_pump(proc.stderr, self._stderr, "command-stderr")]
        if mode is Mode.CHECK:
            assert proc.stdout is not None
            self._pumps.append(_pump(proc.stdout, LineLog(), "command-stdout"))

    def last_stderr_line(self) -> str:
        return self._stderr.last

    def readinto(self, buffer: memoryview) -> int:
        if self._stdout is None:
            raise SourceError("this command was not started for backup: it has no stdout to read")
        return self._stdout.readinto(buffer)  # type: ignore[attr-defined, no-any-return]

    def write(self, data: bytes | memoryview) -> None:
        if self._stdin is None:
            raise StdinClosed("the restore command's input is already closed")
        view = memoryview(data)
        try:
            while view:
                written = self._stdin.write(view)
                view = view[written:]
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise StdinClosed("the restore command stopped reading its input") from exc

    def close_stdin(self) -> None:
        if self._stdin is not None:
            stdin, self._stdin = self._stdin, None
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def wait(self) -> ExitStatus:
        code = self._proc.wait()
        self._join_pumps()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            # A process that exited before the kill keeps its own code: only a SIGKILL death
            # after kill() was sent is ours.
            killed = self._kill_sent and -code == signal.SIGKILL
            return ExitStatus(128 - code, f"killed by signal {name}", killed=killed)
        return ExitStatus(code, f"exit code {code}")

    def kill(self) -> None:
        # The whole group, even once the shell has exited: a process it left running in the
        # background may still hold stdout open, and the read would wait for it forever. The
        # group's id stays reserved while any member lives, so it names no one else's group.
        self._kill_sent = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill()  # first: a command that sees the end of its input may act on it
        self.close_stdin()
        self._proc.wait()
        if self._stdout is not None:
            self._stdout.close()
        self._join_pumps()

    def _join_pumps(self) -> None:
        for pump in self._pumps:
            pump.join(timeout=5)


def _pump(stream: IO[bytes], log: LineLog, name: str) -> threading.Thread:
    """Start a thread that logs ``stream`` line by line until its end, then closes it."""

    def run() -> None:
        # Buffered: the pipe is unbuffered (bufsize=0), whose readline reads a byte at a time.
        with io.BufferedReader(cast(io.RawIOBase, stream)) as lines:
            for line in iter(lambda: lines.readline(MAX_LINE), b""):
                log.line(line)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
