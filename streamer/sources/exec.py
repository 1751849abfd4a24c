"""The command runs in a container of a Pod, reached through the Kubernetes ``pods/exec`` API.

This is the only module of the streamer that imports :mod:`kubernetes` (and :mod:`websocket`).
The official client does configuration, authentication, TLS and the WebSocket handshake; this
module owns the frame loop on the connection that ``create_websocket()`` returns. The client's own
``WSClient`` reading loop keeps every byte of stdout in memory and moved 7.8 MB/s where a plain
frame loop moves hundreds of MB/s, so it is never used.

The exec subprotocols (``v5.channel.k8s.io``, with ``v4.channel.k8s.io`` as the fallback a server
may pick) multiplex channels over binary messages whose first byte is the channel: 0 stdin,
1 stdout, 2 stderr, 3 the exit Status (JSON), 255 CLOSE (v5 only: ``[255, 0]`` closes stdin).
A stream that ends without a Status is a failure, never a short success. v4 cannot close stdin,
so a restore refuses a server older than 1.30 before exec (the command never starts), and a
server that still negotiates v4 right after the handshake, before sending anything.

Flow control is TCP's: a backup reads a frame only when the pipeline asks for bytes, and a
restore's write blocks while the socket is full and the command is not reading; one frame
(backup) or four queued messages (restore, 1 MiB) are held at most. Pings keep proxies with
idle timeouts from cutting a command that is silent for a long time.

Closing the connection is the only way to stop a remote command (the exec API has no signal
channel): :meth:`ExecCommand.kill` does that; the container runtime then closes the command's
stdio, so it sees EOF or a broken pipe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import ws_client as _ws_client
from websocket import ABNF, WebSocketBadStatusException, WebSocketException

try:  # websockets' C masking: about three times the pure-Python fallback below
    from websockets.speedups import apply_mask as _apply_mask_c
except ImportError:  # pragma: no cover - only where websockets has no binary wheel
    _apply_mask_c = None  # type: ignore[assignment]

from streamer.errors import ConfigError, SourceError, StdinClosed
from streamer.sources.base import Command, ExitStatus, Mode, forward_stderr_line

__all__ = [
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_READY_TIMEOUT",
    "ExecCommand",
    "ExecRunner",
    "mask",
    "mask_in_place",
    "parse_status",
]

log = logging.getLogger(__name__)

# Both packages ship partial annotations, and their untyped calls stay inside this module.
k8s_config: Any = _k8s_config
ws_client: Any = _ws_client
#: A ``websocket.WebSocket``, as ``create_websocket()`` returns it.
WebSocket = Any

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, CLOSE = 0, 1, 2, 3, 255

#: How long to wait for the target container to be running before exec.
DEFAULT_READY_TIMEOUT = 120.0
#: Seconds between WebSocket pings: well under the usual 60 s load-balancer idle timeout.
DEFAULT_PING_INTERVAL = 20.0
#: The connection is taken for dead after this many ping intervals without any frame back.
UNANSWERED_PINGS = 3
#: Largest stdin message sent; bigger messages cost fewer Python calls per byte.
MAX_STDIN_FRAME = 1024 * 1024
#: Stdin messages waiting for the sender thread: a bounded 4 MiB between pipeline and socket.
STDIN_QUEUE_DEPTH = 4
#: A stderr line longer than this is logged in pieces, so a binary stderr cannot grow memory.
MAX_STDERR_LINE = 64 * 1024
#: The Status object is small; a larger channel 3 is a protocol error, not a reason to buffer.
MAX_STATUS_BYTES = 64 * 1024
#: Kubernetes supports the close signal (v5.channel.k8s.io) from this version on.
FIRST_VERSION_WITH_CLOSE = (1, 30)
#: Readiness polling backs off from the first to the second delay.
READY_POLL_DELAYS = (0.25, 2.0)
#: Timeout of each API request made before exec (readiness, version).
API_REQUEST_TIMEOUT = 30.0

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: What the kubeconfig loader lets through for a file it cannot use: its own errors, PyYAML's
#: for a syntax error, and plain Python errors for entries of the wrong shape.
KUBECONFIG_ERRORS = (
    k8s_config.ConfigException,
    yaml.YAMLError,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
)


class ExecRunner:
    """Runs commands in one container of one Pod through the ``pods/exec`` API.

    ``api_client`` is the injectable seam: a :class:`kubernetes.client.ApiClient` whose
    configuration points at the API server (tests point it at a loopback endpoint).
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        pod: str,
        container: str,
        *,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        ping_interval: float = DEFAULT_PING_INTERVAL,
    ) -> None:
        if not pod:
            raise ConfigError("no pod given: pass --pod NAME or set POD_NAME")
        if not container:
            raise ConfigError(f"no container given for pod {namespace}/{pod}: pass --container")
        if ready_timeout < 0:
            raise ConfigError(f"the ready timeout must not be negative, not {ready_timeout:g}")
        if ping_interval <= 0:
            raise ConfigError(f"the ping interval must be positive, not {ping_interval:g}")
        self._api = api_client
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.ready_timeout = ready_timeout
        self.ping_interval = ping_interval

    @classmethod
    def from_environment(
        cls,
        pod: str | None,
        container: str,
        namespace: str | None,
        *,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> ExecRunner:
        """Configure from in-cluster credentials, else kubeconfig (``KUBECONFIG``).

        The pod defaults to ``$POD_NAME`` (the downward API); the namespace to
        ``$POD_NAMESPACE``, then the in-cluster namespace, then the kubeconfig context's, then
        ``default``.
        """
        pod = pod or os.environ.get("POD_NAME") or None
        if pod is None:
            raise ConfigError("no pod given: pass --pod NAME or set POD_NAME (the downward API)")
        configuration = k8s_client.Configuration()
        in_cluster = True
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            in_cluster = False
            try:
                # The client reads KUBECONFIG once, at import; read it now.
                k8s_config.load_kube_config(
                    config_file=_kubeconfig_path(), client_configuration=configuration
                )
            except KUBECONFIG_ERRORS as exc:
                raise ConfigError(
                    "no Kubernetes credentials: not running in a Pod with a service account, "
                    "and no usable kubeconfig (set KUBECONFIG or create ~/.kube/config): "
                    f"{str(exc)[:300]}"
                ) from exc
        if namespace is None:
            namespace = _default_namespace(in_cluster)
        return cls(
            k8s_client.ApiClient(configuration),
            namespace,
            pod,
            container,
            ready_timeout=ready_timeout,
        )

    def describe(self) -> str:
        return f"pod {self.namespace}/{self.pod} container {self.container}"

    def start(self, argv: Sequence[str], mode: Mode) -> ExecCommand:
        if not argv:
            raise SourceError("no command given: put the command after '--'")
        if mode is Mode.RESTORE:
            self._refuse_servers_without_close()
        self._wait_until_running()
        sock, protocol = self._connect(argv, mode)
        if mode is Mode.RESTORE and protocol != V5_PROTOCOL:
            sock.shutdown()
            raise self._cannot_close_stdin(f"the API server only speaks {protocol}")
        log.debug("exec into %s over %s", self.describe(), protocol)
        return ExecCommand(sock, mode, where=self.describe(), ping_interval=self.ping_interval)

    # -- before exec ---------------------------------------------------------------------------

    def _get_json(self, what: str, path: str, **path_params: str) -> dict[str, Any]:
        """GET one API object as plain JSON.

        The generated API classes validate every call with pydantic, which costs ~23 MiB of
        schemas for one GET; the client's serializer, auth and transport are used directly.
        """
        try:
            method, url, headers, body, post = self._api.param_serialize(
                method="GET",
                resource_path=path,
                path_params=path_params,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                method, url, headers, body, post, _request_timeout=API_REQUEST_TIMEOUT
            )
            raw = response.read()
        except ApiException as exc:  # the transport's wrapper for TLS and protocol errors
            raise SourceError(
                f"cannot reach the Kubernetes API server at {self._api.configuration.host} "
                f"to {what}: {exc.reason}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise SourceError(
                f"cannot reach the Kubernetes API server at {self._api.configuration.host} "
                f"to {what}: {_describe(exc)}"
            ) from exc
        if not 200 <= response.status < 300:
            raise SourceError(self._api_error(what, response.status, response.reason, raw))
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise SourceError(f"the Kubernetes API server sent unreadable JSON to {what}") from exc
        if not isinstance(data, dict):
            raise SourceError(f"the Kubernetes API server sent unexpected JSON to {what}")
        return data

    def _api_error(self, what: str, status: int | None, reason: str | None, body: Any) -> str:
        message = _status_message(body) or reason or "no message"
        hint = ""
        if status in (401, 403):
            hint = (
                f"; the service account needs 'get' on pods and 'create' on pods/exec in "
                f"namespace {self.namespace}"
            )
        elif status == 404:
            hint = "; check --pod (or POD_NAME) and --namespace"
        elif status == 400:
            hint = "; check --container"
        return f"cannot {what}: HTTP {status}: {message}{hint}"

    def _refuse_servers_without_close(self) -> None:
        """Restore needs the v5 CLOSE signal: refuse a server too old for it before exec.

        The handshake is checked again after connecting, but by then the restore command has
        started (with an empty input); asking the version first keeps it from running at all.
        """
        try:
            info = self._get_json("read the API server version", "/version/")
        except SourceError as exc:
            log.debug("cannot read the API server version (%s); relying on the handshake", exc)
            return
        major = re.match(r"\d+", str(info.get("major", "")))
        minor = re.match(r"\d+", str(info.get("minor", "")))
        if major is None or minor is None:
            return
        if (int(major.group()), int(minor.group())) < FIRST_VERSION_WITH_CLOSE:
            version = info.get("gitVersion") or f"{major.group()}.{minor.group()}"
            raise self._cannot_close_stdin(
                f"the API server is {version}, whose exec protocol is {V4_PROTOCOL}"
            )

    def _cannot_close_stdin(self, why: str) -> SourceError:
        return SourceError(
            f"cannot restore into {self.describe()}: {why}, which has no way to close the "
            "command's stdin, so the restore command would never see the end of its input; "
            f"Kubernetes 1.30 or newer ({V5_PROTOCOL}) is needed"
        )

    def _wait_until_running(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        delay, max_delay = READY_POLL_DELAYS
        announced = False
        while True:
            pod = self._get_json(
                f"read pod {self.namespace}/{self.pod}",
                "/api/v1/namespaces/{namespace}/pods/{name}",
                namespace=self.namespace,
                name=self.pod,
            )
            state, detail = _container_state(pod, self.container)
            if state == "running":
                return
            if state == "missing":
                raise SourceError(
                    f"pod {self.namespace}/{self.pod} has no container {self.container!r} "
                    f"(its containers: {detail}); check --container"
                )
            if state == "terminated":
                raise SourceError(
                    f"container {self.container!r} of pod {self.namespace}/{self.pod} has "
                    f"terminated ({detail}); the command needs a running container, "
                    "e.g. one whose command is 'sleep infinity'"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SourceError(
                    f"container {self.container!r} of pod {self.namespace}/{self.pod} is not "
                    f"running after {self.ready_timeout:g}s ({detail}); check the pod's events, "
                    "or wait longer with --ready-timeout"
                )
            if not announced:
                log.info("waiting for %s to be running (%s)", self.describe(), detail)
                announced = True
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, max_delay)

    # -- the connection ------------------------------------------------------------------------

    def _connect(self, argv: Sequence[str], mode: Mode) -> tuple[WebSocket, str]:
        _, url, headers, _, _ = self._api.param_serialize(
            method="GET",
            resource_path="/api/v1/namespaces/{namespace}/pods/{name}/exec",
            path_params={"namespace": self.namespace, "name": self.pod},
            query_params=[
                ("command", list(argv)),
                ("container", self.container),
                ("stdin", mode is Mode.RESTORE),
                ("stdout", mode is Mode.BACKUP),
                ("stderr", True),
                ("tty", False),
            ],
            header_params={},
            auth_settings=["BearerToken"],
            collection_formats={"command": "multi"},
        )
        headers["sec-websocket-protocol"] = f"{V5_PROTOCOL},{V4_PROTOCOL}"
        what = f"exec into {self.describe()}"
        try:
            sock = ws_client.create_websocket(
                self._api.configuration, ws_client.get_websocket_url(url), headers
            )
        except WebSocketBadStatusException as exc:
            body = getattr(exc, "resp_body", None)
            raise SourceError(self._api_error(what, exc.status_code, None, body)) from exc
        except (WebSocketException, OSError) as exc:  # ssl.SSLError is an OSError
            raise SourceError(
                f"cannot {what}: the connection to the Kubernetes API server at "
                f"{self._api.configuration.host} failed ({_describe(exc)})"
            ) from exc
        protocol = _negotiated_protocol(sock)
        if protocol not in (V5_PROTOCOL, V4_PROTOCOL):
            sock.shutdown()
            raise SourceError(
                f"cannot {what}: the API server did not agree on an exec protocol "
                f"(asked for {V5_PROTOCOL} or {V4_PROTOCOL}, got {protocol or 'none'})"
            )
        return sock, protocol


class ExecCommand(Command):
    """One command running over an exec connection.

    In backup mode the caller's :meth:`readinto` drives the frame loop, so a slow consumer
    leaves frames in the socket and TCP pushes back on the server; at most one frame is held.
    In restore mode a reader thread takes stderr and the Status, and a sender thread frames,
    masks and sends what :meth:`write` queues; the queue holds four messages, so when the
    socket is full :meth:`write` blocks and a slow command pushes back on the pipeline.
    """

    def __init__(
        self,
        sock: WebSocket,
        mode: Mode,
        *,
        where: str,
        ping_interval: float = DEFAULT_PING_INTERVAL,
    ) -> None:
        self._sock = sock
        self._mode = mode
        self._where = where
        self._state_lock = threading.Lock()
        self._ended = threading.Event()  # Status received, connection closed or lost, or killed
        self._killed = False  # by kill(), before the stream ended on its own
        self._lost: str | None = None  # why the connection ended without a Status
        self._status: ExitStatus | None = None
        self._failure: str | None = None  # the server's message for a failure with no exit code
        self._status_bytes = bytearray()
        self._stderr = bytearray()
        self._pending = memoryview(b"")
        self._stdin_open = mode is Mode.RESTORE
        self._received = 0
        self._sent = 0  # stdin bytes handed to the socket (not just queued)
        self._last_frame = time.monotonic()
        self._receiving_since: float | None = None
        self._stop_pinging = threading.Event()
        # Stdin messages for the sender; None only wakes it up.
        self._outbox: queue.Queue[bytearray | None] = queue.Queue(maxsize=STDIN_QUEUE_DEPTH)
        self._input_done = threading.Event()
        self._keys, self._key_offset = b"", 0  # masking keys for the sender, see _mask_key
        self._send_error: BaseException | None = None
        self._pinger = threading.Thread(
            target=self._keep_alive, args=(ping_interval,), name="exec-ping", daemon=True
        )
        self._pinger.start()
        self._reader: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        if mode is Mode.RESTORE:
            self._reader = threading.Thread(target=self._drain, name="exec-reader", daemon=True)
            self._reader.start()
            self._sender = threading.Thread(target=self._send_loop, name="exec-sender", daemon=True)
            self._sender.start()

    # -- the frame loop ------------------------------------------------------------------------

    def _next_stdout(self) -> memoryview | None:
        """Receive frames until stdout data arrives (returned) or the stream ends (None).

        Only the thread running this loop touches the stderr buffer (and close(), after it).
        """
        while not self._ended.is_set():
            self._receiving_since = time.monotonic()
            try:
                opcode, frame = self._sock.recv_data_frame(True)
            except (WebSocketException, OSError, AttributeError) as exc:
                # AttributeError: the socket was closed under us by kill()/close().
                self._end(lost=f"the connection was lost ({type(exc).__name__})")
                break
            finally:
                self._receiving_since = None
            self._last_frame = time.monotonic()
            if opcode == ABNF.OPCODE_CLOSE:
                self._end(
                    lost="the API server closed the connection without sending an exit status"
                )
                break
            if opcode != ABNF.OPCODE_BINARY or not frame.data:
                continue
            data = memoryview(frame.data)
            channel, payload = data[0], data[1:]
            if channel == STDOUT:
                if payload:
                    self._received += len(payload)
                    return payload
            elif channel == STDERR:
                self._stderr_chunk(payload)
            elif channel == STATUS:
                self._status_chunk(payload)
        self._flush_stderr()  # the end of the stream ends stderr's last line
        return None

    def _drain(self) -> None:
        while self._next_stdout() is not None:
            pass  # restore has no stdout; anything there is discarded

    def _end(
        self,
        *,
        status: ExitStatus | None = None,
        failure: str | None = None,
        lost: str | None = None,
        killed: bool = False,
    ) -> bool:
        """Record how the stream ended; only the first end counts. Return whether this one did."""
        with self._state_lock:
            if self._ended.is_set():
                return False
            self._status, self._failure, self._lost, self._killed = status, failure, lost, killed
            self._ended.set()
            return True

    def _stderr_chunk(self, payload: memoryview) -> None:
        self._stderr += payload
        start = 0
        while (newline := self._stderr.find(b"\n", start)) >= 0:
            forward_stderr_line(bytes(self._stderr[start : newline + 1]))
            start = newline + 1
        del self._stderr[:start]
        while len(self._stderr) >= MAX_STDERR_LINE:
            forward_stderr_line(bytes(self._stderr[:MAX_STDERR_LINE]))
            del self._stderr[:MAX_STDERR_LINE]

    def _flush_stderr(self) -> None:
        if self._stderr:
            forward_stderr_line(bytes(self._stderr))
            self._stderr.clear()

    def _status_chunk(self, payload: memoryview) -> None:
        self._status_bytes += payload
        if len(self._status_bytes) > MAX_STATUS_BYTES:
            self._end(failure="the API server sent an oversized exit status")
            return
        try:
            status = json.loads(bytes(self._status_bytes))
        except ValueError:
            return  # the Status may span several messages; wait for the rest
        exit_status, failure = parse_status(status)
        self._end(status=exit_status, failure=failure)

    def _keep_alive(self, interval: float) -> None:
        """Ping every ``interval``; end the stream when pings go unanswered for too long.

        In a backup, a peer that vanished without closing the TCP connection would otherwise
        leave a silent command's stream blocked until TCP gives up, many minutes later. Only
        time spent waiting for a frame counts: while the pipeline is not reading (S3 is slow)
        the pongs wait unread in the socket, which says nothing about the peer. A restore is
        not judged this way: a server that stops reading stdin (the command is busy) cannot
        see the pings either, and that is back-pressure, not a dead peer.
        """
        dead_after = interval * UNANSWERED_PINGS if self._mode is Mode.BACKUP else float("inf")
        unanswered_since: float | None = None
        while not self._stop_pinging.wait(interval):
            if self._ended.is_set():
                return
            now = time.monotonic()
            if unanswered_since is not None and self._last_frame >= unanswered_since:
                unanswered_since = None
            receiving_since = self._receiving_since
            if (
                unanswered_since is not None
                and receiving_since is not None
                and now - max(unanswered_since, receiving_since) >= dead_after
            ):
                self._end(lost=f"no reply to keep-alive pings for {dead_after:g}s")
                with contextlib.suppress(OSError, AttributeError):
                    self._sock.abort()
                return
            try:
                self._sock.ping()
            except (WebSocketException, OSError, AttributeError):
                return  # the frame loop notices a dead connection on its own
            if unanswered_since is None:
                unanswered_since = now

    # -- the Command contract ------------------------------------------------------------------

    def readinto(self, buffer: memoryview) -> int:
        if self._mode is not Mode.BACKUP:
            raise SourceError("this command was not started for backup: it has no stdout to read")
        if not self._pending:
            data = self._next_stdout()
            if data is None:
                self._raise_if_lost()
                return 0
            self._pending = data
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def write(self, data: bytes | memoryview) -> None:
        if not self._stdin_open:
            raise StdinClosed("the restore command's input is already closed")
        view = memoryview(data).cast("B")
        while view:
            chunk, view = view[:MAX_STDIN_FRAME], view[MAX_STDIN_FRAME:]
            # A copy: the caller may reuse its buffer before the sender has sent it.
            self._enqueue(bytearray(chunk))

    def _enqueue(self, item: bytearray) -> None:
        """Queue one stdin message; raise StdinClosed once the input can no longer arrive."""
        while True:
            if self._send_error is not None or self._ended.is_set():
                raise StdinClosed(
                    f"the restore command in {self._where} stopped reading its input"
                ) from self._send_error
            try:
                self._outbox.put(item, timeout=0.1)
                return
            except queue.Full:
                continue  # the sender is blocked on the socket: that is the back-pressure

    def _send_loop(self) -> None:
        """Send queued stdin messages, so framing and TLS overlap the caller's decompression.

        Once close_stdin() was called and the queue is empty, the CLOSE signal goes out and the
        sender ends. It also ends on a send error or when the stream ends (kill() and close()
        end it): writers see either in _enqueue() instead of waiting on a full queue.
        """
        while not self._ended.is_set():
            try:
                item = self._outbox.get(timeout=0.2)
            except queue.Empty:
                item = None
            if item is not None:
                try:
                    self._send_stdin(item)
                except (WebSocketException, OSError, AttributeError) as exc:
                    self._send_error = exc
                    return
            elif self._input_done.is_set() and self._outbox.empty():
                with contextlib.suppress(WebSocketException, OSError, AttributeError):
                    self._sock.send(bytes((CLOSE, STDIN)), ABNF.OPCODE_BINARY)
                return

    def _send_stdin(self, chunk: bytearray) -> None:
        """Send one stdin message, framed and masked here, not by websocket-client.

        Masking is the costliest step of the restore path, and :func:`_masked` does it several
        times as fast as websocket-client; the channel byte is masked apart from the data so
        the data is never copied just to prepend it.
        """
        key = self._mask_key()
        header = _frame_header(len(chunk) + 1, key) + bytes((STDIN ^ key[0],))
        payload = _masked(key[1:] + key[:1], chunk)
        with self._sock.lock:  # the lock websocket-client's own sends (pings, pongs) take
            raw = self._sock.sock
            if raw is None:
                raise WebSocketException("the connection is closed")
            raw.sendall(header)
            raw.sendall(payload)
        self._sent += len(chunk)

    def _mask_key(self) -> bytes:
        """A fresh random masking key, cut from a pool (one getrandom call per 1024 keys).

        Each os.urandom call gives up the GIL and waits to take it back, which the profile
        showed costing more than the call itself; the keys stay unpredictable, as RFC 6455
        asks.
        """
        if self._key_offset >= len(self._keys):
            self._keys, self._key_offset = os.urandom(4096), 0
        self._key_offset += 4
        return self._keys[self._key_offset - 4 : self._key_offset]

    def close_stdin(self) -> None:
        """Have the sender send the CLOSE signal after the queued data; never blocks."""
        if not self._stdin_open:
            return
        self._stdin_open = False
        self._input_done.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)  # wakes an idle sender; a busy one gets there itself

    def wait(self) -> ExitStatus:
        if self._reader is not None:
            self._ended.wait()
        else:
            self._pending = memoryview(b"")
            while self._next_stdout() is not None:
                pass  # stdout nobody reads any more is discarded so the Status can arrive
        if self._status is not None:
            return self._status
        if self._failure is not None:
            raise SourceError(f"the command in {self._where} failed: {self._failure}")
        if self._killed:
            return ExitStatus(137, "killed: the exec connection was closed")
        self._raise_if_lost()
        raise SourceError(f"the exit status of the command in {self._where} is unknown")

    def kill(self) -> None:
        if not self._end(killed=True):
            return
        self._stop_pinging.set()
        with contextlib.suppress(OSError, AttributeError):
            self._sock.abort()  # wakes every thread blocked on the socket

    def close(self) -> None:
        self._stdin_open = False
        self.kill()
        self._stop_pinging.set()
        with contextlib.suppress(OSError, AttributeError):
            self._sock.abort()  # a sender blocked on a peer that stopped reading wakes up too
        for thread in (self._reader, self._sender, self._pinger):
            if thread is not None:
                thread.join(timeout=5)
        self._sock.shutdown()
        self._flush_stderr()

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            if self._mode is Mode.BACKUP:
                progress = f"after {self._received} bytes of output: {self._lost}; the output is "
                progress += "incomplete, so nothing is kept"
            else:
                progress = f"after {self._sent} bytes of input: {self._lost}; the restore may be "
                progress += "incomplete"
            raise SourceError(
                f"the exec connection to {self._where} ended without the command's exit status "
                f"{progress}"
            )


def mask(key: bytes, data: bytes | memoryview) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated: WebSocket client masking (RFC 6455 5.3)."""
    buffer = bytearray(data)
    mask_in_place(key, buffer)
    return bytes(buffer)


def _masked(key: bytes, buffer: bytearray) -> bytes | bytearray:
    """``buffer`` masked with ``key``: by websockets' C routine when it is installed, else
    in place by :func:`mask_in_place`."""
    if _apply_mask_c is not None:
        return _apply_mask_c(buffer, key)
    mask_in_place(key, buffer)
    return buffer


def mask_in_place(key: bytes, buffer: bytearray) -> None:
    """Mask ``buffer`` in place, in pure Python at about 1.3 GB/s.

    XOR with a repeating 4-byte key is four interleaved byte streams, each XORed with one
    constant byte: a ``bytes.translate`` table per key byte over every fourth byte does it in
    C loops (websocket-client's big-integer masking runs at about 320 MB/s).
    """
    for lane in range(4):
        buffer[lane::4] = buffer[lane::4].translate(_XOR_TABLES[key[lane]])


_XOR_TABLES = [bytes(value ^ byte for value in range(256)) for byte in range(256)]


def _frame_header(length: int, key: bytes) -> bytes:
    """The header of a final, masked, binary WebSocket frame of ``length`` payload bytes."""
    if length < 126:
        head = struct.pack("!BB", 0x82, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x82, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, length)
    return head + key


def parse_status(status: Any) -> tuple[ExitStatus | None, str | None]:
    """Read a Status object from channel 3: the exit status, or the server's failure message.

    Total over any JSON value: an exception here would escape a backup's ``readinto()`` as a
    traceback, and end a restore's reader thread, leaving ``wait()`` blocked.
    """
    if not isinstance(status, dict):
        return None, "the API server sent an unreadable exit status"
    if status.get("status") == "Success":
        return ExitStatus(0, "exit code 0"), None
    message = str(status.get("message") or status.get("reason") or "no message")
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if status.get("reason") == "NonZeroExitCode" and isinstance(causes, list):
        for cause in causes:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    code = int(str(cause.get("message")))
                except ValueError:
                    break
                if code != 0:
                    return ExitStatus(code, f"exit code {code}"), None
    return None, message


def _describe(exc: BaseException) -> str:
    """A short account of a transport error (urllib3 wraps the cause in MaxRetryError)."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(reason, BaseException):
        exc = reason
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _negotiated_protocol(sock: WebSocket) -> str | None:
    headers = sock.getheaders() or {}
    for key, value in headers.items():
        if key.lower() == "sec-websocket-protocol":
            return str(value).strip().lower()
    return None


def _status_message(body: Any) -> str | None:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return str(body).strip()[:500] or None
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return None


def _container_state(pod: dict[str, Any], container: str) -> tuple[str, str]:
    """``(running|waiting|terminated|missing, detail)`` of one container of a Pod object."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    declared = [c.get("name") for c in spec.get("containers") or []]
    declared += [c.get("name") for c in spec.get("initContainers") or []]
    if container not in declared:
        return "missing", ", ".join(str(name) for name in declared) or "none"
    statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    for entry in statuses:
        if entry.get("name") != container:
            continue
        state = entry.get("state") or {}
        if "running" in state:
            return "running", "running"
        if "terminated" in state:
            term = state["terminated"] or {}
            reason = term.get("reason") or "terminated"
            return "terminated", f"{reason}, exit code {term.get('exitCode', '?')}"
        waiting = state.get("waiting") or {}
        return "waiting", f"waiting: {waiting.get('reason') or 'unknown reason'}"
    return "waiting", f"pod phase {status.get('phase') or 'unknown'}"


def _kubeconfig_path() -> str:
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def _default_namespace(in_cluster: bool) -> str:
    namespace = os.environ.get("POD_NAMESPACE")
    if namespace:
        return namespace
    if in_cluster:
        with contextlib.suppress(OSError):
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            if namespace:
                return namespace
    with contextlib.suppress(*KUBECONFIG_ERRORS):
        _, active = k8s_config.list_kube_config_contexts(config_file=_kubeconfig_path())
        namespace = (active or {}).get("context", {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"
