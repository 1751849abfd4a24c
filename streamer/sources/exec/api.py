"""Everything before the exec stream: the runner's settings, the Pod's readiness, the API
server's version, and the WebSocket handshake.

The official client does configuration, authentication, TLS and the handshake; this module
asks it for exactly four things: ``GET /version``, ``GET`` the Pod (until the container runs),
and the ``pods/exec`` upgrade. Each is tried by the one policy in :mod:`.retry` (at most 5
attempts, 0.5 s to 4 s exponential backoff with jitter, only refused connections, resets and
timeouts of the GETs, and HTTP 429/500/502/503/504 count as transient; the handshake is
retried only when the command cannot have started). Waiting for the container to run is its
own bounded loop: polls every 0.25 s, backing off to 2 s, for ``ready_timeout`` seconds.

A restore needs the v5 CLOSE signal (v4 cannot close stdin), so it refuses a server older than
1.30 before exec, when the command never starts, and a server that still negotiates v4 right
after the handshake, before sending anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import tenacity
import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import ws_client as _ws_client
from websocket import WebSocketBadStatusException, WebSocketException

from streamer.contract import Env, Flag
from streamer.errors import ConfigError, SourceError
from streamer.sources.base import Mode
from streamer.sources.exec import credentials
from streamer.sources.exec.command import DEFAULT_PING_INTERVAL, ExecCommand, WebSocket
from streamer.sources.exec.protocol import FIRST_VERSION_WITH_CLOSE, V4_PROTOCOL, V5_PROTOCOL
from streamer.sources.exec.retry import (
    API_RETRY,
    TRANSIENT_STATUSES,
    RetryPolicy,
    Transient,
    call_with_retries,
    is_transient_handshake_error,
    is_transient_transport_error,
)

__all__ = ["DEFAULT_READY_TIMEOUT", "ExecRunner"]

log = logging.getLogger(__name__)

# The package ships partial annotations; its untyped calls stay inside this package.
ws_client: Any = _ws_client

#: How long to wait for the target container to be running before exec.
DEFAULT_READY_TIMEOUT = 120.0
#: Readiness polling backs off from the first to the second delay.
READY_POLL_DELAYS = (0.25, 2.0)
#: Timeout of each API request made before exec (readiness, version).
API_REQUEST_TIMEOUT = 30.0


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
        retry: RetryPolicy = API_RETRY,
    ) -> None:
        if not pod:
            raise ConfigError(f"no pod given: pass {Flag.POD} NAME or set {Env.POD_NAME}")
        if not container:
            raise ConfigError(
                f"no container given for pod {namespace}/{pod}: pass {Flag.CONTAINER}"
            )
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
        self.retry = retry

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
        pod = pod or os.environ.get(Env.POD_NAME) or None
        if pod is None:
            raise ConfigError(
                f"no pod given: pass {Flag.POD} NAME or set {Env.POD_NAME} (the downward API)"
            )
        configuration, in_cluster = credentials.load_configuration()
        if namespace is None:
            namespace = credentials.default_namespace(in_cluster)
        return cls(
            k8s_client.ApiClient(configuration),
            namespace,
            pod,
            container,
            ready_timeout=ready_timeout,
        )

    def for_container(self, container: str) -> ExecRunner:
        """The same Pod, API client and settings, running commands in ``container``."""
        return ExecRunner(
            self._api,
            self.namespace,
            self.pod,
            container,
            ready_timeout=self.ready_timeout,
            ping_interval=self.ping_interval,
            retry=self.retry,
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

    # -- requests ------------------------------------------------------------------------------

    def _get_json(self, what: str, path: str, **path_params: str) -> dict[str, Any]:
        """GET one API object as plain JSON, by the retry policy."""
        return call_with_retries(self.retry, lambda: self._get_json_once(what, path, path_params))

    def _get_json_once(self, what: str, path: str, path_params: dict[str, str]) -> dict[str, Any]:
        """One GET.

        The generated API classes validate every call with pydantic, which costs ~23 MiB of
        schemas for one GET; the client's serializer, auth and transport are used directly.
        """
        host = self._api.configuration.host
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
                f"cannot reach the Kubernetes API server at {host} to {what}: {exc.reason}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = Transient if is_transient_transport_error(exc) else SourceError
            raise error(
                f"cannot reach the Kubernetes API server at {host} to {what}: {_describe(exc)}"
            ) from exc
        if not 200 <= response.status < 300:
            error = Transient if response.status in TRANSIENT_STATUSES else SourceError
            raise error(self._api_error(what, response.status, response.reason, raw))
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
            hint = f"; check {Flag.POD} (or {Env.POD_NAME}) and {Flag.NAMESPACE}"
        elif status == 400:
            hint = f"; check {Flag.CONTAINER}"
        return f"cannot {what}: HTTP {status}: {message}{hint}"

    # -- before exec ---------------------------------------------------------------------------

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
        """Poll the Pod until the container runs; fail at once if it never can."""
        deadline = time.monotonic() + self.ready_timeout
        backoff = tenacity.wait_exponential(
            multiplier=READY_POLL_DELAYS[0], max=READY_POLL_DELAYS[1]
        )

        def wait(state: tenacity.RetryCallState) -> float:
            return min(backoff(state), max(0.0, deadline - time.monotonic()))

        def announce(state: tenacity.RetryCallState) -> None:
            if state.attempt_number == 1:
                log.info("waiting for %s to be running (%s)", self.describe(), _detail(state))

        def give_up(state: tenacity.RetryCallState) -> NoReturn:
            raise SourceError(
                f"container {self.container!r} of pod {self.namespace}/{self.pod} is not "
                f"running after {self.ready_timeout:g}s ({_detail(state)}); check the pod's "
                "events, or wait longer with --ready-timeout"
            )

        tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_NotRunningYet),
            stop=lambda state: time.monotonic() >= deadline,
            wait=wait,
            before_sleep=announce,
            retry_error_callback=give_up,
        )(self._check_running)

    def _check_running(self) -> None:
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
                f"(its containers: {detail}); check {Flag.CONTAINER}"
            )
        if state == "terminated":
            raise SourceError(
                f"container {self.container!r} of pod {self.namespace}/{self.pod} has "
                f"terminated ({detail}); the command needs a running container, "
                "e.g. one whose command is 'sleep infinity'"
            )
        raise _NotRunningYet(detail)

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
                ("stdout", mode is not Mode.RESTORE),  # a check's stdout goes to the log
                ("stderr", True),
                ("tty", False),
            ],
            header_params={},
            auth_settings=["BearerToken"],
            collection_formats={"command": "multi"},
        )
        headers["sec-websocket-protocol"] = f"{V5_PROTOCOL},{V4_PROTOCOL}"
        what = f"exec into {self.describe()}"
        sock = call_with_retries(self.retry, lambda: self._handshake(what, url, headers))
        protocol = _negotiated_protocol(sock)
        if protocol not in (V5_PROTOCOL, V4_PROTOCOL):
            sock.shutdown()
            raise SourceError(
                f"cannot {what}: the API server did not agree on an exec protocol "
                f"(asked for {V5_PROTOCOL} or {V4_PROTOCOL}, got {protocol or 'none'})"
            )
        return sock, protocol

    def _handshake(self, what: str, url: str, headers: dict[str, str]) -> WebSocket:
        """One upgrade to an exec WebSocket; Transient only when the command cannot have
        started (see .retry)."""
        try:
            return ws_client.create_websocket(
                self._api.configuration, ws_client.get_websocket_url(url), headers
            )
        except WebSocketBadStatusException as exc:
            error = Transient if is_transient_handshake_error(exc) else SourceError
            message = self._api_error(what, exc.status_code, exc.status_message, exc.resp_body)
            raise error(message) from exc
        except (WebSocketException, OSError) as exc:  # ssl.SSLError is an OSError
            error = Transient if is_transient_handshake_error(exc) else SourceError
            raise error(
                f"cannot {what}: the connection to the Kubernetes API server at "
                f"{self._api.configuration.host} failed ({_describe(exc)})"
            ) from exc


class _NotRunningYet(Exception):
    """The container is waiting; polled again until the ready timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _detail(state: tenacity.RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.detail if isinstance(exc, _NotRunningYet) else "unknown"


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
