"""The errors of the emulated API server, answered as Kubernetes ``Status`` objects.

Every failure the emulated server reports is an :class:`ApiError` with the HTTP code, the
``reason`` a real server gives (``NotFound``, ``AlreadyExists``, ``Conflict``, ``Invalid``...)
and a message worded like a real server's, so clients (kopf, the official client) classify it
exactly as they would in a cluster.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "already_exists",
    "bad_request",
    "conflict",
    "forbidden",
    "gone",
    "invalid",
    "method_not_allowed",
    "not_found",
    "status_object",
    "unsupported_media_type",
]

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A request the emulated server refuses, with the Status object it answers."""

    def __init__(
        self, code: int, message: str, *, reason: str | None = None, details: Any = None
    ) -> None:
        super().__init__(f"{code} {reason or REASONS.get(code, 'Unknown')}: {message}")
        self.code = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.message, reason=self.reason, details=self.details)


def status_object(
    code: int, message: str, *, reason: str | None = None, details: Any = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _details(what: str, name: str | None) -> dict[str, Any]:
    plural, _, group = what.partition(".")
    details: dict[str, Any] = {"kind": plural}
    if group:
        details["group"] = group
    if name:
        details["name"] = name
    return details


def not_found(what: str, name: str | None = None) -> ApiError:
    """``what`` is ``plural.group`` (``plural`` for the core group), as a real server names it."""
    message = f'{what} "{name}" not found' if name else f"the server could not find {what}"
    return ApiError(404, message, details=_details(what, name))


def already_exists(what: str, name: str) -> ApiError:
    return ApiError(
        409, f'{what} "{name}" already exists', reason="AlreadyExists", details=_details(what, name)
    )


def conflict(what: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {what} "{name}": {why}'
    return ApiError(409, message, reason="Conflict", details=_details(what, name))


def invalid(what: str, name: str | None, why: str) -> ApiError:
    return ApiError(422, f'{what} "{name or ""}" is invalid: {why}', details=_details(what, name))


def forbidden(what: str, name: str | None, why: str) -> ApiError:
    return ApiError(403, f'{what} "{name or ""}" is forbidden: {why}', details=_details(what, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(405, f"the server does not allow the method {method} on {path}")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, f"the body of the request was in an unknown format: {content_type}")


def gone(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")
