"""A restore command's stdin: a bounded queue between the pipeline and a sender thread.

:meth:`StdinSender.write` frames and masks (:mod:`.frames`) what it is given, the masking
being the one copy that frees the caller's buffer; the sender thread writes the frames, so TLS
and the socket overlap the pipeline's decompression. The queue holds four 1 MiB messages: when the
socket is full because the command is not reading, the sender blocks, the queue fills, and
:meth:`StdinSender.write` blocks, so a slow command pushes back on the pipeline.

End of input is the v5 CLOSE signal ``[255, 0]``, sent after the queued data.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

from streamer.errors import StdinClosed
from streamer.sources.exec.frames import Frame, RawFrameWriter
from streamer.sources.exec.protocol import CLOSE, STDIN
from streamer.sources.exec.state import ConnectionState, Phase

__all__ = ["MAX_STDIN_FRAME", "STDIN_QUEUE_DEPTH", "StdinSender"]

log = logging.getLogger(__name__)

#: Largest stdin message sent; bigger messages cost fewer Python calls per byte.
MAX_STDIN_FRAME = 1024 * 1024
#: Stdin messages waiting for the sender thread: a bounded 4 MiB between pipeline and socket.
STDIN_QUEUE_DEPTH = 4


class StdinSender:
    """Sends a restore command's input over the exec connection, in its own thread.

    ``on_bug`` is called (from the sender thread) with an exception that is not the socket
    failing: the command ends the stream on it.
    """

    def __init__(
        self,
        writer: RawFrameWriter,
        state: ConnectionState,
        *,
        where: str,
        on_bug: Callable[[BaseException], None],
    ) -> None:
        self._writer = writer
        self._state = state
        self._where = where
        self._on_bug = on_bug
        # Stdin messages for the sender; None only wakes it up.
        self._outbox: queue.Queue[Frame | None] = queue.Queue(maxsize=STDIN_QUEUE_DEPTH)
        self._input_done = threading.Event()
        self._open = True
        #: The socket error that stopped the sender, if one did.
        self.error: OSError | None = None
        #: Bytes handed to the socket (not just queued).
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="exec-sender", daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> None:
        if not self._open:
            raise StdinClosed("the restore command's input is already closed")
        view = memoryview(data).cast("B")
        while view:
            chunk, view = view[:MAX_STDIN_FRAME], view[MAX_STDIN_FRAME:]
            self._enqueue(self._writer.frame(STDIN, chunk))

    def close(self) -> None:
        """Have the sender send the CLOSE signal after the queued data; never blocks."""
        if not self._open:
            return
        self._open = False
        self._input_done.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)  # wakes an idle sender; a busy one gets there itself

    def refuse(self) -> None:
        """Refuse further writes without sending CLOSE (the stream is being torn down)."""
        self._open = False

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _enqueue(self, item: Frame) -> None:
        """Queue one stdin message; raise StdinClosed once the input can no longer arrive."""
        while True:
            ending = self._state.ending
            if ending is not None and ending.phase is Phase.BROKEN:
                raise StdinClosed(
                    f"the input of the restore command in {self._where} cannot be sent: the "
                    "exec stream failed on an internal error"
                ) from ending.bug
            if self.error is not None or ending is not None:
                raise StdinClosed(
                    f"the restore command in {self._where} stopped reading its input"
                ) from self.error
            try:
                self._outbox.put(item, timeout=0.1)
                return
            except queue.Full:
                continue  # the sender is blocked on the socket: that is the back-pressure

    def _run(self) -> None:
        try:
            self._send_until_done()
        except Exception as exc:
            self._on_bug(exc)

    def _send_until_done(self) -> None:
        """Send queued messages; after close() and an empty queue, CLOSE, and end.

        It also ends on a socket error or when the stream ends (kill() and close() end it):
        writers see either in _enqueue() instead of waiting on a full queue.
        """
        while self._state.is_open:
            try:
                item = self._outbox.get(timeout=0.2)
            except queue.Empty:
                item = None
            if item is not None:
                if not self._send(item):
                    return
                self.sent += len(item[1])  # the data; the channel byte is in the header
            elif self._input_done.is_set() and self._outbox.empty():
                self._send(self._writer.frame(CLOSE, bytes((STDIN,))))
                return

    def _send(self, frame: Frame) -> bool:
        try:
            self._writer.send(frame)
        except OSError as exc:
            if self._state.is_open:
                log.debug("sending stdin to %s failed: %s", self._where, exc)
            self.error = exc  # the reader learns how the stream ended; writers stop now
            return False
        return True
