"""Client-to-server WebSocket frames, built and masked here rather than by websocket-client.

Masking (RFC 6455 5.3) is the costliest step of a restore: websocket-client masks with Python
big integers at about 320 MB/s, :func:`mask_in_place` does 1.3 GB/s in pure Python, and
websockets' C routine, used when it is installed, is about three times faster still. The
frames are written to the connection by :class:`RawFrameWriter`, the one place that reaches
under websocket-client's public API, and says why.

Nothing here knows about Kubernetes or the exec channels.
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

try:  # websockets' C masking: about three times the pure-Python fallback below
    from websockets.speedups import apply_mask as _apply_mask_c
except ImportError:  # pragma: no cover - only where websockets has no binary wheel
    _apply_mask_c = None  # type: ignore[assignment]

__all__ = ["Frame", "MaskKeys", "RawFrameWriter", "frame_header", "mask_in_place", "masked"]

#: A binary message ready to write: its header (ending with the masked first payload byte)
#: and the rest of its payload, masked.
Frame = tuple[bytes, bytes | bytearray]

#: Random bytes drawn at once for masking keys: 1024 keys per getrandom call.
KEY_POOL_BYTES = 4096


def mask_in_place(key: bytes, buffer: bytearray) -> None:
    """Mask ``buffer`` in place, in pure Python at about 1.3 GB/s.

    XOR with a repeating 4-byte key is four interleaved byte streams, each XORed with one
    constant byte: a ``bytes.translate`` table per key byte over every fourth byte does it in
    C loops.
    """
    for lane in range(4):
        buffer[lane::4] = buffer[lane::4].translate(_XOR_TABLES[key[lane]])


_XOR_TABLES = [bytes(value ^ byte for value in range(256)) for byte in range(256)]


def masked(key: bytes, data: bytes | bytearray | memoryview) -> bytes | bytearray:
    """A masked copy of ``data``: by websockets' C routine when it is installed, else by
    :func:`mask_in_place` on a copy. The copy is the masking's own output, so ``data`` is left
    as it was and its owner may reuse it at once."""
    if _apply_mask_c is not None:
        return _apply_mask_c(data, key)
    copy = bytearray(data)
    mask_in_place(key, copy)
    return copy


def frame_header(length: int, key: bytes) -> bytes:
    """The header of a final, masked, binary WebSocket frame of ``length`` payload bytes."""
    if length < 126:
        head = struct.pack("!BB", 0x82, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x82, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, length)
    return head + key


class MaskKeys:
    """Fresh random masking keys, cut from a pool.

    Each os.urandom call gives up the GIL and waits to take it back, which costs more than the
    call itself when it is made per frame; the keys stay unpredictable, as RFC 6455 asks.
    Thread-safe: a restore's data is framed by the pipeline, its CLOSE by the sender thread.
    """

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0
        self._lock = threading.Lock()

    def next(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._pool):
                self._pool, self._offset = os.urandom(KEY_POOL_BYTES), 0
            self._offset += 4
            return self._pool[self._offset - 4 : self._offset]


class RawFrameWriter:
    """Sends binary frames built here over a connected ``websocket.WebSocket``.

    websocket-client has no public call that sends a frame it did not build and mask itself
    (``send_frame`` masks again, slowly), so this class, and only this class, uses two of its
    attributes: ``sock``, the connected socket (``None`` once it is shut down), and ``lock``,
    the lock its own sends take, so that a ping or a pong never lands inside one of these
    frames. ``connected`` is public.
    """

    def __init__(self, websocket: Any) -> None:
        self._websocket = websocket
        self._keys = MaskKeys()

    def frame(self, first: int, rest: bytes | bytearray | memoryview) -> Frame:
        """One binary message, masked: the byte ``first``, then ``rest``.

        ``rest`` is masked into a new buffer, the one copy a restore makes of its data on the
        way to the socket; the first byte is masked apart, so nothing is copied to prepend it.
        """
        key = self._keys.next()
        header = frame_header(len(rest) + 1, key) + bytes((first ^ key[0],))
        return header, masked(key[1:] + key[:1], rest)

    def send(self, frame: Frame) -> None:
        """Write a frame from :meth:`frame`. Raises OSError when the connection is closed or
        breaks."""
        header, payload = frame
        with self._websocket.lock:
            raw = self._websocket.sock
            if raw is None:
                raise ConnectionError("the WebSocket connection is closed")
            try:
                raw.sendall(header)
                if payload:
                    raw.sendall(payload)
            except OSError:
                raise
            except Exception as exc:
                # websocket-client closes the socket without this lock when it reads the
                # peer's end; ssl fails in odd ways (AttributeError) on a socket closed mid-call.
                if self._websocket.sock is raw and self._websocket.connected:
                    raise
                raise ConnectionError("the WebSocket connection closed while sending") from exc
