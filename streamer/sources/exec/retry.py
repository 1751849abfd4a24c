"""The one retry policy for the Kubernetes API, and what counts as a transient failure.

Policy (:data:`API_RETRY`): one request is tried at most 5 times. Between attempts the wait
grows exponentially, 0.5 s, 1 s, 2 s, 4 s (never more than 4 s), each plus up to 0.5 s of random
jitter, so backups started together by one schedule do not retry in step: about 10 s of
waiting at most before the last error, which names the operation and says how often it was
tried. The kubernetes client's own urllib3 retries are turned off where the streamer builds
the client (:mod:`.credentials`), so this is the only loop.

Transient, so tried again:

- for the GET requests before exec (idempotent): the connection was refused, reset or timed
  out, or the API server answered HTTP 429 (its priority and fairness shed the request) or
  500, 502, 503, 504 (it, or the load balancer in front of it, is restarting or overloaded);
- for the exec handshake: the connection was refused, or the server answered 429, 500, 502,
  503 or 504 instead of upgrading. Either way no exec stream exists, so the command was never
  started. A reset or timeout after the request went out is *not* retried: the command may
  have started, and running a backup or restore command twice is not ours to risk.

Everything else is permanent and fails at once: TLS and certificate errors, a name that does
not resolve, HTTP 401, 403, 404, 400 and any other answer, a protocol the server will not
speak, and anything at all once the exec WebSocket is open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import tenacity
import urllib3
from websocket import WebSocketBadStatusException

from streamer.errors import SourceError

__all__ = [
    "API_RETRY",
    "TRANSIENT_STATUSES",
    "RetryPolicy",
    "Transient",
    "call_with_retries",
    "is_transient_handshake_error",
    "is_transient_transport_error",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: HTTP statuses that say "not now" rather than "no".
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one request is tried (see the module docstring)."""

    attempts: int
    first_wait: float
    max_wait: float
    jitter: float


API_RETRY = RetryPolicy(attempts=5, first_wait=0.5, max_wait=4.0, jitter=0.5)


class Transient(SourceError):
    """A failure worth another attempt; :func:`call_with_retries` never lets it out."""


def call_with_retries(policy: RetryPolicy, attempt: Callable[[], T]) -> T:
    """Call ``attempt`` until it returns, raises anything but :class:`Transient`, or the
    policy's attempts are used up; then the last failure is raised as a plain SourceError."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_exponential(multiplier=policy.first_wait, max=policy.max_wait)
        + tenacity.wait_random(0, policy.jitter),
        retry=tenacity.retry_if_exception_type(Transient),
        before_sleep=_log_retry(policy),
        retry_error_callback=_give_up,
    )
    return retrying(attempt)


def _log_retry(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], None]:
    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s; trying again in %.1fs (attempt %d of %d)",
            exc,
            sleep,
            state.attempt_number + 1,
            policy.attempts,
        )

    return log_retry


def _give_up(state: tenacity.RetryCallState) -> NoReturn:
    exc = state.outcome.exception() if state.outcome is not None else None
    tries = state.attempt_number
    suffix = f"; tried {tries} times" if tries > 1 else ""
    raise SourceError(f"{exc}{suffix}") from (exc.__cause__ if exc is not None else None)


def is_transient_transport_error(exc: BaseException) -> bool:
    """Whether a urllib3 or socket error of an idempotent request is worth another attempt."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(reason, BaseException):
        exc = reason  # how urllib3 reports the cause once its own retries are spent
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return False  # a wrong name stays wrong
    return isinstance(
        exc,
        urllib3.exceptions.NewConnectionError  # refused
        | urllib3.exceptions.ConnectTimeoutError
        | urllib3.exceptions.ReadTimeoutError
        | urllib3.exceptions.ProtocolError  # reset, or closed before the response
        | ConnectionError
        | TimeoutError,
    )


def is_transient_handshake_error(exc: BaseException) -> bool:
    """Whether a failed exec handshake proves the command never started and may be retried."""
    if isinstance(exc, WebSocketBadStatusException):
        return exc.status_code in TRANSIENT_STATUSES
    # Refused before anything was sent. Other socket errors can come after the request went
    # out (the upgrade may have happened), so they are permanent here.
    return isinstance(exc, ConnectionRefusedError)
