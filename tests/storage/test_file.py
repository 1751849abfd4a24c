"""The file storage: the same promise as S3, on a local directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.errors import ObjectNotFound, StorageError
from streamer.storage import open_storage
from streamer.storage.file import FileStorage
from tests.storage.conftest import payload, read_all, write_in_chunks, write_then_fail

MiB = 1024 * 1024
SIZES = [
    pytest.param(0, id="empty"),
    pytest.param(1, id="one-byte"),
    pytest.param(MiB, id="one-mebibyte"),
    pytest.param(3 * MiB + 1, id="several-chunks-plus-one"),
]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(tmp_path: Path, size: int) -> None:
    storage = FileStorage(tmp_path)
    data = payload(size)
    with storage.open_writer("backups/2026/db.sql") as writer:
        write_in_chunks(writer, data)
    assert (tmp_path / "backups/2026/db.sql").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "backups/2026").iterdir()) == ["db.sql"]
    reader = storage.open_reader("backups/2026/db.sql")
    assert reader.size == size
    assert read_all(reader) == data


def test_open_storage_maps_file_urls_to_absolute_paths(tmp_path: Path) -> None:
    storage, key = open_storage((tmp_path / "a b" / "x.sql").as_uri())
    assert isinstance(storage, FileStorage)
    assert "/" + key == str(tmp_path / "a b" / "x.sql")
    with storage.open_writer(key) as writer:
        writer.write(b"data")
    assert (tmp_path / "a b" / "x.sql").read_bytes() == b"data"
    assert storage.url(key) == (tmp_path / "a b" / "x.sql").as_uri()


def test_nothing_is_visible_before_commit(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    writer = storage.open_writer("db.sql")
    writer.write(b"partial")
    assert not (tmp_path / "db.sql").exists()
    writer.commit()
    assert (tmp_path / "db.sql").read_bytes() == b"partial"


@pytest.mark.parametrize(
    "size", [pytest.param(0, id="empty"), pytest.param(2 * MiB, id="two-mebibytes")]
)
def test_abort_leaves_nothing_and_keeps_the_existing_object(tmp_path: Path, size: int) -> None:
    (tmp_path / "db.sql").write_bytes(b"the good backup")
    with pytest.raises(RuntimeError):
        write_then_fail(FileStorage(tmp_path), "db.sql", payload(size))
    assert (tmp_path / "db.sql").read_bytes() == b"the good backup"
    assert [p.name for p in tmp_path.iterdir()] == ["db.sql"]


def test_closing_without_commit_aborts(tmp_path: Path) -> None:
    writer = FileStorage(tmp_path).open_writer("db.sql")
    writer.write(b"partial")
    writer.close()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_writing_after_commit_is_an_error(tmp_path: Path) -> None:
    writer = FileStorage(tmp_path).open_writer("db.sql")
    writer.commit()
    with pytest.raises(StorageError, match="after it was committed"):
        writer.write(b"x")


def test_a_missing_file_is_object_not_found(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match=str(tmp_path / "nope.sql")):
        FileStorage(tmp_path).open_reader("nope.sql")


@pytest.mark.parametrize(
    ("arrange", "key", "message"),
    [
        pytest.param(lambda p: (p / "dir").mkdir(), "dir", "is a directory", id="key-is-a-dir"),
        pytest.param(
            lambda p: (p / "file").write_bytes(b""),
            "file/db.sql",
            "cannot create a file in",
            id="parent-is-a-file",
        ),
    ],
)
def test_unusable_destinations_are_storage_errors(
    tmp_path: Path, arrange: object, key: str, message: str
) -> None:
    arrange(tmp_path)  # type: ignore[operator]
    with pytest.raises(StorageError, match=message):
        FileStorage(tmp_path).open_writer(key)


def test_reading_a_directory_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(StorageError, match="is a directory"):
        FileStorage(tmp_path).open_reader("dir")
