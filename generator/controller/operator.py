"""kopf's part of the controller: watch, index, and tell the reconcile loop what changed.

kopf (standalone: one replica) lists and watches BackupStorages, BackupSchedules, BackupRuns
and the Workflows that are ours, keeps them in indexes (``kopf.index``) and calls one
``on.event`` handler per kind, which only tells :class:`~generator.controller.reconciler.
Controller` what changed; the controller's workers and periodic task are started on startup and
stopped on cleanup. Nothing else of kopf is used, on purpose: change handlers
(``on.create``/``on.update``/``on.field``) keep the last handled body in an annotation, timers
and daemons put a finalizer on every object they match, and ``on.event`` errors are never
retried (the controller's queue retries). No handler of any kind is registered for Secrets.

The only module of the generator that imports kopf (an import-linter contract says so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import REGISTRY, start_http_server

from generator.controller.kube import Kube, KubeConfigError
from generator.controller.metrics import CatalogueCollector, LoopSnapshots
from generator.controller.names import LABEL_CRON_WORKFLOW, LABEL_RESTORE_OF
from generator.controller.reconciler import INDEXES, Controller
from generator.controller.settings import Settings
from generator.controller.storages import storage_name_of
from generator.models import GROUP, LABEL_RUN, LABEL_SCHEDULE, VERSION

__all__ = ["ControllerOptions", "KubeConfigError", "registry_for", "run"]

log = logging.getLogger(__name__)

ARGO = ("argoproj.io", "v1alpha1")
OURS = (GROUP, VERSION)
#: Watch requests ask the server to end them after this long, and give up after CLIENT_TIMEOUT;
#: a watch that sent nothing for INACTIVITY_TIMEOUT is restarted (the silent freezes).
SERVER_TIMEOUT = 300.0
CLIENT_TIMEOUT = 330.0
INACTIVITY_TIMEOUT = 70.0
#: Any other request of kopf's (the initial listings), and every connect.
REQUEST_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

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


def registry_for(
    controller: Controller, snapshots: LoopSnapshots | None = None
) -> kopf.OperatorRegistry:
    """kopf's handlers and indexes for ``controller``, in a registry of their own;
    ``snapshots`` (the metrics' view of the indexes) is told the loop while it runs."""
    registry = kopf.OperatorRegistry()

    def index(plural: str, name: str, group: tuple[str, str] = OURS, **filters: Any) -> _Decorator:
        decorator: _Decorator = kopf.index(*group, plural, id=name, registry=registry, **filters)
        return decorator

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
        controller.start({name: kwargs[name] for name in INDEXES})
        if snapshots is not None:
            snapshots.loop = asyncio.get_running_loop()

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        if snapshots is not None:
            snapshots.loop = None
        await controller.stop()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @index("backupruns", "runs")
    def runs(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
        return {(namespace, name): _slim(body)}

    @index("backupruns", "runs_by_schedule")
    def runs_by_schedule(labels: kopf.Labels, namespace: str, name: str, **_: Any) -> Any:
        schedule = labels.get(LABEL_SCHEDULE)
        return {(namespace, schedule): (namespace, name)} if schedule else None

    @index("backupruns", "runs_by_storage")
    def runs_by_storage(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
        storage = storage_name_of(body)
        return {storage: (namespace, name)} if storage else None

    @index("backupschedules", "schedules")
    def schedules(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
        return {(namespace, name): _slim(body)}

    @index("backupschedules", "schedules_by_storage")
    def schedules_by_storage(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
        storage = storage_name_of(body)
        return {storage: (namespace, name)} if storage else None

    @index("backupstorages", "storages")
    def storages(body: kopf.Body, name: str, **_: Any) -> Any:
        return {name: _slim(body)}

    @index("workflows", "workflows", group=ARGO, when=_is_ours)
    def workflows(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
        return {(namespace, name): _slim(body)}

    @event("backupruns")
    async def run_changed(body: kopf.Body, **_: Any) -> None:
        controller.on_run(body)

    @event("backupschedules")
    async def schedule_changed(body: kopf.Body, **_: Any) -> None:
        controller.on_schedule(body)

    @event("backupstorages")
    async def storage_changed(body: kopf.Body, **_: Any) -> None:
        controller.on_storage(body)

    @event("workflows", group=ARGO, when=_is_ours)
    async def workflow_changed(body: kopf.Body, **_: Any) -> None:
        controller.on_workflow(body)

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
    controller = Controller(kube, options.settings)
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


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an index keeps of an object: all but the bookkeeping no reconcile reads."""
    meta = {k: v for k, v in _meta(body).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**body, "metadata": meta}


def _is_ours(body: Mapping[str, Any], **_: Any) -> bool:
    """A Workflow that a run or a schedule of ours is about."""
    meta = _meta(body)
    labels = meta.get("labels") or {}
    if labels.keys() & {LABEL_CRON_WORKFLOW, LABEL_RUN, LABEL_RESTORE_OF}:
        return True
    return any(owner.get("kind") == "BackupRun" for owner in meta.get("ownerReferences") or ())
