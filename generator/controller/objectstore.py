"""The controller's one door to S3: check a BackupStorage's bucket, delete one stored object.

It reuses the streamer's S3 adapter (:mod:`streamer.storage.s3`: its retry policy, its error
messages and its redaction) with the storage's ``spec.parameters`` and the keys of its
credentials Secret, rather than a second boto3 wrapper. The Secret is read by the caller
(:mod:`generator.controller.kube`) and handed in as the API server returns it.

Every call is bounded by a timeout: it runs in a thread of its own, and when the time is up the
caller gets :class:`ObjectStoreError` at once while the thread's retries are cancelled (a request
in flight ends by the adapter's socket timeouts). Errors::

    GeneratorError
    └── ObjectStoreError    the bucket cannot be used or the object not deleted; the message
                            names the storage and what to fix, and never contains a secret
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from generator.errors import GeneratorError
from generator.models import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, BackupStorageSpec
from streamer.contract import Env, Flag
from streamer.errors import StreamerError
from streamer.storage.s3 import S3Storage
from streamer.storage.s3.errors import redact
from streamer.storage.settings import S3Settings

__all__ = ["ObjectStoreError", "check_bucket", "delete_object", "s3_settings"]

Body = Mapping[str, Any]
T = TypeVar("T")

#: Attempts per request, and the first retry's wait: a check must fit its timeout.
MAX_ATTEMPTS = 3
RETRY_DELAY = 0.2


class ObjectStoreError(GeneratorError):
    """A bucket check or a deletion failed; the message says why, without any secret."""


def s3_settings(spec: BackupStorageSpec) -> S3Settings:
    """How to reach the storage's bucket, from its ``spec.parameters``."""
    parameters = spec.parameters
    return S3Settings(
        endpoint_url=parameters.endpoint,
        region=parameters.region,
        path_style=parameters.s3_force_path_style == "true",
        verify_tls=parameters.insecure != "true",
        max_attempts=MAX_ATTEMPTS,
        retry_delay=RETRY_DELAY,
    )


def check_bucket(storage: Body, secret: Body | None, *, timeout: float) -> None:
    """Whether the bucket of ``storage`` can be used with the keys of ``secret``.

    Raises ObjectStoreError saying what is wrong (no Secret, a missing key, a missing bucket,
    rejected keys, an endpoint that does not answer within ``timeout`` seconds, a storage with
    ``objectLock`` whose bucket has no Object Lock enabled: every backup in it would fail).
    """
    name, spec = _parse(storage)
    keys = _keys(name, spec, secret)

    def check(cancelled: threading.Event) -> None:
        store = _open(spec, keys)
        store.check(cancelled=cancelled)
        if spec.object_lock is not None:
            store.check_object_lock()

    _bounded(
        check,
        timeout,
        f"checking the bucket {spec.parameters.bucket!r} of BackupStorage {name}",
        keys,
        spec,
    )


def delete_object(storage: Body, secret: Body | None, key: str, *, timeout: float) -> None:
    """Delete ``key`` from the bucket of ``storage``; an object already gone counts as deleted."""
    name, spec = _parse(storage)
    keys = _keys(name, spec, secret)
    _bounded(
        lambda cancelled: _open(spec, keys).delete(key, cancelled=cancelled),
        timeout,
        f"deleting s3://{spec.parameters.bucket}/{key} of BackupStorage {name}",
        keys,
        spec,
    )


def _parse(storage: Body) -> tuple[str, BackupStorageSpec]:
    name = str((storage.get("metadata") or {}).get("name", ""))
    try:
        return name, BackupStorageSpec.model_validate(storage.get("spec") or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False)
        )
        raise ObjectStoreError(f"BackupStorage {name} is invalid: {problems}") from None


def _keys(name: str, spec: BackupStorageSpec, secret: Body | None) -> tuple[str, str]:
    """The access key id and the secret access key, from the Secret's ``data``."""
    ref = spec.credentials
    where = f"the Secret {ref.namespace}/{ref.name} (spec.credentials of BackupStorage {name})"
    if secret is None:
        raise ObjectStoreError(f"{where} does not exist: create it, or fix spec.credentials")
    data = secret.get("data") or {}
    values = []
    for field, key in (
        ("accessKey", spec.parameters.access_key or DEFAULT_ACCESS_KEY),
        ("secretKey", spec.parameters.secret_key or DEFAULT_SECRET_KEY),
    ):
        encoded = data.get(key)
        if not encoded:
            raise ObjectStoreError(
                f"{where} has no key {key!r}: add it, or name the key holding it in "
                f"spec.parameters.{field}"
            )
        try:
            values.append(base64.b64decode(str(encoded), validate=True).decode("utf-8").strip())
        except (binascii.Error, UnicodeDecodeError):
            raise ObjectStoreError(
                f"the value of key {key!r} of {where} is not base64 of UTF-8 text"
            ) from None
    return values[0], values[1]


def _open(spec: BackupStorageSpec, keys: tuple[str, str]) -> S3Storage:
    return S3Storage.with_keys(
        spec.parameters.bucket,
        s3_settings(spec),
        access_key_id=keys[0],
        secret_access_key=keys[1],
    )


def _bounded(
    call: Callable[[threading.Event], T],
    timeout: float,
    what: str,
    keys: tuple[str, str],
    spec: BackupStorageSpec,
) -> T:
    """``call`` in a thread of its own, given at most ``timeout`` seconds."""
    cancelled = threading.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(call(cancelled))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=target, name="objectstore", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        cancelled.set()
        raise ObjectStoreError(
            f"{what}: no answer within {timeout:g}s; check the endpoint and the network"
        )
    if failure:
        exc = failure[0]
        if isinstance(exc, StreamerError):
            # The adapter redacted what the session signs with; the keys are redacted again
            # in case a message quotes what was handed in.
            raise ObjectStoreError(
                f"{what}: {_in_our_terms(redact(str(exc), keys), spec)}"
            ) from exc
        raise exc
    return outcome[0]


def _in_our_terms(message: str, spec: BackupStorageSpec) -> str:
    """The adapter's advice names the streamer's flags and variables: name the fields instead."""
    ref = spec.credentials
    access = spec.parameters.access_key or DEFAULT_ACCESS_KEY
    secret = spec.parameters.secret_key or DEFAULT_SECRET_KEY
    keys = f"the keys {access} and {secret} of the Secret {ref.namespace}/{ref.name}"
    for theirs, ours in (
        (f"check {Env.AWS_ACCESS_KEY_ID} and {Env.AWS_SECRET_ACCESS_KEY}", f"check {keys}"),
        (
            f"check {Env.AWS_ENDPOINT_URL_S3} / {Flag.ENDPOINT_URL} and the network",
            "check spec.parameters.endpoint and the network",
        ),
        ("create it or fix the bucket in the URL", "create it, or fix spec.parameters.bucket"),
    ):
        message = message.replace(theirs, ours)
    return message
