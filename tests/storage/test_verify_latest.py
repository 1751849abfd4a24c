"""``streamer verify --latest s3://bucket/prefix/``: the newest object under a prefix, verified.

S3 (and moto) list ``LastModified`` to the second, so objects written together tie; the tie
goes to the last key in order (the pure rule is tested alone). The listing pages are real
ListObjectsV2 pages from moto, and a newer object is written until moto dates it a second on.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from streamer.cli import main
from streamer.errors import ObjectNotFound
from streamer.storage.s3 import S3Storage
from streamer.storage.s3.listing import newest
from tests.conftest import FAKE_SECRET
from tests.faultproxy import FaultProxy
from tests.storage.conftest import settings

T0 = datetime.datetime(2024, 3, 7, 9, 5, 2, tzinfo=datetime.UTC)
SECOND = datetime.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param([], None, id="none"),
        pytest.param([("a", T0)], "a", id="one"),
        pytest.param([("b", T0 + SECOND), ("c", T0)], "b", id="by-time-not-key"),
        pytest.param([("z", T0), ("a", T0 + SECOND), ("m", T0)], "a", id="newest-first-key"),
        pytest.param([("db-2", T0), ("db-10", T0), ("db-1", T0)], "db-2", id="tie-last-key"),
    ],
)
def test_the_newest_entry_wins_and_a_tie_goes_to_the_last_key(
    entries: list[tuple[str, datetime.datetime]], expected: str | None
) -> None:
    assert newest(entries) == expected
    assert newest(reversed(entries)) == expected


def _modified(client: Any, bucket: str, key: str) -> datetime.datetime:
    (item,) = client.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    return item["LastModified"]  # type: ignore[no-any-return]


def _put_later_than(client: Any, bucket: str, key: str, body: bytes, others: list[str]) -> None:
    """Write ``key`` until S3 dates it after every one of ``others`` (a second, at most)."""
    latest = max(_modified(client, bucket, other) for other in others)
    deadline = time.monotonic() + 10
    while True:
        client.put_object(Bucket=bucket, Key=key, Body=body)
        if _modified(client, bucket, key) > latest:
            return
        assert time.monotonic() < deadline, "S3's clock did not move on"
        threading.Event().wait(0.05)


def test_the_newest_is_found_across_pages_by_time_not_by_key(
    s3_client: Any, bucket: str, s3_env: str, proxy: FaultProxy
) -> None:
    olds = [f"mysql/db-{n}.sql" for n in range(2, 7)]
    for key in olds:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"old")
    s3_client.put_object(Bucket=bucket, Key="mysql/", Body=b"")  # a console's "folder"
    # The newest sorts first, so a listing that compared keys, or read one page, would miss it.
    _put_later_than(s3_client, bucket, "mysql/db-1.sql", b"new", olds)
    s3_client.put_object(Bucket=bucket, Key="other/db-9.sql", Body=b"newer, elsewhere")
    storage = S3Storage(bucket, settings(endpoint_url=proxy.url))
    assert storage.latest("mysql/", page_size=2) == "mysql/db-1.sql"
    pages = proxy.requests(r"^GET .*list-type=2")
    assert len(pages) == 4  # 7 keys (the folder too), 2 a page
    assert all("continuation-token=" in page for page in pages[1:])


def test_no_object_under_the_prefix_is_an_error(bucket: str, s3_env: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="elsewhere/k", Body=b"x")
    s3_client.put_object(Bucket=bucket, Key="mysql/", Body=b"")
    with pytest.raises(ObjectNotFound, match=rf"no object under s3://{bucket}/mysql/: check"):
        S3Storage(bucket, settings()).latest("mysql/")


# --- the command -------------------------------------------------------------------------------


def streamer(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert FAKE_SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_verify_latest_verifies_the_newest_backup(
    s3_client: Any, bucket: str, s3_env: str, tmp_path: Path
) -> None:
    old = gzip.compress(b"old dump\n")
    for key in ("mysql/a.sql.gz", "mysql/b.sql.gz"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=old)
    new = gzip.compress(b"the newest dump\n" * 1000)
    _put_later_than(s3_client, bucket, "mysql/0.sql.gz", new, ["mysql/a.sql.gz", "mysql/b.sql.gz"])
    result = streamer(
        "verify", "--latest", f"s3://{bucket}/mysql/", "--json", "--outputs", str(tmp_path / "o")
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["path"] == "mysql/0.sql.gz"
    assert summary["sha256"] == hashlib.sha256(new).hexdigest()
    assert summary["plaintextBytes"] == len(b"the newest dump\n" * 1000)
    assert summary["compressed"] is True
    assert (tmp_path / "o" / "path").read_text() == "mysql/0.sql.gz"
    assert f"the newest object under s3://{bucket}/mysql/ is" in result.stderr


def test_verify_latest_fails_on_a_corrupted_newest(
    s3_client: Any, bucket: str, s3_env: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="p/good.gz", Body=gzip.compress(b"fine"))
    _put_later_than(s3_client, bucket, "p/bad.gz", gzip.compress(b"fine")[:-6], ["p/good.gz"])
    result = streamer("verify", "--latest", f"s3://{bucket}/p/")
    assert result.exit_code == 1
    assert f"s3://{bucket}/p/bad.gz" in result.stderr


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        pytest.param("s3://{bucket}/none/", 1, "there is no object under s3://{bucket}/none/",
                     id="empty-prefix"),
        pytest.param("s3://no-such-bucket-xyz/p/", 1, "'no-such-bucket-xyz' does not exist",
                     id="missing-bucket"),
        pytest.param("file:///tmp/", 2, "finding the newest object needs an s3:// URL",
                     id="file-url"),
    ],
)  # fmt: skip
def test_verify_latest_says_why_it_found_nothing(
    bucket: str, s3_env: str, url: str, code: int, message: str
) -> None:
    result = streamer("verify", "--latest", url.format(bucket=bucket))
    assert result.exit_code == code
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("streamer: error:")]
    assert message.format(bucket=bucket) in line
