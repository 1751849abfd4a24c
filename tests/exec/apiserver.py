"""A loopback Kubernetes API server that serves exactly what the exec source uses.

No cluster runs on the test machines, so this endpoint stands in for the API server and the
kubelet behind it, speaking the real exec subprotocols over a real WebSocket:

- ``GET /version`` and ``GET /api/v1/namespaces/{ns}/pods/{pod}`` (the readiness wait);
- ``GET /api/v1/namespaces/{ns}/pods/{pod}/exec?command=…&container=…&stdin=…`` upgraded to a
  WebSocket, negotiating ``v5.channel.k8s.io`` or ``v4.channel.k8s.io`` (or only v4), channels
  0-3 as binary messages whose first byte is the channel, the v5 CLOSE signal ``[255, 0]``, and
  the exit Status on channel 3, as the kubelet writes it;
- bearer-token authentication, and Status bodies for 401, 404 and 400, as the API server sends;
- faults: drop the TCP connection after N bytes of stdout or stdin (an API server restart),
  end without a Status, and answer the next Pod reads or exec upgrades with an HTTP error
  (429, 503, 403 …) or by dropping the connection unanswered.

The requested command runs as a local process. Run ``python -m tests.exec.apiserver --help``
to start one in its own process (benchmarks and the 1 GiB test, so it does not share the GIL).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, CLOSE = 0, 1, 2, 3, 255
READ_SIZE = 64 * 1024  # the kubelet copies stdout in 32 KiB pieces; a bit more is fine here


@dataclass
class PodSpec:
    """A Pod the endpoint knows: its containers and what state each is in."""

    containers: dict[str, str] = field(default_factory=lambda: {"main": "running"})
    #: Containers that read "waiting" for this many seconds after the endpoint started.
    running_after: float = 0.0
    phase: str = "Running"


@dataclass
class Behaviour:
    """What the endpoint does: protocols it speaks, the version it reports, the faults."""

    protocols: tuple[str, ...] = (V5, V4)
    version: tuple[int, int] = (1, 31)
    #: Close the TCP connection abruptly after this many bytes of stdout or stdin.
    drop_after: int | None = None
    #: End the exec stream (normal WebSocket close) without the Status on channel 3.
    omit_status: bool = False
    #: Statuses to answer the next exec upgrades with, one per request; DROP closes the
    #: connection without an answer, after the request arrived.
    exec_failures: list[int] = field(default_factory=list)
    #: Statuses to answer the next GETs of a Pod with, one per request.
    pod_failures: list[int] = field(default_factory=list)


#: In ``exec_failures``: close the connection without answering the upgrade.
DROP = 0


@dataclass
class ExecRecord:
    namespace: str
    pod: str
    container: str
    argv: list[str]
    protocol: str | None
    stdin: bool
    stdout: bool
    stdin_closed_by_signal: bool = False
    exit_code: int | None = None
    #: stdout bytes handed to the WebSocket, stdin bytes taken from it (for back-pressure tests)
    counted: int = 0


class ApiServer:
    """The endpoint; ``start()`` it, point a kubeconfig at :attr:`url`, ``stop()`` it."""

    def __init__(
        self,
        token: str,
        pods: dict[tuple[str, str], PodSpec] | None = None,
        behaviour: Behaviour | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.pods = pods if pods is not None else {("default", "pod"): PodSpec()}
        self.behaviour = behaviour or Behaviour()
        self.execs: list[ExecRecord] = []
        #: The injected failures answered so far, in order: ("exec" | "pod", status).
        self.failed: list[tuple[str, int]] = []
        self._tls = tls
        self._host = host
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.socket.getsockname()[1]
        return f"{'https' if self._tls else 'http'}://{self._host}:{port}"

    def start(self) -> ApiServer:
        self._started = time.monotonic()
        self._server = serve(
            self._exec,
            self._host,
            self._port,
            ssl=self._tls,
            select_subprotocol=self._select_subprotocol,
            process_request=self._http,
            compression=None,
            ping_interval=None,
            close_timeout=1,
            max_size=32 * 1024 * 1024,
            server_header="loopback-kube-apiserver",
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- plain HTTP: version, pods, rejected upgrades ------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/").split("/")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token != self.token:  # the scheme is case-insensitive
            return _status_response(http.HTTPStatus.UNAUTHORIZED, "Unauthorized", "Unauthorized")
        if parts.path.rstrip("/") == "/version":
            major, minor = self.behaviour.version
            return _json_response(
                200, {"major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.0"}
            )
        # ['', 'api', 'v1', 'namespaces', ns, 'pods', name] (+ ['exec'])
        if len(path) not in (7, 8) or path[1:4] != ["api", "v1", "namespaces"] or path[5] != "pods":
            return _status_response(
                http.HTTPStatus.NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
        namespace, name = path[4], path[6]
        spec = self.pods.get((namespace, name))
        if spec is None:
            return _status_response(
                http.HTTPStatus.NOT_FOUND, "NotFound", f'pods "{name}" not found'
            )
        if len(path) == 7:
            if self.behaviour.pod_failures:
                return self._fail("pod", self.behaviour.pod_failures.pop(0), connection)
            return _json_response(200, self._pod_object(namespace, name, spec))
        if path[7] != "exec":
            return _status_response(
                http.HTTPStatus.NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
        query = parse_qs(parts.query)
        container = (query.get("container") or [""])[0]
        if container not in spec.containers:
            return _status_response(
                http.HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"container {container} is not valid for pod {name}",
            )
        if self._state(spec, container) != "running":
            return _status_response(
                http.HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"container {container} is not running in pod {name}",
            )
        if not query.get("command"):
            return _status_response(
                http.HTTPStatus.BAD_REQUEST, "BadRequest", "you must specify at least 1 command"
            )
        if self.behaviour.exec_failures:
            return self._fail("exec", self.behaviour.exec_failures.pop(0), connection)
        return None  # go on with the WebSocket handshake

    def _fail(self, what: str, status: int, connection: ServerConnection) -> Response:
        """Answer an injected failure: a Status body as the API server sends, or nothing."""
        self.failed.append((what, status))
        if status == DROP:
            with contextlib.suppress(OSError):
                connection.socket.shutdown(socket.SHUT_RDWR)
        code = http.HTTPStatus(status or 503)
        return _status_response(code, code.phrase.replace(" ", ""), f"injected: {code.phrase}")

    def _state(self, spec: PodSpec, container: str) -> str:
        state = spec.containers[container]
        if state == "running" and time.monotonic() - self._started < spec.running_after:
            return "waiting"
        return state

    def _pod_object(self, namespace: str, name: str, spec: PodSpec) -> dict[str, Any]:
        statuses = []
        for container in spec.containers:
            state = self._state(spec, container)
            if state == "running":
                detail: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
            elif state == "terminated":
                detail = {"terminated": {"exitCode": 0, "reason": "Completed"}}
            else:
                detail = {"waiting": {"reason": "ContainerCreating"}}
            statuses.append(
                {"name": container, "ready": state == "running", "restartCount": 0, "state": detail}
            )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": "00000000-0000-0000-0000-000000000001",
            },
            "spec": {"containers": [{"name": c, "image": "busybox"} for c in spec.containers]},
            "status": {"phase": spec.phase, "containerStatuses": statuses},
        }

    def _select_subprotocol(self, connection: ServerConnection, offered: Sequence[str]) -> Any:
        for protocol in self.behaviour.protocols:
            if protocol in offered:
                return protocol
        return None

    # -- the exec stream -----------------------------------------------------------------------

    def _exec(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        parts = urlsplit(request.path)
        path = parts.path.split("/")
        query = parse_qs(parts.query)
        record = ExecRecord(
            namespace=path[4],
            pod=path[6],
            container=query["container"][0],
            argv=query["command"],
            protocol=connection.subprotocol,
            stdin=query.get("stdin") == ["true"],
            stdout=query.get("stdout") == ["true"],
        )
        self.execs.append(record)
        if record.protocol is None:
            connection.close(1002, "no subprotocol")
            return
        _Session(self, connection, record).run()

    def _track(self, proc: subprocess.Popen[bytes], add: bool) -> None:
        with self._lock:
            (self._procs.add if add else self._procs.discard)(proc)


class _Session:
    """One exec: a local process wired to the channels of one WebSocket."""

    def __init__(self, server: ApiServer, connection: ServerConnection, record: ExecRecord) -> None:
        self.server = server
        self.conn = connection
        self.record = record
        self.behaviour = server.behaviour
        self.send_lock = threading.Lock()
        self.counted = 0
        self.dropped = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None

    def send(self, channel: int, data: bytes) -> None:
        with self.send_lock:
            if self.dropped.is_set():
                raise ConnectionResetError("dropped")
            self.conn.send(bytes((channel,)) + data)

    def count(self, size: int) -> None:
        """Count payload bytes; drop the connection (no close frame) past ``drop_after``."""
        limit = self.behaviour.drop_after
        self.counted += size
        self.record.counted = self.counted
        if limit is not None and self.counted >= limit and not self.dropped.is_set():
            self.dropped.set()
            with contextlib.suppress(OSError):
                self.conn.socket.shutdown(socket.SHUT_RDWR)
            self.conn.socket.close()
            if self.proc is not None:
                _kill(self.proc)

    def run(self) -> None:
        record = self.record
        try:
            proc = subprocess.Popen(
                record.argv,
                stdin=subprocess.PIPE if record.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if record.stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            self.status(
                {
                    "status": "Failure",
                    "reason": "InternalError",
                    "message": f'exec: "{record.argv[0]}": {exc.strerror}',
                }
            )
            return
        self.proc = proc
        self.server._track(proc, True)
        try:
            self._serve(proc)
        finally:
            _kill(proc)
            self.server._track(proc, False)

    def _serve(self, proc: subprocess.Popen[bytes]) -> None:
        pumps = [threading.Thread(target=self._pump, args=(proc.stderr, STDERR), daemon=True)]
        if proc.stdout is not None:
            pumps.append(
                threading.Thread(target=self._pump, args=(proc.stdout, STDOUT), daemon=True)
            )
        threading.Thread(target=self._feed, args=(proc,), daemon=True).start()
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        code = proc.wait()
        self.record.exit_code = code
        if self.dropped.is_set():
            return
        if code < 0:
            code = 128 - code
        if self.behaviour.omit_status:
            return
        if code == 0:
            self.status({"metadata": {}, "status": "Success"})
        else:
            self.status(
                {
                    "metadata": {},
                    "status": "Failure",
                    "message": (
                        f"command terminated with non-zero exit code: error executing command "
                        f"{self.record.argv}, exit code {code}"
                    ),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
                }
            )

    def status(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            self.send(STATUS, json.dumps(status).encode())

    def _pump(self, stream: Any, channel: int) -> None:
        with stream:
            while chunk := stream.read(READ_SIZE):
                try:
                    self.send(channel, chunk)
                except (ConnectionClosed, OSError):
                    break
                if channel == STDOUT:
                    self.count(len(chunk))

    def _feed(self, proc: subprocess.Popen[bytes]) -> None:
        """Take the client's messages until it goes away; then stop the command.

        The kubelet leaves a command running when its exec stream goes away (it sees its
        stdio closed); this endpoint kills it so no test leaves a process behind.
        """
        stdin = proc.stdin
        try:
            for message in _messages(self.conn):
                if not message or self.dropped.is_set():
                    continue
                channel, payload = message[0], memoryview(message)[1:]
                if channel == CLOSE and self.record.protocol == V5:
                    if payload and payload[0] == STDIN and stdin is not None:
                        self.record.stdin_closed_by_signal = True
                        with contextlib.suppress(BrokenPipeError, OSError):
                            stdin.close()
                elif channel == STDIN and stdin is not None and not stdin.closed:
                    self.count(len(payload))
                    # A command that stopped reading gets the rest discarded, as the kubelet does.
                    with contextlib.suppress(BrokenPipeError, ValueError):
                        stdin.write(payload)
        finally:
            if stdin is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    stdin.close()
            _kill(proc)


def _messages(conn: ServerConnection) -> Iterator[bytes]:
    while True:
        try:
            message = conn.recv()
        except (ConnectionClosed, OSError):
            return
        if isinstance(message, bytes):
            yield message


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _json_response(status: int, body: dict[str, Any]) -> Response:
    data = json.dumps(body).encode()
    code = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", "application/json"),
        ]
    )
    return Response(code.value, code.phrase, headers, data)


def _status_response(code: http.HTTPStatus, reason: str, message: str) -> Response:
    return _json_response(
        code.value,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.value,
        },
    )


def make_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1: the server's TLS context and the CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback-kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "apiserver.crt"
    key_file = directory / "apiserver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


#: OpenSSL settings for an endpoint in its own process: TLS 1.3 suites in the order
#: kube-apiserver picks them. Go's TLS server prefers AES-128-GCM on AES hardware whatever
#: the client lists first; OpenSSL would take the client's AES-256-GCM, a third more work per
#: byte on both sides of a benchmark than a cluster asks for. Python's ssl cannot set TLS 1.3
#: suites, so this reaches OpenSSL as a configuration file, read when the process starts.
GO_TLS13_CONFIG = """\
openssl_conf = loopback_conf
[loopback_conf]
ssl_conf = loopback_ssl
[loopback_ssl]
system_default = loopback_tls
[loopback_tls]
Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
Options = ServerPreference
"""


def process_env(directory: Path) -> dict[str, str]:
    """Environment for ``python -m tests.exec.apiserver`` run beside a benchmark.

    - ``OPENSSL_CONF``: the suites of :data:`GO_TLS13_CONFIG` (written into ``directory``).
    - glibc's malloc keeps freed memory: websockets builds each 1 MiB stdin message in fresh
      buffers, and with the default thresholds the heap is handed back and faulted in again
      for every one (page zeroing and faults were a fifth of the endpoint's CPU, ~0.6 s per
      GB, on the cores the streamer is measured on). A kubelet is a Go process elsewhere.
    """
    config = directory / "openssl-loopback.cnf"
    config.write_text(GO_TLS13_CONFIG)
    return {
        "OPENSSL_CONF": str(config),
        "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    }


def write_kubeconfig(
    path: Path,
    server_url: str,
    token: str,
    *,
    namespace: str | None = None,
    ca_file: Path | None = None,
) -> Path:
    """A kubeconfig (JSON is YAML) with one context pointing at ``server_url``."""
    cluster: dict[str, Any] = {"server": server_url}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    context: dict[str, Any] = {"cluster": "loopback", "user": "streamer"}
    if namespace is not None:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loopback", "cluster": cluster}],
        "users": [{"name": "streamer", "user": {"token": token}}],
        "contexts": [{"name": "loopback", "context": context}],
        "current-context": "loopback",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--pod", default="default/pod", help="NAMESPACE/NAME")
    parser.add_argument("--container", action="append", default=None)
    parser.add_argument("--v4-only", action="store_true")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig here once listening")
    parser.add_argument("--tls-dir", type=Path, help="serve HTTPS with a certificate made here")
    args = parser.parse_args(argv)
    tls, ca_file = make_tls(args.tls_dir) if args.tls_dir else (None, None)
    namespace, name = args.pod.split("/", 1)
    pods = {(namespace, name): PodSpec(dict.fromkeys(args.container or ["main"], "running"))}
    behaviour = Behaviour(protocols=(V4,) if args.v4_only else (V5, V4))
    server = ApiServer(args.token, pods, behaviour, tls=tls, port=args.port).start()
    if args.kubeconfig is not None:
        write_kubeconfig(
            args.kubeconfig, server.url, args.token, namespace=namespace, ca_file=ca_file
        )
    print(server.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        # Wake up now and then: a signal taken by another thread only runs its handler when
        # the main thread next executes Python code.
        while not stop.wait(0.2):
            pass
    server.stop()


if __name__ == "__main__":
    main()
