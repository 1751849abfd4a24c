"""The one retry policy for S3 requests: what is retried, how many times, and how long between.

**What.** A failed attempt is retried when botocore's own standard-mode conditions
(:class:`botocore.retries.standard.StandardRetryConditions`) say so: a connection that could
not be made, was reset or timed out; HTTP 500, 502, 503 or 504; the codes botocore knows as
transient (``RequestTimeout``…) or as throttling (``SlowDown``, ``Throttling``…, or a 429
whose code the service model does not know); an error the service model marks retryable. One
case botocore never classifies is added: a response body that ends before its length
(``IncompleteReadError``), because bodies are read after botocore's retry has returned; it is
a lost connection, and retried as one. Nor does it retry a body that arrived damaged
(``BadDigest``: its CRC32 or MD5 does not match; ``XAmzContentSHA256Mismatch``: its signed
SHA-256 does not), which S3 refused to store: the request is sent again from memory, intact.
Anything else (403, 404, ``NoSuchBucket``, a bad
request, ``PreconditionFailed``) fails at once. Requests passed here are idempotent, or, like
creating a multipart upload, their caller removes what a repeat may duplicate (upload.py).

**How many times.** ``S3Settings.max_attempts`` attempts in all (default 5), counted by
botocore's ``MaxAttemptsChecker``, part of the same conditions.

**Backoff.** Full jitter: before attempt *n* + 1 the wait is uniform in
[0, min(20 s, ``S3Settings.retry_delay`` * 2 ** (*n* - 1))], so 0.5, 1, 2, 4 s windows by default
(tenacity's ``wait_random_exponential``; 20 s is botocore's own cap). A caller's ``cancelled``
event (set when an upload is aborted or a reader closed) ends a wait at once, and the last
failure is reported without another attempt.

The loop is ours (tenacity's), not botocore's, whose retries the client turns off: ours can be
cancelled, covers reading the response body, and lets the final error name the operation and
how many attempts were made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from botocore.model import OperationModel, ServiceModel
from botocore.retries.standard import RetryContext, StandardRetryConditions
from tenacity import RetryCallState, Retrying, wait_random_exponential

from streamer.storage.s3.errors import DAMAGED_IN_TRANSIT, error_code

__all__ = ["MAX_RETRY_DELAY", "RetryPolicy"]

#: Backoff between attempts never exceeds this many seconds.
MAX_RETRY_DELAY = 20.0

T = TypeVar("T")


@dataclass(frozen=True)
class _Status:
    """The part of an HTTP response botocore's conditions read; a ClientError keeps only this."""

    status_code: int


class _Cancelled(Exception):
    """The caller gave up while we waited to retry."""


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


class RetryPolicy:
    """Decides whether a failed attempt is retried, and runs requests under that decision.

    ``service_model`` is the client's (``client.meta.service_model``): it tells botocore's
    conditions which errors each operation models.
    """

    def __init__(
        self, max_attempts: int, first_delay: float, service_model: ServiceModel | None
    ) -> None:
        self.max_attempts = max_attempts
        self._conditions = StandardRetryConditions(max_attempts=max_attempts)
        self._wait = wait_random_exponential(multiplier=first_delay, max=MAX_RETRY_DELAY)
        self._service_model = service_model

    def should_retry(self, failure: BaseException | None, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1-based), which raised ``failure``, is retried."""
        context = self._context(failure, attempt)
        if context is None:
            return False
        if isinstance(failure, ClientError) and error_code(failure) in DAMAGED_IN_TRANSIT:
            return attempt < self.max_attempts
        return self._conditions.is_retryable(context)

    def call(
        self,
        request: Callable[[], T],
        *,
        give_up: Callable[[BaseException, int], BaseException],
        on_retry: Callable[[BaseException, int, float], None],
        cancelled: threading.Event | None = None,
    ) -> T:
        """Run ``request`` until it succeeds or the policy stops retrying.

        A botocore failure that is not retried ends as ``give_up(failure, attempts made)``;
        ``on_retry(failure, attempt, delay)`` is told of each retry before its wait. Other
        exceptions (``KeyboardInterrupt``, a bug) propagate at once, unretried.
        """
        attempts = 0
        waited_on: list[BaseException] = []

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return request()

        def before_sleep(state: RetryCallState) -> None:
            failure = _failure(state)
            assert failure is not None  # only a failed attempt is retried
            waited_on[:] = [failure]
            on_retry(failure, state.attempt_number, state.upcoming_sleep)

        def sleep(seconds: float) -> None:
            if cancelled is None:
                time.sleep(seconds)
            elif cancelled.wait(seconds):
                raise _Cancelled

        retrying = Retrying(
            retry=lambda state: self.should_retry(_failure(state), state.attempt_number),
            wait=self._wait,
            sleep=sleep,
            before_sleep=before_sleep,
        )
        try:
            return retrying(attempt)
        except _Cancelled:
            raise give_up(waited_on[0], attempts) from waited_on[0]
        except (BotoCoreError, ClientError) as exc:
            raise give_up(exc, attempts) from exc

    def _context(self, failure: BaseException | None, attempt: int) -> RetryContext | None:
        """The failure as botocore's retry handler would see it (the small adapter)."""
        if isinstance(failure, ClientError):
            metadata = failure.response.get("ResponseMetadata", {})
            return RetryContext(
                attempt_number=attempt,
                operation_model=self._operation_model(failure.operation_name),
                parsed_response=failure.response,
                http_response=_Status(int(metadata.get("HTTPStatusCode", 0))),
            )
        if isinstance(failure, IncompleteReadError):
            # Raised while we read a body, after botocore's retry handler has returned, so its
            # conditions have no case for it. The connection ended early: classify it as the
            # error botocore raises when a body read breaks off.
            failure = ResponseStreamingError(error=failure)
        if isinstance(failure, BotoCoreError):
            return RetryContext(attempt_number=attempt, caught_exception=failure)
        return None

    def _operation_model(self, name: str) -> OperationModel | None:
        model = self._service_model
        if model is None or name not in model.operation_names:
            return None
        return model.operation_model(name)
