"""The read-ahead and write-behind threads: order, bounds, errors, and no hangs on failure."""

from __future__ import annotations

import io
import threading
import time

import pytest

from streamer.stages.buffering import Coalesce, ReadAhead, WriteBehind


class CountingReader:
    """Gives ``chunks`` chunks of 10 bytes, recording how far ahead it was read."""

    def __init__(self, chunks: int, fail_at: int | None = None) -> None:
        self.chunks, self.fail_at, self.reads = chunks, fail_at, 0

    def read(self, size: int = -1) -> bytes:
        if self.reads == self.fail_at:
            raise ConnectionResetError("source broke")
        if self.reads == self.chunks:
            return b""
        self.reads += 1
        return bytes([self.reads % 256]) * 10


def read_all(reader: ReadAhead, size: int) -> bytes:
    out = bytearray()
    while piece := reader.read(size):
        out += piece
    return bytes(out)


@pytest.mark.parametrize("size", [1, 3, 10, 64, -1])
def test_read_ahead_keeps_order(size: int) -> None:
    with ReadAhead(CountingReader(50), chunk=10) as reader:
        assert read_all(reader, size) == b"".join(bytes([i]) * 10 for i in range(1, 51))


def test_read_ahead_is_bounded() -> None:
    source = CountingReader(1000)
    with ReadAhead(source, chunk=10, depth=3) as reader:
        assert reader.read(1)
        time.sleep(0.3)
        # one chunk taken, three queued, one blocked in put: never the whole stream
        assert source.reads <= 5


def test_read_ahead_raises_the_source_error_in_the_consumer() -> None:
    with (
        ReadAhead(CountingReader(10, fail_at=4), chunk=10) as reader,
        pytest.raises(ConnectionResetError, match="source broke"),
    ):
        read_all(reader, 10)


def test_read_ahead_close_stops_a_producer_blocked_on_a_full_queue() -> None:
    reader = ReadAhead(CountingReader(10**9), chunk=10, depth=1)
    time.sleep(0.1)
    reader.close()
    assert not reader._thread.is_alive()


def test_coalesce_gathers_small_writes() -> None:
    sizes: list[int] = []

    class Sink:
        def write(self, data: bytes | memoryview) -> int:
            sizes.append(len(data))
            return len(data)

    gathered = Coalesce(Sink(), 100)
    for _ in range(25):
        gathered.write(b"x" * 9)
    gathered.write(b"y" * 500)
    gathered.flush()
    assert sum(sizes) == 25 * 9 + 500
    assert all(size >= 100 for size in sizes[:-1])


def test_write_behind_passes_everything_in_order() -> None:
    sink = io.BytesIO()
    behind = WriteBehind(sink)
    for i in range(100):
        behind.write(bytes([i]) * 7)
    behind.close()
    assert sink.getvalue() == b"".join(bytes([i]) * 7 for i in range(100))


def test_write_behind_raises_the_sink_error_to_the_producer() -> None:
    class Broken:
        def write(self, data: bytes | memoryview) -> int:
            raise BrokenPipeError("reader went away")

    def keep_writing() -> None:
        for _ in range(100):
            behind.write(b"x")
            time.sleep(0.01)

    behind = WriteBehind(Broken())
    with pytest.raises(BrokenPipeError):
        keep_writing()
    with pytest.raises(BrokenPipeError):
        behind.close()


def test_abandon_does_not_wait_for_a_stuck_sink() -> None:
    release = threading.Event()

    class Stuck:
        def write(self, data: bytes | memoryview) -> int:
            release.wait()
            return len(data)

    behind = WriteBehind(Stuck(), depth=1)
    behind.write(b"a")
    behind.write(b"b")
    started = time.monotonic()
    behind.abandon()  # must return at once although the sink is blocked
    assert time.monotonic() - started < 1
    release.set()
    behind._thread.join(timeout=5)
    assert not behind._thread.is_alive()
