"""The embedded default: the command runs as a local process.

This is the only module of the streamer that imports :mod:`subprocess`. Each command gets its
own session (process group) so a deadline or failure stops the whole pipeline the user wrote
(``sh -c "mysqldump … | sed …"``), not just the shell.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO

from streamer.errors import SourceError, StdinClosed
from streamer.sources.base import Command, ExitStatus, Mode, forward_stderr_line

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
                stdout=subprocess.PIPE if mode is Mode.BACKUP else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise SourceError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                _enlarge_pipe(pipe.fileno())
        return LocalCommand(proc)


#: Pipe buffer we ask the kernel for: fewer, larger transfers (and wake-ups) than the 64 KiB
#: default. The kernel may refuse (fs.pipe-max-size); the default still works, only slower.
PIPE_SIZE = 1 << 20


def _enlarge_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


class LocalCommand(Command):
    """A running child process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._stdout: IO[bytes] | None = proc.stdout
        self._stdin: IO[bytes] | None = proc.stdin
        self._kill_sent = False
        assert proc.stderr is not None
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr, args=(proc.stderr,), name="command-stderr", daemon=True
        )
        self._stderr_thread.start()

    @staticmethod
    def _pump_stderr(stream: IO[bytes]) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                forward_stderr_line(line)

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
        self._stderr_thread.join(timeout=5)
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
        self._stderr_thread.join(timeout=5)
