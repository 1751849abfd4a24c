"""The pipeline functions directly, with a storage and a runner that record what they were asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from streamer.errors import CompressionError, EncryptionError, SourceError, StreamerError
from streamer.pipeline import RestoreOptions, restore, verify
from streamer.sources.base import Command, ExitStatus, Mode
from streamer.stages.age import AGE_MAGIC
from streamer.stages.gzip import GZIP_MAGIC
from streamer.storage.base import ObjectReader
from streamer.storage.file import FileStorage


class RecordingStorage(FileStorage):
    """File storage that keeps every reader it opened."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.readers: list[ObjectReader] = []

    def open_reader(self, key: str) -> ObjectReader:
        reader = super().open_reader(key)
        self.readers.append(reader)
        return reader


class RecordingCommand(Command):
    """Takes all input and records the calls the pipeline makes, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def readinto(self, buffer: memoryview) -> int:
        return 0

    def write(self, data: bytes | memoryview) -> None:
        self.calls.append("write")

    def close_stdin(self) -> None:
        self.calls.append("close_stdin")

    def wait(self) -> ExitStatus:
        self.calls.append("wait")
        return ExitStatus(0, "exit code 0")

    def kill(self) -> None:
        self.calls.append("kill")

    def close(self) -> None:
        self.calls.append("close")


class RecordingRunner:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.command = RecordingCommand()

    def start(self, argv: Sequence[str], mode: Mode) -> Command:
        if self.fail:
            raise SourceError("cannot start it")
        return self.command

    def describe(self) -> str:
        return "recording"


def _restore(storage: FileStorage, runner: RecordingRunner | None = None) -> None:
    restore(storage, "object", runner or RecordingRunner(), ["cat"], RestoreOptions())


def _verify(storage: FileStorage) -> None:
    verify(storage, "object", RestoreOptions())


@pytest.mark.parametrize(
    ("content", "run", "error"),
    [
        pytest.param(b"plain data", _verify, None, id="verify"),
        pytest.param(b"plain data", _restore, None, id="restore"),
        pytest.param(AGE_MAGIC + b"x", _verify, EncryptionError, id="verify-no-identity"),
        pytest.param(AGE_MAGIC + b"x", _restore, EncryptionError, id="restore-no-identity"),
        pytest.param(GZIP_MAGIC + b"junk", _verify, CompressionError, id="verify-corrupt"),
        pytest.param(GZIP_MAGIC + b"junk", _restore, CompressionError, id="restore-corrupt"),
        pytest.param(
            b"plain data",
            lambda storage: _restore(storage, RecordingRunner(fail=True)),
            SourceError,
            id="restore-command-does-not-start",
        ),
    ],
)
def test_the_stored_object_is_closed_however_the_run_ends(
    tmp_path: Path,
    content: bytes,
    run: Callable[[FileStorage], None],
    error: type[StreamerError] | None,
) -> None:
    (tmp_path / "object").write_bytes(content)
    storage = RecordingStorage(tmp_path)
    if error is None:
        run(storage)
    else:
        with pytest.raises(error):
            run(storage)
    assert [reader.closed for reader in storage.readers] == [True]


def test_a_broken_restore_stream_kills_the_command_before_it_sees_the_end_of_input(
    tmp_path: Path,
) -> None:
    # The command must never see EOF on a partial input: it would take it for a whole backup.
    (tmp_path / "object").write_bytes(GZIP_MAGIC + b"junk")
    runner = RecordingRunner()
    with pytest.raises(CompressionError):
        _restore(FileStorage(tmp_path), runner)
    calls = runner.command.calls
    assert "kill" in calls
    assert "close_stdin" not in calls[: calls.index("kill")]
