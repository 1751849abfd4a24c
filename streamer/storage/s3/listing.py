"""The newest object under a prefix: for ``streamer verify --latest``, without a cluster.

A user who runs the streamer alone names backups by date in a template, and wants to check the
last one without looking its key up. "Newest" is S3's ``LastModified``, not the key: a key's
date format may not sort, and a key may be rewritten. Listing pages through every object under
the prefix (ListObjectsV2, 1,000 keys a page), each page a request under the retry policy.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Iterator
from typing import Any

from streamer.errors import ObjectNotFound
from streamer.storage.s3.client import Bucket

__all__ = ["PAGE_SIZE", "latest_key", "newest"]

#: Keys per ListObjectsV2 page (S3's maximum).
PAGE_SIZE = 1000

#: A key and when its object was last modified.
_Entry = tuple[str, datetime.datetime]


def newest(entries: Iterable[_Entry]) -> str | None:
    """The key of the entry modified last; of those modified at the same instant, the last
    key in order (names with a date sort the newest last). ``None`` for no entries."""
    best: tuple[datetime.datetime, str] | None = None
    for key, modified in entries:
        if best is None or (modified, key) > best:
            best = (modified, key)
    return best[1] if best is not None else None


def _entries(bucket: Bucket, prefix: str, page_size: int) -> Iterator[_Entry]:
    token: dict[str, Any] = {}
    while True:
        request = functools.partial(
            bucket.client.list_objects_v2,
            Bucket=bucket.name,
            Prefix=prefix,
            MaxKeys=page_size,
            **token,
        )
        page = bucket.call("list_objects_v2", prefix, request)
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if not key.endswith("/"):  # a "folder" a console made, not a backup
                yield key, item["LastModified"]
        if not page.get("IsTruncated"):
            return
        token = {"ContinuationToken": page["NextContinuationToken"]}


def latest_key(bucket: Bucket, prefix: str, page_size: int = PAGE_SIZE) -> str:
    """The key of the newest object whose key starts with ``prefix``; ObjectNotFound if none."""
    found = newest(_entries(bucket, prefix, page_size))
    if found is None:
        raise ObjectNotFound(
            f"there is no object under {bucket.url(prefix)}: check the bucket and the prefix"
        )
    return found
