"""S3 Object Lock: the bucket check before a backup, the lock a write carries, the read-back.

An immutable backup must never exist unlocked, not even for a moment: so the lock travels with
the write that creates the object (``create_multipart_upload``, or the ``put_object`` of an
empty stream), never as a second request after it. S3 requires a checksum of the body on
every write that carries a lock (``UploadPart`` of a locked upload included). The client sends
flexible checksums only where an operation requires them (client.py: over HTTPS they would
need aws-chunked bodies, which several S3-compatible servers reject), so a locked write
carries ``Content-MD5``, the checksum S3-compatible servers have taken longest. Only locked
writes pay for it (MD5 runs at ~380 MiB/s on one core here, in the upload threads).

Verify, don't assume: a server may ignore the lock of a multipart upload (moto does) and still
answer 200. Once the object is stored, :func:`ensure_locked` reads its lock back, applies what
is missing to that version (``put_object_retention``, ``put_object_legal_hold``), reads it
back again, and reports what it found. The lock is read with a HEAD of the version, whose
``x-amz-object-lock-*`` headers carry the retention and the legal hold in one request, under
the same permissions as ``GetObjectRetention`` and ``GetObjectLegalHold`` (which moto does
not serve). A lock that still is not there is reported, never a reason to delete the object.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from streamer.contract import Flag
from streamer.errors import StorageError
from streamer.storage.base import LockStatus, iso_utc
from streamer.storage.s3 import errors
from streamer.storage.s3.client import Bucket
from streamer.storage.settings import ObjectLock

__all__ = [
    "check_bucket",
    "content_md5",
    "describe",
    "ensure_locked",
    "start",
    "write_arguments",
]

log = logging.getLogger(__name__)

#: Stronger modes rank higher: a COMPLIANCE lock satisfies a request for GOVERNANCE.
_RANK = {None: 0, "GOVERNANCE": 1, "COMPLIANCE": 2}
#: What S3 answers when a bucket has no Object Lock configuration, or a server has none at all.
_NOT_ENABLED_CODES = frozenset({"ObjectLockConfigurationNotFoundError", "NotImplemented"})


def _not_enabled(bucket: str) -> str:
    return (
        f"the bucket {bucket!r} does not have Object Lock enabled, so no backup stored in it "
        f"can be locked ({Flag.OBJECT_LOCK_MODE}, {Flag.LEGAL_HOLD}): create the bucket with "
        "--object-lock-enabled-for-bucket (aws s3api create-bucket), or store it elsewhere"
    )


def check_bucket(bucket: Bucket) -> None:
    """Raise StorageError unless the bucket has Object Lock enabled: before any command runs."""
    client = bucket.client
    try:
        response = bucket.call(
            "get_object_lock_configuration",
            None,
            lambda: client.get_object_lock_configuration(Bucket=bucket.name),
        )
    except StorageError as exc:
        code = errors.cause_code(exc)
        if code in _NOT_ENABLED_CODES:
            raise StorageError(_not_enabled(bucket.name)) from exc
        if code == "AccessDenied":
            raise StorageError(
                f"the credentials may not read the Object Lock configuration of the bucket "
                f"{bucket.name!r} (AccessDenied on get_object_lock_configuration): grant them "
                "s3:GetBucketObjectLockConfiguration"
            ) from exc
        raise
    configuration = response.get("ObjectLockConfiguration") or {}
    if configuration.get("ObjectLockEnabled") != "Enabled":
        raise StorageError(_not_enabled(bucket.name))


def start(bucket: Bucket) -> tuple[datetime.datetime | None, dict[str, Any]]:
    """For a new upload: check the bucket, and fix the retain-until date as now plus the days.

    The date must travel with the request that creates the upload, before the stream's end
    is known. Returns it and the write's lock parameters: ``(None, {})`` without a lock.
    """
    lock = bucket.settings.object_lock
    if lock is None:
        return None, {}
    check_bucket(bucket)  # before any command runs, not after an hour's dump
    retain_until = lock.retain_until(datetime.datetime.now(datetime.UTC))
    return retain_until, write_arguments(lock, retain_until)


def write_arguments(lock: ObjectLock, retain_until: datetime.datetime | None) -> dict[str, Any]:
    """The parameters that make ``create_multipart_upload`` or ``put_object`` lock the object."""
    arguments: dict[str, Any] = {}
    if lock.mode is not None and retain_until is not None:
        arguments["ObjectLockMode"] = lock.mode
        arguments["ObjectLockRetainUntilDate"] = retain_until
    if lock.legal_hold:
        arguments["ObjectLockLegalHoldStatus"] = "ON"
    return arguments


def content_md5(body: bytes | bytearray) -> str:
    """The ``Content-MD5`` of ``body``: base64 of its MD5 digest."""
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def describe(mode: str | None, retain_until: datetime.datetime | None, legal_hold: bool) -> str:
    """A lock in words: ``GOVERNANCE until 2024-03-07T09:05:02Z and a legal hold``."""
    parts = []
    if mode is not None:
        parts.append(f"{mode} until {iso_utc(retain_until) if retain_until else '?'}")
    if legal_hold:
        parts.append("a legal hold")
    return " and ".join(parts) or "no lock"


@dataclass(frozen=True)
class _Found:
    mode: str | None = None
    retain_until: datetime.datetime | None = None
    legal_hold: bool = False

    def retention_holds(self, lock: ObjectLock, retain_until: datetime.datetime | None) -> bool:
        if lock.mode is None or retain_until is None:
            return True
        return (
            _RANK.get(self.mode, 0) >= _RANK[lock.mode]
            and self.retain_until is not None
            and self.retain_until >= retain_until
        )

    def holds(self, lock: ObjectLock, retain_until: datetime.datetime | None) -> bool:
        return self.retention_holds(lock, retain_until) and (self.legal_hold or not lock.legal_hold)


def _read(bucket: Bucket, key: str, version_id: str | None) -> _Found:
    version = {"VersionId": version_id} if version_id else {}
    head = bucket.call(
        "head_object (Object Lock)",
        key,
        lambda: bucket.client.head_object(Bucket=bucket.name, Key=key, **version),
    )
    mode = head.get("ObjectLockMode")
    until = head.get("ObjectLockRetainUntilDate")
    return _Found(
        mode=str(mode) if mode else None,
        retain_until=until if isinstance(until, datetime.datetime) else None,
        legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
    )


def _refused(exc: StorageError, operation: str, permission: str) -> str:
    """Why ``operation`` failed; a 403 here is a permission, not a missing bucket."""
    if errors.is_forbidden(exc):
        code = errors.cause_code(exc) or "403"
        return f"{operation} was refused ({code}): the credentials need {permission}"
    return str(exc)


def _apply(
    bucket: Bucket,
    key: str,
    version_id: str | None,
    lock: ObjectLock,
    retain_until: datetime.datetime | None,
    found: _Found,
) -> list[str]:
    """Put what ``found`` lacks on the version; return the failures, as messages."""
    version = {"VersionId": version_id} if version_id else {}
    client = bucket.client
    failures = []
    if not found.retention_holds(lock, retain_until):
        assert lock.mode is not None
        assert retain_until is not None
        # Never weaker than what is there: S3 refuses to shorten or soften COMPLIANCE anyway.
        mode = "COMPLIANCE" if found.mode == "COMPLIANCE" else lock.mode
        until = max(retain_until, found.retain_until or retain_until)
        retention = {"Mode": mode, "RetainUntilDate": until}
        try:
            bucket.call(
                "put_object_retention",
                key,
                lambda: client.put_object_retention(
                    Bucket=bucket.name, Key=key, Retention=retention, **version
                ),
            )
        except StorageError as exc:
            failures.append(_refused(exc, "put_object_retention", "s3:PutObjectRetention"))
    if lock.legal_hold and not found.legal_hold:
        try:
            bucket.call(
                "put_object_legal_hold",
                key,
                lambda: client.put_object_legal_hold(
                    Bucket=bucket.name, Key=key, LegalHold={"Status": "ON"}, **version
                ),
            )
        except StorageError as exc:
            failures.append(_refused(exc, "put_object_legal_hold", "s3:PutObjectLegalHold"))
    return failures


def ensure_locked(
    bucket: Bucket,
    key: str,
    version_id: str | None,
    lock: ObjectLock,
    retain_until: datetime.datetime | None,
) -> LockStatus:
    """Read the stored version's lock back, put what is missing, read it again; report it.

    Never raises a StorageError: a lock that cannot be confirmed is a LockStatus that is not
    ``locked``, saying why; the object stays.
    """
    url = bucket.url(key)
    asked = describe(lock.mode, retain_until, lock.legal_hold)
    failures: list[str] = []
    found: _Found | None = None
    try:
        found = _read(bucket, key, version_id)
        if not found.holds(lock, retain_until):
            log.warning(
                "%s was stored with %s, not the %s it was written with (the server ignored "
                "the lock): applying it to the version now",
                url,
                describe(found.mode, found.retain_until, found.legal_hold),
                asked,
            )
            failures = _apply(bucket, key, version_id, lock, retain_until, found)
            found = _read(bucket, key, version_id)
    except StorageError as exc:
        failures.append(_refused(exc, "reading the lock back", "s3:GetObjectRetention"))
    if found is not None and found.holds(lock, retain_until):
        log.info(
            "%s is locked: %s", url, describe(found.mode, found.retain_until, found.legal_hold)
        )
        return LockStatus(found.mode, found.retain_until, found.legal_hold, locked=True)
    seen = describe(found.mode, found.retain_until, found.legal_hold) if found else "unknown"
    version = f" (version {version_id})" if version_id else ""
    why = f"; {'; '.join(failures)}" if failures else ""
    problem = (
        f"{url}{version} is stored but NOT locked: asked for {asked}, it carries {seen}{why}. "
        "The object was kept: lock it (aws s3api put-object-retention, put-object-legal-hold) "
        "or delete it. A HEAD shows the lock only to credentials with s3:GetObjectRetention "
        "and s3:GetObjectLegalHold"
    )
    return LockStatus(
        found.mode if found else None,
        found.retain_until if found else None,
        found.legal_hold if found else False,
        locked=False,
        problem=problem,
    )
