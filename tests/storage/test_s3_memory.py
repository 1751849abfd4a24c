"""Memory is bounded by part size x parts in flight, whatever the stream's length.

Shown through the client seam with an in-memory S3 client: Python's own allocation tracing
gives the peak of live part buffers, and a client that holds uploads shows ``write`` blocking
once the window is full. Neither depends on timing for passing.
"""

from __future__ import annotations

import threading
import tracemalloc
import zlib

import pytest

from streamer.storage import S3Settings
from streamer.storage.s3 import MIN_PART_SIZE, S3Storage
from tests.storage.conftest import MemoryS3

PART = MIN_PART_SIZE
MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("window", "parts"),
    [
        pytest.param(1, 12, id="one-in-flight"),
        pytest.param(2, 12, id="two-in-flight"),
        pytest.param(4, 24, id="four-in-flight"),
    ],
)
def test_peak_memory_is_bounded_by_the_window_not_the_stream(window: int, parts: int) -> None:
    client = MemoryS3()
    storage = S3Storage("b", S3Settings(part_size=PART, parts_in_flight=window), client=client)
    chunk = bytes(range(256)) * 4096  # 1 MiB, written again and again
    tracemalloc.start()
    try:
        with storage.open_writer("k") as writer:
            for _ in range(parts * PART // len(chunk)):
                writer.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.completed is not None
    assert len(client.completed) == parts
    # the buffers in flight plus the one being filled, and a little for bookkeeping
    assert peak <= (window + 1) * PART + MiB // 4, f"peak {peak / MiB:.2f} MiB"
    assert client.max_in_flight <= window


def test_write_blocks_while_the_window_is_full() -> None:
    window = 2
    client = MemoryS3(hold=True)
    storage = S3Storage("b", S3Settings(part_size=PART, parts_in_flight=window), client=client)
    writer = storage.open_writer("k")
    part = b"\x01" * PART
    accepted: list[int] = []

    def produce() -> None:
        for _ in range(6):
            writer.write(part)
            accepted.append(PART)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    client.wait_in_flight(window)
    # Every upload is held: the producer fills one more buffer, then must wait. (The join only
    # gives a writer without back-pressure the time to run ahead and be caught.)
    producer.join(timeout=0.3)
    assert producer.is_alive(), "write() did not block with the window full"
    assert sum(accepted) <= (window + 1) * PART
    assert client.in_flight == window
    client.release()
    producer.join(timeout=10)
    assert not producer.is_alive()
    writer.commit()
    assert client.max_in_flight == window
    assert client.completed is not None
    assert [p["PartNumber"] for p in client.completed] == [1, 2, 3, 4, 5, 6]
    assert set(client.parts.values()) == {(PART, zlib.crc32(part))}


def test_the_empty_stream_is_one_empty_put(memory_s3: MemoryS3) -> None:
    storage = S3Storage("b", S3Settings(), client=memory_s3)
    with storage.open_writer("k"):
        pass
    assert memory_s3.put == b""
    assert memory_s3.aborted  # the multipart upload opened for it
    assert memory_s3.completed is None
