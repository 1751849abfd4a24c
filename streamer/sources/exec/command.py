"""One command running over an exec WebSocket: the frame loop, stderr, the Status, pings.

The connection is the one ``create_websocket()`` returned. The client's own ``WSClient``
reading loop keeps every byte of stdout in memory and moved 7.8 MB/s where this plain frame
loop moves hundreds of MB/s, so it is never used. A stream that ends without a Status on
channel 3 is a failure, never a short success.

Flow control is TCP's: a backup reads a frame only when the pipeline asks for bytes, and a
restore's write blocks while the socket is full and the command is not reading (see
:mod:`.stdin`); one frame (backup) or four queued messages (restore, 1 MiB each) are held at
most. Pings keep proxies with idle timeouts from cutting a command that is silent for long.

Closing the connection is the only way to stop a remote command (the exec API has no signal
channel): :meth:`ExecCommand.kill` does that; the container runtime then closes the command's
stdio, so it sees EOF or a broken pipe. How the stream ended is recorded once, in a
:class:`~.state.ConnectionState`, and errors from the socket are judged by it (see
:mod:`.state`): expected after an ending, a lost connection while open if they are socket
errors, and a bug otherwise, reported as one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from websocket import ABNF, WebSocketException

from streamer.errors import SourceError, StdinClosed
from streamer.sources.base import MAX_LINE, Command, ExitStatus, LineLog, Mode
from streamer.sources.exec.frames import RawFrameWriter
from streamer.sources.exec.protocol import STATUS, STDERR, STDOUT, parse_status
from streamer.sources.exec.state import ConnectionState, Phase
from streamer.sources.exec.stdin import StdinSender

__all__ = ["DEFAULT_PING_INTERVAL", "MAX_STATUS_BYTES", "MAX_STDERR_LINE", "ExecCommand"]

log = logging.getLogger(__name__)

#: A ``websocket.WebSocket``, as ``create_websocket()`` returns it.
WebSocket = Any

#: Seconds between WebSocket pings: well under the usual 60 s load-balancer idle timeout.
DEFAULT_PING_INTERVAL = 20.0
#: The connection is taken for dead after this many ping intervals without any frame back.
UNANSWERED_PINGS = 3
#: A stderr line longer than this is logged in pieces, so a binary stderr cannot grow memory.
MAX_STDERR_LINE = MAX_LINE
#: The Status object is small; a larger channel 3 is a protocol error, not a reason to buffer.
MAX_STATUS_BYTES = 64 * 1024
#: What websocket-client raises when the connection fails or the peer goes away.
SOCKET_ERRORS = (WebSocketException, OSError)


class ExecCommand(Command):
    """One command running over an exec connection.

    In backup mode the caller's :meth:`readinto` drives the frame loop, so a slow consumer
    leaves frames in the socket and TCP pushes back on the server; at most one frame is held.
    In restore mode a reader thread takes stderr and the Status, and a
    :class:`~.stdin.StdinSender` sends what :meth:`write` queues. In check mode the reader
    thread logs stdout too, and nothing is sent.
    """

    def __init__(
        self,
        sock: WebSocket,
        mode: Mode,
        *,
        where: str,
        ping_interval: float = DEFAULT_PING_INTERVAL,
    ) -> None:
        self._sock = sock
        self._mode = mode
        self._where = where
        self._state = ConnectionState()
        self._status_bytes = bytearray()
        self._stderr = _Lines(LineLog())
        self._check_stdout = _Lines(LineLog()) if mode is Mode.CHECK else None
        self._pending = memoryview(b"")
        self._received = 0
        self._last_frame = time.monotonic()
        self._receiving_since: float | None = None
        self._stop_pinging = threading.Event()
        self._pinger = threading.Thread(
            target=self._keep_alive, args=(ping_interval,), name="exec-ping", daemon=True
        )
        self._pinger.start()
        self._reader: threading.Thread | None = None
        self._stdin: StdinSender | None = None
        if mode is Mode.RESTORE:
            self._stdin = StdinSender(
                RawFrameWriter(sock), self._state, where=where, on_bug=self._break_down
            )
        if mode is not Mode.BACKUP:
            self._reader = threading.Thread(target=self._drain, name="exec-reader", daemon=True)
            self._reader.start()

    # -- the frame loop ------------------------------------------------------------------------

    def _next_stdout(self) -> memoryview | None:
        """Receive frames until stdout data arrives (returned) or the stream ends (None).

        Any exception that escapes the frame loop is a bug: it ends the stream, and propagates.
        """
        try:
            return self._receive_stdout()
        except Exception as exc:
            self._break_down(exc)
            raise

    def _receive_stdout(self) -> memoryview | None:
        """The frame loop. Only its thread touches the stderr buffer (and close(), after it)."""
        while self._state.is_open:
            self._receiving_since = time.monotonic()
            try:
                opcode, frame = self._sock.recv_data_frame(True)
            except Exception as exc:
                if not self._state.is_open:
                    break  # ended by kill(), close() or the pinger: the socket fails as told
                if not isinstance(exc, SOCKET_ERRORS):
                    raise
                self._state.lose(f"the connection was lost ({type(exc).__name__})")
                break
            finally:
                self._receiving_since = None
            self._last_frame = time.monotonic()
            if opcode == ABNF.OPCODE_CLOSE:
                self._state.lose(
                    "the API server closed the connection without sending an exit status"
                )
                break
            if opcode != ABNF.OPCODE_BINARY or not frame.data:
                continue
            data = memoryview(frame.data)
            channel, payload = data[0], data[1:]
            if channel == STDOUT:
                if payload:
                    self._received += len(payload)
                    return payload
            elif channel == STDERR:
                self._stderr.feed(payload)
            elif channel == STATUS:
                self._status_chunk(payload)
        self._flush_output()  # the end of the stream ends the last lines
        return None

    def _drain(self) -> None:
        try:
            while (payload := self._next_stdout()) is not None:
                if self._check_stdout is not None:
                    self._check_stdout.feed(payload)
                # restore has no stdout; anything there is discarded
        except Exception:
            return  # recorded as the stream's ending by _next_stdout(); wait() reports it

    def _flush_output(self) -> None:
        self._stderr.flush()
        if self._check_stdout is not None:
            self._check_stdout.flush()

    def _status_chunk(self, payload: memoryview) -> None:
        self._status_bytes += payload
        if len(self._status_bytes) > MAX_STATUS_BYTES:
            self._state.finish(None, "the API server sent an oversized exit status")
            return
        try:
            status = json.loads(bytes(self._status_bytes))
        except ValueError:
            return  # the Status may span several messages; wait for the rest
        self._state.finish(*parse_status(status))

    def _keep_alive(self, interval: float) -> None:
        try:
            self._ping_until_ended(interval)
        except Exception as exc:
            self._break_down(exc)

    def _ping_until_ended(self, interval: float) -> None:
        """Ping every ``interval``; end the stream when pings go unanswered for too long.

        In a backup, a peer that vanished without closing the TCP connection would otherwise
        leave a silent command's stream blocked until TCP gives up, many minutes later. Only
        time spent waiting for a frame counts: while the pipeline is not reading (S3 is slow)
        the pongs wait unread in the socket, which says nothing about the peer. A check is
        judged as a backup is (its reader thread always waits for frames). A restore is not
        judged this way: a server that stops reading stdin (the command is busy) cannot see
        the pings either, and that is back-pressure, not a dead peer.
        """
        judged = self._mode is not Mode.RESTORE
        dead_after = interval * UNANSWERED_PINGS if judged else float("inf")
        unanswered_since: float | None = None
        while not self._stop_pinging.wait(interval):
            if not self._state.is_open:
                return
            now = time.monotonic()
            if unanswered_since is not None and self._last_frame >= unanswered_since:
                unanswered_since = None
            receiving_since = self._receiving_since
            if (
                unanswered_since is not None
                and receiving_since is not None
                and now - max(unanswered_since, receiving_since) >= dead_after
            ):
                if self._state.lose(f"no reply to keep-alive pings for {dead_after:g}s"):
                    self._abort()
                return
            try:
                self._sock.ping()
            except Exception as exc:
                # websocket-client closes the socket when its reader sees the peer's end, which
                # a ping racing with it may meet as anything; the frame loop reports the end.
                if not self._state.is_open or not self._sock.connected:
                    return
                if isinstance(exc, SOCKET_ERRORS):
                    return  # the frame loop notices a dead connection on its own
                raise
            if unanswered_since is None:
                unanswered_since = now

    # -- endings -------------------------------------------------------------------------------

    def _break_down(self, bug: BaseException) -> None:
        """End the stream on a bug in the streamer, waking every thread blocked on it."""
        log.debug("the exec stream of %s failed on an internal error", self._where, exc_info=bug)
        if self._state.break_down(bug):
            self._stop_pinging.set()
            self._abort()

    def _abort(self) -> None:
        """Shut the socket down, so every thread blocked on it wakes up.

        Called only once the state has left OPEN, so whatever the half-closed socket raises
        here is expected.
        """
        try:
            self._sock.abort()
        except Exception as exc:
            log.debug("aborting the exec connection to %s: %r", self._where, exc)

    def _bug_error(self, bug: BaseException | None) -> SourceError:
        what = f"{type(bug).__name__}: {str(bug)[:300]}" if bug is not None else "unknown"
        return SourceError(
            f"the exec stream of {self._where} failed on an internal error ({what}), not a "
            "lost connection; this is a bug in the streamer, please report it"
        )

    def _raise_if_failed(self) -> None:
        """Raise if the stream ended without a Status, or on a bug."""
        ending = self._state.ending
        if ending is None:
            return
        if ending.phase is Phase.BROKEN:
            raise self._bug_error(ending.bug) from ending.bug
        if ending.phase is Phase.LOST:
            if self._mode is Mode.BACKUP:
                progress = f"after {self._received} bytes of output: {ending.reason}; the output "
                progress += "is incomplete, so nothing is kept"
            elif self._mode is Mode.CHECK:
                progress = f"{ending.reason}; whether the check passed is unknown"
            else:
                sent = self._stdin.sent if self._stdin is not None else 0
                progress = f"after {sent} bytes of input: {ending.reason}; the restore may be "
                progress += "incomplete"
            raise SourceError(
                f"the exec connection to {self._where} ended without the command's exit status "
                f"{progress}"
            )

    # -- the Command contract ------------------------------------------------------------------

    def readinto(self, buffer: memoryview) -> int:
        if self._mode is not Mode.BACKUP:
            raise SourceError("this command was not started for backup: it has no stdout to read")
        if not self._pending:
            try:
                data = self._next_stdout()
            except Exception as exc:
                raise self._bug_error(exc) from exc
            if data is None:
                self._raise_if_failed()
                return 0
            self._pending = data
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def write(self, data: bytes | memoryview) -> None:
        if self._stdin is None:
            raise StdinClosed("the restore command's input is already closed")
        self._stdin.write(data)

    def close_stdin(self) -> None:
        """Have the sender send the CLOSE signal after the queued data; never blocks."""
        if self._stdin is not None:
            self._stdin.close()

    def last_stderr_line(self) -> str:
        return self._stderr.log.last

    def wait(self) -> ExitStatus:
        if self._reader is not None:
            self._state.ended.wait()
            # Once the stream has ended the reader stops at once; joining it completes the
            # last lines (a stderr line without a newline is logged when the stream ends).
            self._reader.join(timeout=5)
        else:
            self._pending = memoryview(b"")
            try:
                while self._next_stdout() is not None:
                    pass  # stdout nobody reads any more is discarded so the Status can arrive
            except Exception as exc:
                raise self._bug_error(exc) from exc
        ending = self._state.ending
        if ending is not None and ending.phase is Phase.FINISHED:
            if ending.status is not None:
                return ending.status
            raise SourceError(f"the command in {self._where} failed: {ending.failure}")
        if ending is not None and ending.phase is Phase.KILLED:
            return ExitStatus(137, "killed: the exec connection was closed", killed=True)
        self._raise_if_failed()
        raise SourceError(f"the exit status of the command in {self._where} is unknown")

    def kill(self) -> None:
        if not self._state.kill():
            return
        self._stop_pinging.set()
        self._abort()  # wakes every thread blocked on the socket

    def close(self) -> None:
        if self._stdin is not None:
            self._stdin.refuse()
        self.kill()
        self._stop_pinging.set()
        self._abort()  # a sender blocked on a peer that stopped reading wakes up too
        for thread in (self._reader, self._pinger):
            if thread is not None:
                thread.join(timeout=5)
        if self._stdin is not None:
            self._stdin.join(timeout=5)
        self._sock.shutdown()
        self._flush_output()


class _Lines:
    """A channel's payloads reassembled into lines for a :class:`LineLog`, in pieces of at
    most MAX_STDERR_LINE bytes; only the frame loop's thread feeds it."""

    def __init__(self, log: LineLog) -> None:
        self.log = log
        self._buffer = bytearray()

    def feed(self, payload: memoryview) -> None:
        self._buffer += payload
        start = 0
        while (newline := self._buffer.find(b"\n", start)) >= 0:
            self.log.line(bytes(self._buffer[start : newline + 1]))
            start = newline + 1
        del self._buffer[:start]
        while len(self._buffer) >= MAX_STDERR_LINE:
            self.log.line(bytes(self._buffer[:MAX_STDERR_LINE]))
            del self._buffer[:MAX_STDERR_LINE]

    def flush(self) -> None:
        if self._buffer:
            self.log.line(bytes(self._buffer))
            self._buffer.clear()
