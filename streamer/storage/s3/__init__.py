"""S3 storage: a streamed multipart upload that appears only on commit, and streamed readers.

The only package that imports boto3 and botocore; their exceptions are translated into
:class:`~streamer.errors.StorageError` here and never leave it. One job per module::

    parts        the part size policy: any stream up to 5 TiB fits 10,000 parts (pure)
    retry        the one retry policy: what is retried, how many times, the backoff
    errors       botocore errors -> StorageError messages a user can act on
    client       make_client, and Bucket: every request retried and translated
    upload       S3Writer: where the multipart upload is created, completed and aborted
    object_lock  Object Lock: the bucket check, the locked writes, the read-back after
    download     the readers: one streamed GET, or parallel ranged GETs
    listing      the newest object under a prefix
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import boto3

from streamer.errors import ConfigError, ObjectNotFound
from streamer.storage.base import ObjectReader, ObjectWriter, Storage
from streamer.storage.s3 import object_lock
from streamer.storage.s3.client import Bucket, S3Client, make_client
from streamer.storage.s3.download import S3RangeReader, S3StreamReader
from streamer.storage.s3.listing import PAGE_SIZE, latest_key
from streamer.storage.s3.parts import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    part_size,
    validate_first_part_size,
)
from streamer.storage.s3.upload import S3Writer
from streamer.storage.settings import S3Settings

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "S3Storage",
    "make_client",
    "part_size",
]


class S3Storage(Storage):
    """Objects in one S3 bucket. ``client`` is the seam: tests pass instrumented clients.

    Without a ``client``, one is made by ``session`` (default: a session of the standard AWS
    environment) and ``settings``. The secrets ``session`` signs with are redacted from every
    message.
    """

    def __init__(
        self,
        bucket: str,
        settings: S3Settings | None = None,
        client: S3Client | None = None,
        *,
        part_sizes: Callable[[int], int] | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.bucket = bucket
        self.settings = settings or S3Settings()
        for name in ("parts_in_flight", "ranges_in_flight", "max_attempts"):
            value = getattr(self.settings, name)
            if value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1, not {value}")
        first = self.settings.part_size or DEFAULT_PART_SIZE
        validate_first_part_size(first)
        #: Which size part N gets; the policy is replaceable so tests can exercise growth cheaply.
        self.part_sizes = part_sizes or functools.partial(part_size, first_part_size=first)
        self.range_size = first
        if client is None:
            session = session or boto3.session.Session()
            client = make_client(self.settings, session)
        self._bucket = Bucket(bucket, client, self.settings, session)

    @classmethod
    def with_keys(
        cls,
        bucket: str,
        settings: S3Settings | None = None,
        *,
        access_key_id: str,
        secret_access_key: str,
    ) -> S3Storage:
        """A storage that signs with these keys, not the environment's credentials."""
        session = boto3.session.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key
        )
        return cls(bucket, settings, session=session)

    @property
    def client(self) -> S3Client:
        return self._bucket.client

    def url(self, key: str) -> str:
        return self._bucket.url(key)

    def open_writer(self, key: str) -> ObjectWriter:
        """Create the multipart upload now, so a bad bucket or credentials fail before a dump."""
        return S3Writer(self._bucket, key, self.part_sizes)

    def open_reader(self, key: str) -> ObjectReader:
        """Stream the object over one connection, or in parallel ranges if so configured."""
        if self.settings.ranges_in_flight > 1:
            return S3RangeReader(self._bucket, key, self.range_size)
        return S3StreamReader(self._bucket, key)

    def latest(self, prefix: str, *, page_size: int = PAGE_SIZE) -> str:
        """The key of the newest object under ``prefix`` (by LastModified, then key)."""
        return latest_key(self._bucket, prefix, page_size)

    def check_object_lock(self) -> None:
        """Raise StorageError unless the bucket has Object Lock enabled (saying how to fix it)."""
        object_lock.check_bucket(self._bucket)

    def check(self, *, cancelled: threading.Event | None = None) -> None:
        """Whether the bucket exists and the credentials may use it: a listing of one key.

        It needs the permission a HEAD of the bucket needs (s3:ListBucket), but unlike a HEAD
        its error has a body, so a wrong key is told apart from a missing bucket. Raises
        StorageError saying what to fix; ``cancelled`` ends the retry waits.
        """
        self._bucket.call(
            "ListObjectsV2",
            None,
            lambda: self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1),
            cancelled=cancelled,
        )

    def delete(self, key: str, *, cancelled: threading.Event | None = None) -> None:
        """Delete one object; an object already gone counts as deleted."""
        try:
            self._bucket.call(
                "DeleteObject",
                key,
                lambda: self.client.delete_object(Bucket=self.bucket, Key=key),
                cancelled=cancelled,
            )
        except ObjectNotFound:
            return
