"""Fixtures of the streamer's CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import AgeKey
from tests.streamer.test_cli import DATA, backup


@pytest.fixture
def stored(bucket: str, tmp_path: Path, age_key: AgeKey) -> str:
    """An encrypted, gzipped backup of DATA, stored with the CLI: its URL."""
    data_file = tmp_path / "dump.sql"
    data_file.write_bytes(DATA)
    url = f"s3://{bucket}/db.sql"
    result = backup(url, data_file, "-r", age_key.recipient)
    assert result.exit_code == 0, result.stderr
    return url
