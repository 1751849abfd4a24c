"""The loopback Kubernetes API of one test: the emulator on its own thread, and a sync facade.

The emulator runs on an event loop of its own, in a background thread, on 127.0.0.1 and a free
port, so the controller running as a subprocess (through the kubeconfig written here) and the
test's synchronous code (the official ``kubernetes`` client, or the methods of
:class:`KubeApi`) both talk to it. The methods run on the emulator's loop, through the same
store as HTTP requests, and return deep copies; errors are the server's
:class:`~tests.controller.apierrors.ApiError`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kmock
import kubernetes
import yaml
from kmock._internal.filtering import K8sCriteria

from tests.controller.apierrors import ApiError
from tests.controller.emulator import Emulator, Fault
from tests.controller.resources import declare_all
from tests.controller.selectors import FieldSelector, LabelSelector, Query
from tests.controller.watchlog import Change

__all__ = ["ApiError", "KubeApi", "running_kube_api"]

T = TypeVar("T")
Body = dict[str, Any]
ResourceSpec = str | kmock.resource
#: How long a call waits for the server's loop (a stuck loop is a failure, not a hang).
CALL_TIMEOUT = 60.0
#: The fake bearer token in the kubeconfig.
TOKEN = "loopback-test-token"


class KubeApi:
    """The running API of a test. ``url`` and ``kubeconfig`` are for clients."""

    def __init__(
        self, emulator: Emulator, loop: asyncio.AbstractEventLoop, url: str, kubeconfig: Path
    ) -> None:
        self.emulator = emulator
        self.url = url
        self.kubeconfig = kubeconfig
        self._loop = loop
        self._changes = 0
        self._condition = threading.Condition()
        self.call(lambda: emulator.store.listeners.append(self._changed))

    def _changed(self, change: Change) -> None:
        with self._condition:
            self._changes += 1
            self._condition.notify_all()

    def call(self, fn: Callable[[], T], *, copied: bool = True) -> T:
        """Run ``fn`` on the server's event loop; its result is deep-copied unless not ``copied``."""

        async def run() -> T:
            result = fn()
            return copy.deepcopy(result) if copied else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(CALL_TIMEOUT)

    # -- resources ---------------------------------------------------------------------------

    def resource(self, spec: ResourceSpec) -> kmock.resource:
        """A declared resource: ``"backupruns"``, ``"v1/secrets"``, ``"workflows.argoproj.io"``."""
        wanted = spec if isinstance(spec, kmock.resource) else kmock.resource(spec)
        declared = [kmock.resource(r) for r in self.emulator.resources]
        matches = [r for r in declared if wanted.check(r)]
        if len(matches) != 1:
            known = ", ".join(sorted(f"{r.group}/{r.version}/{r.plural}" for r in declared))
            raise LookupError(f"{spec!r} names {len(matches)} declared resources; known: {known}")
        return matches[0]

    # -- objects -----------------------------------------------------------------------------

    def get(self, resource: ResourceSpec, name: str, namespace: str | None = None) -> Body | None:
        """The object, or None when there is none."""
        res = self.resource(resource)
        store = self.emulator.store

        def get() -> Body | None:
            try:
                return store.get(res, namespace, name)
            except ApiError as exc:
                if exc.code == 404:
                    return None
                raise

        return self.call(get)

    def list(
        self,
        resource: ResourceSpec,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[Body]:
        res = self.resource(resource)
        query = Query(
            namespace=namespace,
            labels=LabelSelector.parse(labels),
            fields=FieldSelector.parse(fields),
        )
        return self.call(lambda: self.emulator.store.list(res, query))

    def create(
        self, resource: ResourceSpec, body: Mapping[str, Any], namespace: str | None = None
    ) -> Body:
        res = self.resource(resource)
        return self.call(lambda: self.emulator.store.create(res, namespace, body))

    def apply(
        self,
        resource: ResourceSpec,
        body: Mapping[str, Any],
        *,
        manager: str = "test",
        status: bool = False,
    ) -> Body:
        """Server-side apply of ``body`` (its metadata names the object) as ``manager``."""
        res = self.resource(resource)
        meta = body.get("metadata") or {}
        return self.call(
            lambda: self.emulator.store.patch(
                res,
                meta.get("namespace"),
                meta["name"],
                body,
                patch_type="apply",
                status_only=status,
                manager=manager,
            )[0]
        )

    def patch(
        self,
        resource: ResourceSpec,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        status: bool = False,
        patch_type: str = "merge",
    ) -> Body:
        """A JSON merge patch (or ``patch_type="json"`` for a JSON patch)."""
        res = self.resource(resource)
        return self.call(
            lambda: self.emulator.store.patch(
                res, namespace, name, patch, patch_type=patch_type, status_only=status
            )[0]
        )

    def replace(
        self, resource: ResourceSpec, body: Mapping[str, Any], *, status: bool = False
    ) -> Body:
        """A PUT of ``body``: a resourceVersion in it must be the stored one."""
        res = self.resource(resource)
        meta = body.get("metadata") or {}
        return self.call(
            lambda: self.emulator.store.replace(
                res, meta.get("namespace"), meta["name"], body, status_only=status
            )
        )

    def delete(
        self, resource: ResourceSpec, name: str, namespace: str | None = None
    ) -> Body | None:
        """Delete: the object marked for deletion (it has finalizers), or None when gone."""
        res = self.resource(resource)
        return self.call(lambda: self.emulator.store.delete(res, namespace, name))

    # -- faults and watches ------------------------------------------------------------------

    def drop_watches(self, resource: ResourceSpec | None = None) -> int:
        """Cut every open watch connection (of ``resource``); how many there were."""
        res = None if resource is None else self.resource(resource)
        return self.call(lambda: self.emulator.drop_watches(res))

    def watches(self, resource: ResourceSpec | None = None) -> int:
        """How many watches are open (on ``resource``)."""
        res = None if resource is None else self.resource(resource)
        return self.call(lambda: self.emulator.watches(res))

    def fail_next(
        self,
        method: str,
        resource: ResourceSpec,
        *,
        subresource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        code: int = 409,
        times: int = 1,
    ) -> Fault:
        """The next ``times`` requests of ``method`` on ``resource`` (its ``subresource``, or
        the main resource when None) answer ``code``, and change nothing."""
        criteria = K8sCriteria(
            method=kmock.method(method.upper()),
            resource=self.resource(resource),
            subresource=subresource,
            name=... if name is None else name,
            namespace=... if namespace is None else namespace,
        )
        return self.call(
            lambda: self.emulator.fail_next(criteria, code=code, times=times), copied=False
        )

    def requests(self) -> builtins.list[kmock.Request]:
        """The recent requests the server got (kmock's records), oldest first."""
        return self.call(lambda: list(self.emulator._requests), copied=False)

    @property
    def failures(self) -> builtins.list[BaseException]:
        """Defects of the emulator itself (each answered a 500)."""
        return list(self.emulator.failures)

    # -- waiting -----------------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 30.0, *, message: str | None = None
    ) -> T:
        """Wait until ``predicate()`` is truthy and return it.

        It is checked after every change of the API's state, and every half second besides
        (for conditions outside the API, such as an S3 object); past ``timeout`` seconds the
        wait fails with ``message``.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._condition:
                seen = self._changes
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = message or getattr(predicate, "__name__", repr(predicate))
                raise AssertionError(f"not true after {timeout:g} s: {what}")
            self._wait_for_change(seen, min(0.5, remaining))

    def _wait_for_change(self, seen: int, timeout: float) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._changes != seen, timeout)

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new client of the official library, configured from the kubeconfig."""
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
            config_file=str(self.kubeconfig)
        )
        return client


def write_kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loopback", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": "loopback",
                "context": {"cluster": "loopback", "user": "test", "namespace": "default"},
            }
        ],
        "current-context": "loopback",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def running_kube_api(kubeconfig: Path, **options: Any) -> Iterator[KubeApi]:
    """Serve the emulated API (``options`` go to :class:`Emulator`) while the block runs."""
    ready = threading.Event()
    box: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        emulator = Emulator(**options)
        declare_all(emulator)
        stop = asyncio.Event()
        async with emulator, kmock.Server(emulator, host="127.0.0.1") as server:
            box.update(emulator=emulator, port=server.port, stop=stop)
            ready.set()
            await stop.wait()
            emulator.drop_watches()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException as exc:
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="loopback-kube-api", daemon=True)
    thread.start()
    if not ready.wait(CALL_TIMEOUT) or "error" in box:
        raise RuntimeError(f"the loopback Kubernetes API did not start: {box.get('error')!r}")
    url = f"http://127.0.0.1:{box['port']}"
    try:
        yield KubeApi(box["emulator"], loop, url, write_kubeconfig(kubeconfig, url))
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(CALL_TIMEOUT)
