"""File storage: a local directory (or a mounted volume) holding objects as plain files.

It keeps the same promise as S3: an object appears only when it is complete. The writer
writes a hidden temporary file in the destination directory (so the final rename stays on one
filesystem and is atomic), fsyncs it, renames it over the key on commit and fsyncs the
directory; abort deletes the temporary file. An existing file under the key is replaced only
by a committed object.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from streamer.errors import ObjectNotFound, StorageError
from streamer.storage.base import ObjectReader, ObjectWriter, Storage

__all__ = ["FileStorage"]

#: Temporary files are named ``.<name>.<random>.partial`` beside the object.
TEMP_SUFFIX = ".partial"


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


class FileStorage(Storage):
    """Objects as files under ``root``; keys are paths relative to it."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def url(self, key: str) -> str:
        return self.path(key).absolute().as_uri()

    def open_writer(self, key: str) -> ObjectWriter:
        return _FileWriter(self.path(key))

    def open_reader(self, key: str) -> ObjectReader:
        return _FileReader(self.path(key))


class _FileWriter(ObjectWriter):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._state = "starting"
        if not path.name or path.is_dir():
            raise StorageError(f"{path} is a directory: the destination must name a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
            )
        except OSError as exc:
            raise StorageError(f"cannot create a file in {path.parent}: {_describe(exc)}") from exc
        self._temp = Path(temp)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._state = "open"

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._state != "open":
            raise StorageError(f"write to {self._path} after it was {self._state}")
        view = memoryview(data).cast("B")
        try:
            written = 0
            while written < len(view):
                written += self._file.write(view[written:]) or 0
        except OSError as exc:
            raise StorageError(f"writing {self._path} failed: {_describe(exc)}") from exc
        return written

    def commit(self) -> None:
        if self._state == "committed":
            return
        if self._state != "open":
            raise StorageError(f"cannot commit {self._path}: it was {self._state}")
        try:
            os.fsync(self._file.fileno())
            self._file.close()
            self._temp.replace(self._path)
            directory = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            self.abort()
            raise StorageError(f"committing {self._path} failed: {_describe(exc)}") from exc
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self.close()

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()
        self.close()


class _FileReader(ObjectReader):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        try:
            self._file = path.open("rb", buffering=0)
            self.size = os.fstat(self._file.fileno()).st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{path} does not exist: check the path") from exc
        except IsADirectoryError as exc:
            raise StorageError(f"{path} is a directory, not a backup file") from exc
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {_describe(exc)}") from exc

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return self._file.readinto(buffer) or 0
        except OSError as exc:
            raise StorageError(f"reading {self._path} failed: {_describe(exc)}") from exc

    def close(self) -> None:
        if not self.closed and hasattr(self, "_file"):
            self._file.close()
        super().close()
