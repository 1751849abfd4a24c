"""What counts as transient for the Kubernetes API: pure decisions over the transports' errors."""

from __future__ import annotations

import socket

import pytest
import urllib3
from websocket import WebSocketBadStatusException, WebSocketConnectionClosedException

from streamer.errors import SourceError
from streamer.sources.exec.retry import (
    RetryPolicy,
    Transient,
    call_with_retries,
    is_transient_handshake_error,
    is_transient_transport_error,
)

FAST = RetryPolicy(attempts=3, first_wait=0.0, max_wait=0.0, jitter=0.0)


def bad_status(status: int) -> WebSocketBadStatusException:
    return WebSocketBadStatusException(f"Handshake status {status}", status)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(ConnectionRefusedError(111, "refused"), True, id="refused"),
        pytest.param(bad_status(429), True, id="429"),
        pytest.param(bad_status(500), True, id="500"),
        pytest.param(bad_status(502), True, id="502"),
        pytest.param(bad_status(503), True, id="503"),
        pytest.param(bad_status(504), True, id="504"),
        pytest.param(bad_status(400), False, id="400"),
        pytest.param(bad_status(401), False, id="401"),
        pytest.param(bad_status(403), False, id="403"),
        pytest.param(bad_status(404), False, id="404"),
        pytest.param(bad_status(501), False, id="501"),
        # Once the request went out, the upgrade (and the command) may have happened.
        pytest.param(ConnectionResetError(104, "reset"), False, id="reset"),
        pytest.param(TimeoutError("timed out"), False, id="timeout"),
        pytest.param(WebSocketConnectionClosedException("lost"), False, id="closed"),
    ],
)
def test_which_handshake_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient_handshake_error(exc) is transient


def _retries_spent(reason: Exception) -> urllib3.exceptions.MaxRetryError:
    return urllib3.exceptions.MaxRetryError(None, "/api/v1/namespaces/ns/pods/p", reason)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(
            _retries_spent(urllib3.exceptions.NewConnectionError(None, "refused")),
            True,
            id="refused",
        ),
        pytest.param(
            _retries_spent(urllib3.exceptions.ProtocolError("aborted", ConnectionResetError())),
            True,
            id="reset",
        ),
        pytest.param(
            urllib3.exceptions.ReadTimeoutError(None, "/version", "timed out"),
            True,
            id="read-timeout",
        ),
        pytest.param(ConnectionResetError(104, "reset"), True, id="reset-unwrapped"),
        pytest.param(
            _retries_spent(
                urllib3.exceptions.NameResolutionError("kube.example", None, socket.gaierror())
            ),
            False,
            id="name-does-not-resolve",
        ),
        pytest.param(
            _retries_spent(urllib3.exceptions.SSLError("certificate verify failed")),
            False,
            id="certificate",
        ),
    ],
)
def test_which_transport_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient_transport_error(exc) is transient


def test_a_permanent_failure_is_raised_at_once() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise SourceError("cannot read pod ns/p: HTTP 403: forbidden")

    with pytest.raises(SourceError, match=r"^cannot read pod ns/p: HTTP 403: forbidden$"):
        call_with_retries(FAST, attempt)
    assert len(calls) == 1


def test_transient_failures_end_in_a_plain_source_error_naming_the_attempts() -> None:
    cause = ConnectionRefusedError(111, "refused")
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise Transient("cannot reach the API server to read pod ns/p") from cause

    with pytest.raises(SourceError, match=r"to read pod ns/p; tried 3 times$") as info:
        call_with_retries(FAST, attempt)
    assert type(info.value) is SourceError  # the internal Transient does not leak
    assert info.value.__cause__ is cause
    assert len(calls) == 3


def test_a_transient_failure_then_success_returns_the_result() -> None:
    outcomes = iter([Transient("busy"), Transient("busy"), None])

    def attempt() -> str:
        exc = next(outcomes)
        if exc is not None:
            raise exc
        return "ok"

    assert call_with_retries(FAST, attempt) == "ok"
