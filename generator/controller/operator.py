"""kopf's part of the controller: watch, and tell the reconcile loop what changed.

kopf (standalone: one replica) lists and watches BackupStorages, BackupSchedules, BackupRuns
and the Workflows that are ours, and calls one ``on.event`` handler per kind, which only tells
:class:`~generator.controller.reconciler.Controller` what changed (the controller keeps the
objects in its own cache); on startup the controller lists what it will be told of and starts
its workers and periodic task, and stops them on cleanup. Nothing else of kopf is used, on
purpose: its indexes (``kopf.index``) take time quadratic in the number of objects to start
(see :mod:`generator.controller.cache`), change handlers (``on.create``/``on.update``/
``on.field``) keep the last handled body in an annotation, timers and daemons put a finalizer
on every object they match, and ``on.event`` errors are never retried (the controller's queue
retries). So kopf's diff base is not even built (:class:`_NoDiffBase`). No handler of any
kind is registered for Secrets.

The only module of the generator that imports kopf (an import-linter contract says so).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import REGISTRY, start_http_server

from generator.controller.cache import is_our_workflow
from generator.controller.kube import Kube, KubeConfigError, TemporaryKubeError
from generator.controller.metrics import CatalogueCollector, LoopSnapshots
from generator.controller.reconciler import Controller
from generator.controller.settings import Settings
from generator.models import GROUP, VERSION

__all__ = ["ControllerOptions", "KubeConfigError", "registry_for", "run"]

log = logging.getLogger(__name__)

ARGO = ("argoproj.io", "v1alpha1")
DELETED = "DELETED"
OURS = (GROUP, VERSION)
#: Watch requests ask the server to end them after this long, and give up after CLIENT_TIMEOUT;
#: a watch that sent nothing for INACTIVITY_TIMEOUT is restarted (the silent freezes).
SERVER_TIMEOUT = 300.0
CLIENT_TIMEOUT = 330.0
INACTIVITY_TIMEOUT = 70.0
#: Any other request of kopf's (the initial listings), and every connect.
REQUEST_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
#: Objects per request of kopf's listings: a page at a time, not 10,000 Workflows at once.
LIST_CHUNK = 500
#: Objects of one kind whose events kopf handles at once, and how long each handler task
#: waits for the object's next event before it ends. kopf reads on while they are busy, up to
#: the limit: without one it holds every listed object's event at once (~90 MB more for 21,000
#: objects). A limit could stall kopf's index readiness (kopf #1243), but none is used.
EVENTS_AT_ONCE = 500
EVENT_IDLE = 0.2
#: When the controller's own listing at start fails, kopf tries its startup again after this.
PRIME_RETRY = 10.0

#: Libraries that log requests at debug level (headers, signing steps): never below INFO.
QUIET_LIBRARIES = ("botocore", "boto3", "urllib3", "kubernetes", "aiohttp")

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class ControllerOptions:
    """What ``backup-gen controller`` was told."""

    #: Namespaces to watch; empty with ``all_namespaces``.
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    settings: Settings = field(default_factory=Settings)
    metrics_port: int | None = None
    liveness_port: int | None = None
    verbose: bool = False


class _NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf builds one (a deep copy of the body) on every event for change
    handlers, and the controller has none."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def registry_for(
    controller: Controller, snapshots: LoopSnapshots | None = None
) -> kopf.OperatorRegistry:
    """kopf's handlers for ``controller``, in a registry of their own; ``snapshots`` (the
    metrics' view of the watched objects) is told the loop while it runs."""
    registry = kopf.OperatorRegistry()
    frozen: list[asyncio.Task[None]] = []

    def event(plural: str, group: tuple[str, str] = OURS, **filters: Any) -> _Decorator:
        decorator: _Decorator = kopf.on.event(*group, plural, registry=registry, **filters)
        return decorator

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False  # kopf's own log lines never become Events
        settings.watching.server_timeout = SERVER_TIMEOUT
        settings.watching.client_timeout = CLIENT_TIMEOUT
        settings.watching.connect_timeout = CONNECT_TIMEOUT
        settings.watching.inactivity_timeout = INACTIVITY_TIMEOUT
        settings.networking.request_timeout = REQUEST_TIMEOUT
        settings.networking.connect_timeout = CONNECT_TIMEOUT
        settings.watching.chunk_size = LIST_CHUNK
        settings.queueing.worker_limit = EVENTS_AT_ONCE
        settings.queueing.idle_timeout = EVENT_IDLE
        settings.persistence.diffbase_storage = _NoDiffBase()
        try:
            await controller.prime()
        except TemporaryKubeError as exc:
            raise kopf.TemporaryError(str(exc), delay=PRIME_RETRY) from None
        controller.start()
        frozen.append(asyncio.create_task(_freeze_when(controller.reconciling)))
        if snapshots is not None:
            snapshots.loop = asyncio.get_running_loop()

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        if snapshots is not None:
            snapshots.loop = None
        for task in frozen:
            task.cancel()
        await controller.stop()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @event("backupruns")
    async def run_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        controller.on_run(body, deleted=type == DELETED)

    @event("backupschedules")
    async def schedule_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        controller.on_schedule(body, deleted=type == DELETED)

    @event("backupstorages")
    async def storage_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        controller.on_storage(body, deleted=type == DELETED)

    @event("workflows", group=ARGO, when=_is_ours)
    async def workflow_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        controller.on_workflow(body, deleted=type == DELETED)

    return registry


def run(options: ControllerOptions, kube: Kube | None = None) -> None:
    """Run the controller until a termination signal (blocking).

    Raises :class:`~generator.controller.kube.KubeConfigError` before anything starts when
    there is neither an in-cluster configuration nor a kubeconfig.
    """
    kube = kube or Kube.from_environment()
    kopf.configure(verbose=options.verbose, log_format=kopf.LogFormat.FULL)
    if not options.verbose:  # not a line per handled event, only kopf's warnings and errors
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    for library in QUIET_LIBRARIES:  # their debug lines show requests; ours name each one
        logging.getLogger(library).setLevel(logging.INFO)
    controller = Controller(kube, options.settings, namespaces=options.namespaces)
    # What the imports made lives as long as the process: out of the cyclic collector's way,
    # whose full passes otherwise walk it every few seconds (pauses of ~0.3 s at 20,000 objects).
    gc.freeze()
    snapshots = LoopSnapshots(lambda: controller.indices)
    if options.metrics_port is not None:
        REGISTRY.register(CatalogueCollector(snapshots))
        start_http_server(options.metrics_port)
    liveness = None
    if options.liveness_port is not None:
        liveness = f"http://0.0.0.0:{options.liveness_port}/healthz"
    where = "all namespaces" if options.all_namespaces else ", ".join(options.namespaces)
    log.info("backup-operator controller for %s at %s", where, kube.host)
    kopf.run(
        registry=registry_for(controller, snapshots),
        standalone=True,
        clusterwide=options.all_namespaces,
        namespaces=list(options.namespaces),
        liveness_endpoint=liveness,
    )


async def _freeze_when(started: asyncio.Event) -> None:
    """Once the start's objects (the cache, kopf's memory of every object) are made, out of
    the cyclic collector's way too: they live as long as the process."""
    await started.wait()
    gc.freeze()


def _is_ours(body: Mapping[str, Any], **_: Any) -> bool:
    """kopf's filter of Workflows: one a run or a schedule of ours is about."""
    return is_our_workflow(body)
