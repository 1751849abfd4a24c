"""Storage URLs: ``s3://bucket/key`` or ``file:///path`` to a storage and the object's key.

The factory is the one module that knows every storage, so the contract (``base``) knows none.
The S3 adapter is imported only for an ``s3://`` URL: boto3 adds about 150 ms to the start of
every run that never talks to S3 (``file://`` runs, ``--help``).
"""

from __future__ import annotations

from urllib.parse import unquote

from streamer.errors import ConfigError
from streamer.storage.base import Storage
from streamer.storage.file import FileStorage
from streamer.storage.settings import S3Settings

__all__ = ["open_storage"]


def open_storage(url: str, settings: S3Settings | None = None) -> tuple[Storage, str]:
    """Parse ``s3://bucket/key`` or ``file:///path`` into a storage and a key.

    S3 keys are taken literally, as ``aws s3`` does: ``#``, ``?`` and ``%`` are part of the
    key, not a fragment, a query or an escape, so every key a path template can render can be
    restored by the URL a backup reports. File URLs are percent-decoded (RFC 8089, as
    ``Path.as_uri()`` writes them) but never split at ``#`` or ``?``. File storage is rooted
    at ``/``, so its keys are absolute paths without their leading slash. The key may be empty
    or a prefix: a caller that renders the rest from a path template joins the two.
    """
    scheme, separator, rest = url.partition("://")
    if separator and scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ConfigError(f"{url!r} has no bucket: write s3://BUCKET/KEY")
        from streamer.storage.s3 import S3Storage  # late: see the module docstring

        return S3Storage(bucket, settings or S3Settings()), key
    if separator and scheme == "file":
        host, _, path = rest.partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(f"{url!r}: file URLs take an absolute path, file:///path")
        if settings is not None and settings.object_lock is not None:
            raise ConfigError(
                f"{url!r}: Object Lock needs an s3:// destination in a bucket with Object Lock "
                "enabled; a file cannot be locked"
            )
        return FileStorage("/"), unquote(path)
    raise ConfigError(
        f"unsupported storage URL {url!r}: use s3://BUCKET/KEY or file:///ABSOLUTE/PATH"
    )
