"""The S3 seam: the boto3 client, and one bucket reached through it.

:func:`make_client` builds the client from the standard AWS environment plus
:class:`~streamer.storage.settings.S3Settings`, with botocore's own retries off.
:class:`Bucket` is what the writer and the readers talk to: every request goes through
:meth:`Bucket.call`, which applies the retry policy (:mod:`.retry`) and turns the final failure
into a :class:`~streamer.errors.StorageError` (:mod:`.errors`) with every secret the client may
sign with redacted: those in the environment, and those of the boto3 session that made the
client (a shared credentials file, a web identity token, the instance metadata service…).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from streamer.contract import Env, Flag
from streamer.errors import ConfigError, StorageError
from streamer.storage.s3 import errors
from streamer.storage.s3.retry import RetryPolicy
from streamer.storage.settings import S3Settings

__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "Bucket", "S3Client", "make_client"]

#: botocore builds the S3 client's methods at run time; the S3 stubs are not required here.
S3Client = Any

log = logging.getLogger(__name__)

#: Socket timeouts: a stalled connection is a transient failure, retried like a reset.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

T = TypeVar("T")


def make_client(settings: S3Settings, session: boto3.session.Session | None = None) -> S3Client:
    """A client of ``session`` (a new one by default) configured by ``settings``."""
    config = Config(
        region_name=settings.region,
        s3={"addressing_style": "path"} if settings.path_style else {},
        max_pool_connections=max(10, 2 * settings.parts_in_flight),
        # One attempt per call: the retry policy (retry.py) is applied by Bucket.call.
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        tcp_keepalive=True,
        # botocore's default flexible checksums wrap https bodies in aws-chunked encoding,
        # which several S3-compatible servers reject, and made no measurable difference to
        # throughput against moto. Bodies stay protected: by TLS, or over plain HTTP by the
        # payload SHA-256 that SigV4 signs; restore checks the whole stream (age's MAC).
        # Writes under Object Lock, which S3 takes only with a checksum, carry Content-MD5
        # (object_lock.py); PutObjectRetention/LegalHold require one, and get botocore's.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        return (session or boto3.session.Session()).client(
            "s3",
            endpoint_url=settings.endpoint_url,
            verify=settings.verify_tls,
            config=config,
        )
    except BotoCoreError as exc:
        raise ConfigError(f"cannot configure the S3 client: {exc}") from exc
    except ValueError as exc:  # botocore's check of the endpoint URL
        raise ConfigError(
            f"the S3 endpoint {settings.endpoint_url!r} is not a URL ({exc}): write it as "
            f"https://HOST[:PORT] in {Env.AWS_ENDPOINT_URL_S3} or {Flag.ENDPOINT_URL}"
        ) from exc


class Bucket:
    """One bucket through one client; ``session`` is the boto3 session that made the client."""

    def __init__(
        self,
        name: str,
        client: S3Client,
        settings: S3Settings,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.settings = settings
        self._session = session
        self.retry = RetryPolicy(
            settings.max_attempts, settings.retry_delay, client.meta.service_model
        )

    def url(self, key: str) -> str:
        return errors.object_url(self.name, key)

    def call(
        self,
        operation: str,
        key: str | None,
        request: Callable[[], T],
        *,
        cancelled: threading.Event | None = None,
    ) -> T:
        """Run an idempotent ``request`` under the retry policy; raise StorageError.

        ``operation`` and ``key`` (None: the bucket itself) name it in logs and errors.
        """

        def on_retry(failure: BaseException, attempt: int, delay: float) -> None:
            log.info(
                "%s of %s failed (attempt %d of %d), retrying in %.2fs: %s",
                operation,
                self.url(key) if key is not None else f"bucket {self.name!r}",
                attempt,
                self.retry.max_attempts,
                delay,
                self.redact(str(failure)),
            )

        def give_up(failure: BaseException, attempts: int) -> StorageError:
            return self.translate(failure, operation, key, attempts)

        return self.retry.call(request, give_up=give_up, on_retry=on_retry, cancelled=cancelled)

    def translate(
        self, failure: BaseException, operation: str, key: str | None, attempts: int = 1
    ) -> StorageError:
        """A StorageError a user can act on, naming the object; never containing a secret."""
        return errors.translate(
            failure,
            operation,
            bucket=self.name,
            key=key,
            endpoint=str(self.client.meta.endpoint_url),
            redact=self.redact,
            attempts=attempts,
        )

    def redact(self, text: str) -> str:
        return errors.redact(text, self._secrets())

    def _secrets(self) -> list[str]:
        found = [
            os.environ.get(Env.AWS_SECRET_ACCESS_KEY, ""),
            os.environ.get(Env.AWS_SESSION_TOKEN, ""),
        ]
        # The session resolves credentials once and hands the client the same object, so its
        # current (possibly refreshed) values are the ones the client signs with.
        credentials = self._session.get_credentials() if self._session is not None else None
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            found += [frozen.secret_key or "", frozen.token or ""]
        return found
