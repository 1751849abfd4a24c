"""How to reach S3: the settings the CLI parses and the S3 adapter reads.

They live apart from the adapter so that parsing flags never loads boto3, and apart from the
storage contract, which knows nothing of S3.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from streamer.errors import ConfigError

__all__ = ["LockMode", "ObjectLock", "S3Settings"]

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


@dataclass(frozen=True)
class ObjectLock:
    """The S3 Object Lock a new object must carry from the moment it exists.

    ``mode`` and ``days`` come together (a retention); ``legal_hold`` stands alone or with them.
    """

    mode: LockMode | None = None
    days: int | None = None
    legal_hold: bool = False

    def __post_init__(self) -> None:
        if (self.mode is None) != (self.days is None):
            raise ConfigError("an Object Lock retention needs both a mode and a number of days")
        if self.days is not None and self.days < 1:
            raise ConfigError(f"Object Lock days must be at least 1, not {self.days}")
        if self.mode is None and not self.legal_hold:
            raise ConfigError("an Object Lock needs a retention, a legal hold, or both")

    def retain_until(self, start: datetime.datetime) -> datetime.datetime | None:
        """``start`` plus the days, rounded up to the second (S3 keeps whole seconds)."""
        if self.days is None:
            return None
        until = start.astimezone(datetime.UTC) + datetime.timedelta(days=self.days)
        if until.microsecond:
            until += datetime.timedelta(microseconds=1_000_000 - until.microsecond)
        return until


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. Anything left ``None`` comes from the standard AWS environment."""

    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    verify_tls: bool = True
    #: First part size in bytes; ``None`` chooses one (parts grow so any stream fits 10,000 parts).
    part_size: int | None = None
    #: Upload parts in flight at once; memory is about part size times this. Three 8 MiB
    #: parts upload as fast as more on a two-core machine and keep the streamer's peak RSS
    #: well under 128 MiB; raise it for high-latency links.
    parts_in_flight: int = 3
    #: Ranged GETs in flight when reading (memory: part size times this). 1 streams the object
    #: over one connection, which is fastest where a range costs as much as the whole object
    #: (moto); AWS S3 tops out near 100 MB/s per connection, and 4-8 ranges go faster there.
    ranges_in_flight: int = 1
    #: Attempts per request before the operation fails (see streamer.storage.s3.retry).
    max_attempts: int = 5
    #: Seconds the first retry waits at most (full jitter); the wait doubles with each attempt.
    retry_delay: float = 0.5
    #: The lock every object written must carry (the bucket must have Object Lock enabled).
    object_lock: ObjectLock | None = None
    #: Send each part's CRC32 (``x-amz-checksum-crc32``), which S3 checks on receipt and keeps
    #: with the object. Off with ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``, the AWS
    #: SDKs' switch for S3-compatible servers that refuse checksum headers.
    part_checksums: bool = True
