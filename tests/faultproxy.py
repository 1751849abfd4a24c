"""A loopback HTTP proxy that puts real faults on the wire between a client and an S3 server.

Retries and aborts are only proven by failures the client really sees: a TCP reset in the
middle of a part's body, a response cut short, a 503 SlowDown or 500 InternalError answered by
"S3". The proxy forwards each request to the upstream server on its own connection and marks
every response ``Connection: close``, so requests never share a connection and each fault hits
exactly the request it was aimed at. Faults are rules, consumed in order by the requests whose
request line (``"PUT /bucket/key?partNumber=1&uploadId=… HTTP/1.1"``) matches::

    with FaultProxy(s3_endpoint) as proxy:
        proxy.fail(times=2, status=503, code="SlowDown", match="partNumber=")
        proxy.reset(times=1, after_bytes=65536, match="partNumber=")      # mid-body, upload
        proxy.reset(times=1, after_bytes=65536, direction="response", match="^GET ")
        proxy.cut_connections()                                          # now, mid-response
        ...  # point the client at proxy.url

``times=FOREVER`` makes a fault persistent. Requests must carry a Content-Length (as botocore's
do without aws-chunked checksums); ``Expect: 100-continue`` is answered by the proxy.

The proxy can also be a slow link, and tell a test when the client got somewhere::

    proxy.limit(4_000_000)                        # bytes per second, each direction
    proxy.wait_for("partNumber=1")                # until that request arrived
    proxy.on_response("uploadId=", callback)      # once it took effect, before its answer
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["FOREVER", "FaultProxy", "Throttle"]

#: ``times`` for a fault that never wears off.
FOREVER = -1
_CHUNK = 64 * 1024
#: Relayed in smaller pieces on a limited link, so the rate holds over short spans too.
_LIMITED_CHUNK = 16 * 1024
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Slow Down",
    504: "Gateway Timeout",
}
_DEFAULT_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "AccessDenied": "Access Denied",
}


@dataclass
class _Rule:
    kind: Literal["fail", "reset"]
    remaining: int
    pattern: re.Pattern[str] | None
    status: int = 503
    code: str = "SlowDown"
    message: str = ""
    after_bytes: int = 0
    direction: Literal["request", "response"] = "request"


@dataclass
class _Request:
    line: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def method(self) -> str:
        return self.line.split(" ", 1)[0]


class Throttle:
    """Lets bytes through at ``rate`` per second, shared by every connection that takes them.

    :meth:`take` reserves the time its bytes need on the link and sleeps until their turn has
    come, so concurrent connections share the rate instead of each getting all of it.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._free_at = clock()
        #: Bytes let through so far.
        self.passed = 0

    def take(self, size: int) -> None:
        with self._lock:
            now = self._clock()
            start = max(self._free_at, now)
            self._free_at = start + size / self.rate
            self.passed += size
        if start > now:
            self._sleep(start - now)


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` (an ``http://host:port`` URL), with faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://HOST:PORT, not {upstream!r}")
        self._upstream = (parts.hostname, parts.port)
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._seen = threading.Condition(self._lock)  # notified on every request line
        self._hooks: list[tuple[re.Pattern[str], Callable[[str], None]]] = []
        self._throttles: dict[str, Throttle] = {}
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        #: Every request line seen, in arrival order, with the fault it got (or "forwarded").
        self.log: list[tuple[str, str]] = []
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def injected(self) -> int:
        """How many faults were injected so far."""
        with self._lock:
            return sum(1 for _, outcome in self.log if outcome != "forwarded")

    def requests(self, pattern: str = "") -> list[str]:
        """Request lines seen that match ``pattern`` (a regular expression)."""
        with self._lock:
            return [line for line, _ in self.log if re.search(pattern, line)]

    # -- faults ------------------------------------------------------------------------------

    def fail(
        self,
        times: int = 1,
        *,
        status: int = 503,
        code: str = "SlowDown",
        message: str | None = None,
        match: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with an S3 error document."""
        self._add(
            _Rule(
                "fail",
                times,
                re.compile(match) if match else None,
                status=status,
                code=code,
                message=message if message is not None else _DEFAULT_MESSAGES.get(code, code),
            )
        )

    def reset(
        self,
        times: int = 1,
        *,
        after_bytes: int = 0,
        direction: Literal["request", "response"] = "request",
        match: str | None = None,
    ) -> None:
        """Reset (TCP RST) the next ``times`` matching requests' connections.

        ``direction="request"``: after ``after_bytes`` bytes of the request body arrived (the
        request never reaches the server). ``"response"``: the request is served, and the
        connection is reset after ``after_bytes`` bytes of the response (head included) were
        relayed, so the client never learns whether its request succeeded.
        """
        self._add(
            _Rule(
                "reset",
                times,
                re.compile(match) if match else None,
                after_bytes=after_bytes,
                direction=direction,
            )
        )

    def cut_connections(self) -> int:
        """End every open connection now: responses in flight end early. Returns how many."""
        with self._lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(open_now)

    def clear(self) -> None:
        """Drop every fault not yet used up."""
        with self._lock:
            self._rules.clear()

    # -- a slow link, and events a test can wait for ---------------------------------------

    def limit(self, bytes_per_second: float | None) -> dict[str, Throttle]:
        """Relay bodies at most this fast in each direction (all connections together);
        ``None`` lifts the limit. Applies to connections opened from now on. Returns the
        throttles by direction ("request", "response")."""
        with self._lock:
            if bytes_per_second is None:
                self._throttles = {}
            else:
                self._throttles = {
                    "request": Throttle(bytes_per_second),
                    "response": Throttle(bytes_per_second),
                }
            return dict(self._throttles)

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        """Wait until a request whose line matches ``pattern`` arrived; return that line."""
        regex = re.compile(pattern)

        def match() -> str | None:
            return next((line for line, _ in self.log if regex.search(line)), None)

        with self._seen:
            if not self._seen.wait_for(lambda: match() is not None, timeout):
                raise TimeoutError(f"no request matching {pattern!r} within {timeout}s")
            line = match()
        assert line is not None
        return line

    def on_response(self, match: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(request_line)`` once, when the server's response to the next request
        matching ``match`` arrived and before the proxy relays it: the request has taken
        effect, and the client cannot know yet (called from the proxy's thread)."""
        with self._lock:
            self._hooks.append((re.compile(match), callback))

    def _hooks_for(self, line: str) -> list[Callable[[str], None]]:
        with self._lock:
            due = [hook for hook in self._hooks if hook[0].search(line)]
            self._hooks = [hook for hook in self._hooks if hook not in due]
        return [callback for _, callback in due]

    def _add(self, rule: _Rule) -> None:
        if rule.remaining == 0 or rule.remaining < FOREVER:
            raise ValueError("times must be positive, or FOREVER")
        with self._lock:
            self._rules.append(rule)

    def _take(self, request: _Request) -> _Rule | None:
        with self._seen:
            self._seen.notify_all()  # the line is logged before the lock is released
            for rule in self._rules:
                if rule.remaining != 0 and (
                    rule.pattern is None or rule.pattern.search(request.line)
                ):
                    if rule.remaining > 0:
                        rule.remaining -= 1
                    outcome = (
                        f"{rule.status} {rule.code}"
                        if rule.kind == "fail"
                        else f"reset {rule.direction} after {rule.after_bytes}"
                    )
                    self.log.append((request.line, outcome))
                    return rule
            self.log.append((request.line, "forwarded"))
            return None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._acceptor.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(30)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    # -- one request per connection ----------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self._open.add(client)
        reader = client.makefile("rb")
        reset = False
        with self._lock:
            up, down = self._throttles.get("request"), self._throttles.get("response")
        try:
            request = _read_request(reader)
            if request is None:
                return
            length = int(request.header("Content-Length") or 0)
            if (request.header("Transfer-Encoding") or "").lower() == "chunked":
                raise NotImplementedError("the fault proxy needs a Content-Length")
            expects = (request.header("Expect") or "").lower() == "100-continue"
            rule = self._take(request)
            if rule is not None and rule.kind == "fail":
                if not expects:
                    _skip(reader, length)
                client.sendall(_error_response(rule, head_only=request.method == "HEAD"))
                return
            if expects:
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if rule is not None and rule.direction == "request":
                _skip(reader, min(rule.after_bytes, length))
                reset = True
                return
            with socket.create_connection(self._upstream, timeout=30) as upstream:
                upstream.sendall(_head(request.line, request.headers, drop=("expect",)))
                _relay(reader, upstream, length, up)
                with upstream.makefile("rb") as response:
                    status_line, headers = _read_head(response)
                    head = _head(status_line, headers, drop=())
                    if rule is None:
                        for callback in self._hooks_for(request.line):
                            callback(request.line)
                    if rule is not None:  # a response reset
                        client.sendall(head[: rule.after_bytes])
                        _relay(response, client, max(0, rule.after_bytes - len(head)))
                        reset = True
                        return
                    client.sendall(head)
                    _relay(response, client, None, down)
        except (OSError, ValueError):
            pass  # the client or the server went away; nothing to report
        finally:
            with self._lock:
                self._open.discard(client)
            reader.close()
            if reset:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                client.close()


def _read_head(stream: io.BufferedIOBase) -> tuple[str, list[tuple[str, str]]]:
    line = stream.readline(65536)
    if not line:
        raise EOFError
    headers: list[tuple[str, str]] = []
    while True:
        header = stream.readline(65536)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return line.decode("latin-1").rstrip("\r\n"), headers


def _read_request(stream: io.BufferedIOBase) -> _Request | None:
    try:
        line, headers = _read_head(stream)
    except EOFError:
        return None
    return _Request(line, headers)


def _head(first_line: str, headers: list[tuple[str, str]], drop: tuple[str, ...]) -> bytes:
    """The head with ``Connection: close``: one request per connection, on both sides."""
    kept = [
        f"{name}: {value}\r\n"
        for name, value in headers
        if name.lower() not in ("connection", "keep-alive", *drop)
    ]
    return (first_line + "\r\n" + "".join(kept) + "Connection: close\r\n\r\n").encode("latin-1")


def _skip(stream: io.BufferedIOBase, count: int) -> None:
    while count > 0:
        data = stream.read(min(_CHUNK, count))
        if not data:
            return
        count -= len(data)


def _relay(
    source: io.BufferedIOBase,
    sink: socket.socket,
    count: int | None,
    throttle: Throttle | None = None,
) -> None:
    """Copy ``count`` bytes (``None``: until EOF) from ``source`` to ``sink``."""
    chunk = _CHUNK if throttle is None else _LIMITED_CHUNK
    while count is None or count > 0:
        data = source.read1(chunk if count is None else min(chunk, count))
        if not data:
            return
        if throttle is not None:
            throttle.take(len(data))
        sink.sendall(data)
        if count is not None:
            count -= len(data)


def _error_response(rule: _Rule, *, head_only: bool) -> bytes:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{rule.code}</Code><Message>{rule.message}</Message>"
        "<RequestId>FAULTPROXY</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {rule.status} {_REASONS.get(rule.status, 'Error')}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-amz-request-id: FAULTPROXY\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body
