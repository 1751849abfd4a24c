"""Plain HTTP to the loopback API, for what the official client does not send or read.

A JSON patch or an apply to any path with any body, and a watch read event by event while the
test changes objects in between (the official client's watch is an iterator that blocks until
the next event).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from types import TracebackType
from typing import Any

__all__ = ["WatchStream", "request"]

#: A read that gets nothing for this long fails, instead of hanging the test.
SOCKET_TIMEOUT = 30.0


def _connection(url: str) -> http.client.HTTPConnection:
    parsed = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=SOCKET_TIMEOUT)


def _path(path: str, params: dict[str, Any]) -> str:
    return f"{path}?{urllib.parse.urlencode(params)}" if params else path


def request(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    **params: Any,
) -> tuple[int, Any]:
    """One request; the status code and the decoded JSON answer."""
    connection = _connection(url)
    try:
        payload = None if body is None else body if isinstance(body, str) else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        connection.request(method, _path(path, params), body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        connection.close()


class WatchStream:
    """``GET path?watch=true&...``, read one event at a time."""

    def __init__(self, url: str, path: str, **params: Any) -> None:
        self._connection = _connection(url)
        self._connection.request("GET", _path(path, {"watch": "true", **params}))
        self._response = self._connection.getresponse()
        if self._response.status != 200:
            raise AssertionError(
                f"the watch answered {self._response.status}: {self._response.read()!r}"
            )

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the server ended the stream."""
        try:
            line = self._response.readline()
        except http.client.IncompleteRead:
            return None
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        return event

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
