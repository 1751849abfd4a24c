"""botocore's errors translated into messages a user can act on, at the S3 seam.

Every failed S3 request leaves the adapter as a :class:`~streamer.errors.StorageError`
(:class:`~streamer.errors.ObjectNotFound` for a missing object) that names the operation and
the object and says what to check; the botocore exception stays as its ``__cause__``. Text
that came from S3 or botocore goes through the caller's ``redact`` first, so no secret reaches
a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from streamer.contract import Env, Flag
from streamer.errors import ObjectNotFound, StorageError

__all__ = [
    "cause_code",
    "error_code",
    "is_forbidden",
    "is_no_such_upload",
    "object_url",
    "redact",
    "translate",
]

_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_SESSION_CODES = frozenset({"InvalidToken", "ExpiredToken"})
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: A request body S3 received damaged, and so did not store (the retry policy sends it again).
DAMAGED_IN_TRANSIT = frozenset({"BadDigest", "XAmzContentSHA256Mismatch"})
#: Shorter strings are not redacted: replacing them would garble messages, not protect secrets.
MIN_SECRET_LENGTH = 8


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def cause_code(error: StorageError) -> str:
    """The S3 error code of the request behind ``error`` ("" when S3 gave none)."""
    cause = error.__cause__
    return error_code(cause) if isinstance(cause, ClientError) else ""


def is_forbidden(error: StorageError) -> bool:
    """Whether S3 answered the request behind ``error`` with HTTP 403."""
    cause = error.__cause__
    return isinstance(cause, ClientError) and _status(cause) == 403


def is_no_such_upload(error: StorageError) -> bool:
    """Whether ``error`` says the multipart upload no longer exists."""
    cause = error.__cause__
    return isinstance(cause, ClientError) and error_code(cause) == "NoSuchUpload"


def object_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret of at least MIN_SECRET_LENGTH characters replaced by ***."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


def translate(
    exc: BaseException,
    operation: str,
    *,
    bucket: str,
    key: str | None,
    endpoint: str,
    redact: Callable[[str], str],
    attempts: int = 1,
) -> StorageError:
    """A StorageError naming ``operation`` on the object (or the bucket, when ``key`` is None)."""
    target = object_url(bucket, key) if key is not None else f"bucket {bucket!r}"
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = _status(exc)
        if code in _CREDENTIAL_CODES:
            message = (
                f"S3 rejected the credentials ({code}) on {operation} of {target}: "
                f"check {Env.AWS_ACCESS_KEY_ID} and {Env.AWS_SECRET_ACCESS_KEY}"
            )
            if code in _SESSION_CODES:
                message += f" and {Env.AWS_SESSION_TOKEN}"
            return StorageError(message)
        if code == "NoSuchBucket" or (key is None and status == 404):
            return StorageError(
                f"the bucket {bucket!r} does not exist (S3 said {code or status} "
                f"on {operation}): create it or fix the bucket in the URL"
            )
        if status == 403:
            return StorageError(
                f"the bucket {bucket!r} does not exist, or is forbidden for the given "
                f"credentials ({code or status} on {operation} of {target}): check the "
                "bucket name and that the credentials may write and read it"
            )
        if key is not None and code == "NoSuchUpload":
            return StorageError(
                f"{operation} of {target} failed: the multipart upload no longer "
                "exists (aborted by another process or a lifecycle rule)"
            )
        if key is not None and (code in _MISSING_OBJECT_CODES or status == 404):
            return ObjectNotFound(f"{target} does not exist: check the bucket and the key")
        if code == "PreconditionFailed":
            return StorageError(f"{target} was replaced while it was being read; read it again")
        detail = redact(str(exc.response.get("Error", {}).get("Message", "")) or code)
        what = f"{code} (HTTP {status}): {detail}" if code else f"HTTP {status}: {detail}"
        if status in (400, 501) and code not in DAMAGED_IN_TRANSIT and "checksum" in detail.lower():
            what += (
                f"; for a server that takes no checksum headers, set "
                f"{Env.AWS_REQUEST_CHECKSUM_CALCULATION}=when_required (in a BackupStorage: "
                "partChecksums: 'false')"
            )
    elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no usable S3 credentials for {operation} of {target}: set "
            f"{Env.AWS_ACCESS_KEY_ID} and {Env.AWS_SECRET_ACCESS_KEY} "
            "(or another source in the standard AWS chain)"
        )
    elif isinstance(exc, BotoConnectionError) and not isinstance(exc, HTTPClientError):
        what = (
            f"cannot connect to the S3 endpoint {endpoint} ({redact(str(exc))}); "
            f"check {Env.AWS_ENDPOINT_URL_S3} / {Flag.ENDPOINT_URL} and the network"
        )
    else:
        what = redact(str(exc)) or type(exc).__name__
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return StorageError(f"{operation} of {target} failed{tries}: {what}")
