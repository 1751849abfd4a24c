"""Aborting an S3 upload is idempotent, and an interrupted commit or abort still aborts.

A Ctrl-C (KeyboardInterrupt) can arrive while the writer waits for S3. Shown through the
client seam with an in-memory client that raises KeyboardInterrupt from a chosen call, as
the interrupt would surface while the main thread waits for that response.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from streamer.storage import S3Settings
from streamer.storage.s3 import MIN_PART_SIZE, S3Storage
from tests.storage.conftest import MemoryS3

PART = MIN_PART_SIZE


def _writer(client: MemoryS3) -> Any:
    writer = S3Storage("b", S3Settings(part_size=PART), client=client).open_writer("k")
    writer.write(b"\x01" * (PART + 1))
    return writer


def test_aborting_twice_aborts_the_upload_once(memory_s3: MemoryS3) -> None:
    writer = _writer(memory_s3)
    writer.abort()
    writer.abort()
    writer.close()
    assert memory_s3.aborts == 1
    assert memory_s3.completed is None


RESUME = [
    pytest.param(lambda w: w.abort(), id="abort-again"),
    pytest.param(lambda w: w.close(), id="close"),
]


@pytest.mark.parametrize("resume", RESUME)
def test_an_interrupted_abort_is_resumed_by_the_next_call(resume: Callable[[Any], None]) -> None:
    client = MemoryS3(interrupt={"abort_multipart_upload": 1})
    writer = _writer(client)
    with pytest.raises(KeyboardInterrupt):
        writer.abort()
    assert not client.aborted
    resume(writer)
    assert client.aborted
    assert writer.closed


def test_an_interrupted_commit_aborts_the_upload() -> None:
    client = MemoryS3(interrupt={"complete_multipart_upload": 1})
    writer = _writer(client)
    with pytest.raises(KeyboardInterrupt):
        writer.commit()
    assert client.completed is None
    assert client.aborts == 1
    writer.abort()  # nothing left to do
    assert client.aborts == 1


@pytest.mark.parametrize("resume", RESUME)
def test_a_commit_interrupted_twice_still_aborts_on_the_next_call(
    resume: Callable[[Any], None],
) -> None:
    # The first interrupt stops the commit; the second one stops the abort the commit started.
    client = MemoryS3(interrupt={"complete_multipart_upload": 1, "abort_multipart_upload": 1})
    writer = _writer(client)
    with pytest.raises(KeyboardInterrupt):
        writer.commit()
    assert not client.aborted
    resume(writer)
    assert client.aborted
    assert client.completed is None


def _backup_interrupted(storage: S3Storage) -> None:
    with storage.open_writer("k") as writer:
        writer.write(b"\x01" * (PART + 1))
        raise KeyboardInterrupt  # the abort __exit__ starts is interrupted as well


def test_a_writer_interrupted_inside_its_with_block_still_aborts() -> None:
    client = MemoryS3(interrupt={"abort_multipart_upload": 1})
    with pytest.raises(KeyboardInterrupt):
        _backup_interrupted(S3Storage("b", S3Settings(part_size=PART), client=client))
    gc.collect()  # the writer is garbage now: collecting it closes it, which resumes the abort
    assert client.aborted
