"""gzip compression that any ``gzip -d`` reads, as fast as this machine allows.

Levels follow the seed's (Go's) range: -2 is Huffman-only, -1 (or none) the default, 0 stores,
1-9 trade speed for size. Each level is served by the fastest engine that keeps the gzip format,
chosen by measurement on a SQL dump (``bench/``): ISA-L (``isal``) for levels 1-3, ~400-470
MB/s on one core, and zlib-ng for 4-9. zlib-ng's own level 9 compresses SQL *worse* than its 8,
so our 9 uses its 8: a higher level never gives larger output. The default is ISA-L level 3:
about 14x faster than ``gzip -6`` with output under 5% larger.

:class:`GzipReader` compresses what it reads from another reader (a pull stage, as pyrage's
encryptor pulls); :class:`GunzipWriter` decompresses what is written to it into another writer
(a push stage, as pyrage's decryptor pushes). Concatenated gzip members (``pigz``, ``cat a.gz
b.gz``) decompress as one stream; a missing trailer or a bad CRC is a :class:`CompressionError`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from isal import isal_zlib
from zlib_ng import zlib_ng

from streamer.contract import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL
from streamer.errors import CompressionError, ConfigError

__all__ = [
    "DEFAULT_LEVEL",
    "GZIP_MAGIC",
    "MAX_LEVEL",
    "MIN_LEVEL",
    "Engine",
    "GunzipWriter",
    "GzipReader",
    "engine_for",
]

GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 31  # deflate with a gzip header and trailer
#: How much input is compressed at a time; large enough for ISA-L to run at full speed.
READ_CHUNK = 1 << 20
#: How much gzip is inflated at a time. Its output (~2.6x on a SQL dump) stays small enough
#: to reuse freed memory and stay in cache; a whole 1 MiB block at once is ~15% slower,
#: mostly in page faults for each fresh multi-MiB output buffer.
INFLATE_CHUNK = 1 << 18


@dataclass(frozen=True)
class Engine:
    """Which library and which of its levels serve one of our levels."""

    name: str
    module: Any
    level: int
    strategy: int | None = None

    def compressobj(self) -> Any:
        if self.strategy is None:
            return self.module.compressobj(self.level, self.module.DEFLATED, GZIP_WBITS)
        return self.module.compressobj(
            self.level, self.module.DEFLATED, GZIP_WBITS, 8, self.strategy
        )


_ENGINES: dict[int, Engine] = {
    -2: Engine("zlib-ng", zlib_ng, 6, zlib_ng.Z_HUFFMAN_ONLY),
    0: Engine("zlib", zlib, 0),
    1: Engine("isal", isal_zlib, 1),
    2: Engine("isal", isal_zlib, 2),
    3: Engine("isal", isal_zlib, 3),
    4: Engine("zlib-ng", zlib_ng, 4),
    5: Engine("zlib-ng", zlib_ng, 5),
    6: Engine("zlib-ng", zlib_ng, 6),
    7: Engine("zlib-ng", zlib_ng, 7),
    8: Engine("zlib-ng", zlib_ng, 8),
    9: Engine("zlib-ng", zlib_ng, 8),
}
_ENGINES[DEFAULT_LEVEL] = _ENGINES[3]


def engine_for(level: int | None) -> Engine:
    """The engine for a user's level; ConfigError outside -2..9."""
    if level is None:
        level = DEFAULT_LEVEL
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ConfigError(
            f"compression level {level} is out of range: use {MIN_LEVEL}..{MAX_LEVEL} "
            "(-1 default, 0 store, 1 fastest … 9 smallest, -2 Huffman only)"
        )
    return _ENGINES[level]


class _Source(Protocol):
    def readinto(self, buffer: memoryview, /) -> int: ...


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class GzipReader:
    """Reads ``source`` and gives its gzip compression, one gzip member for the whole stream."""

    def __init__(self, source: _Source, level: int | None = None) -> None:
        self._source = source
        self._compressor = engine_for(level).compressobj()
        self._input = bytearray(READ_CHUNK)
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._pending and not self._done:
            self._fill()
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, memoryview(b"")
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return bytes(out)

    def _fill(self) -> None:
        view = memoryview(self._input)
        filled = 0
        # Fill the whole chunk: pipes and sockets return little at a time, and ISA-L is
        # fastest on large inputs.
        while filled < len(view):
            n = self._source.readinto(view[filled:])
            if not n:
                self._done = True
                break
            filled += n
        out = self._compressor.compress(view[:filled]) if filled else b""
        if self._done:
            out += self._compressor.flush()
        self._pending = memoryview(out)


# isal's stub declares IsalError as an instance, not a class.
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (isal_zlib.IsalError, zlib.error)  # type: ignore[assignment]


class GunzipWriter:
    """Decompresses gzip written to it into ``sink``; call :meth:`finish` at the end."""

    def __init__(self, sink: _Sink, what: str) -> None:
        self._sink = sink
        self._what = what
        self._decompressor: Any = isal_zlib.decompressobj(GZIP_WBITS)
        self._member_started = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        for start in range(0, len(view), INFLATE_CHUNK):
            self._inflate(view[start : start + INFLATE_CHUNK])
        return len(view)

    def _inflate(self, data: bytes | memoryview) -> None:
        while data:
            try:
                out = self._decompressor.decompress(data)
            except _INFLATE_ERRORS as exc:
                raise CompressionError(f"{self._what} is not valid gzip data: {exc}") from exc
            self._member_started = True
            if out:
                self._sink.write(out)
            if self._decompressor.eof:
                # Another member may follow (pigz, concatenated files).
                data = self._decompressor.unused_data
                self._decompressor = isal_zlib.decompressobj(GZIP_WBITS)
                self._member_started = False
            else:
                data = b""

    def finish(self) -> None:
        """Check the stream ended at a member boundary (not truncated)."""
        if self._member_started:
            raise CompressionError(
                f"{self._what} is truncated: the gzip stream ends before its trailer"
            )
