"""How to reach S3: the settings the CLI parses and the S3 adapter reads.

They live apart from the adapter so that parsing flags never loads boto3, and apart from the
storage contract, which knows nothing of S3.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["S3Settings"]


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
