"""The objects of ``bench/controller.py`` in the loopback API, and what converged means for them.

:func:`build` writes into the emulator's store, before the controller starts: the BackupStorage
of ``argo/examples/mysql.yaml`` (pointed at the benchmark's moto server) and its credentials Secret;
``schedules`` copies of the example BackupSchedule, round-robin over ``namespaces``
namespaces; for each schedule its CronWorkflow and restore WorkflowTemplate as an earlier
release of the controller applied them (same field manager, another image: the controller has
to apply them again), and its share of the ``runs``: one Workflow per day back from today, as
Argo's tick makes it (:func:`tests.controller.argo.cron_child`), the newest Running, one in ten
of the others Failed, the rest Succeeded with outputs (Argo's status, from
:func:`tests.controller.argo.workflow_status`); each with its catalogue record (the BackupRun
of :func:`generator.controller.catalogue.record_body`) whose status was never written, and
each Workflow still held by the catalogue finalizer. So every run needs its status written and
every finished Workflow releasing: the start after the records were made and nothing else was.

The history limits of the schedules are above their run count: rotation deletes nothing, so
what the state converges to is known in advance. Backup deadlines are an hour: no running
Workflow passes its deadline during a benchmark.

:class:`Tracker` says when the store has converged: it listens to every commit of the store
(on the emulator's thread) and re-checks only the object that changed, so checking costs
nothing while nothing changes. Converged, object by object:

- each BackupRun: ``status.phase`` is its Workflow's (Running, Succeeded, Failed),
  ``status.workflow`` names it, and a Succeeded one has its ``sha256``;
- each Workflow that finished: the catalogue finalizer is gone (its end is recorded);
- each BackupSchedule: ``Ready`` True, ``successfulRuns`` and ``failedRuns`` its runs' counts,
  ``active`` as many names as it has running runs; its CronWorkflow and WorkflowTemplate hold
  the spec the controller renders (the current image);
- the BackupStorage: ``Ready`` True (its bucket was checked), ``runs`` the Succeeded count.

It also times each Workflow flipped by :meth:`Tracker.flip`: from the commit of the new phase to
the commit of the run's status that shows it. :class:`RequestCounter` counts the requests the
emulator serves, by verb and resource.

Not played: Argo's own history limits (it would delete finished Workflows once released) and
ticks of the CronWorkflows; the Workflows stay, so the controller watches all 10,000.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import yaml

from generator.controller.catalogue import record_body
from generator.controller.names import FIELD_MANAGER, FINALIZER_CATALOGUE
from generator.controller.objects import parse_storage
from generator.controller.schedules import schedule_objects
from generator.controller.settings import Settings
from generator.models import BackupSchedule, BackupScheduleSpec, ObjectMeta
from tests.controller.argo import cron_child, workflow_status
from tests.controller.kubeapi import KubeApi
from tests.controller.process import source_secret
from tests.controller.store import Store
from tests.controller.watchlog import Change

__all__ = ["Layout", "RequestCounter", "Tracker", "build"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "argo" / "examples" / "mysql.yaml"
RUNS = kmock.resource("backup-operator.io", "v1", "backupruns")
SCHEDULES = kmock.resource("backup-operator.io", "v1", "backupschedules")
STORAGES = kmock.resource("backup-operator.io", "v1", "backupstorages")
WORKFLOWS = kmock.resource("argoproj.io", "v1alpha1", "workflows")
CRONS = kmock.resource("argoproj.io", "v1alpha1", "cronworkflows")
TEMPLATES = kmock.resource("argoproj.io", "v1alpha1", "workflowtemplates")
SECRETS = kmock.resource("", "v1", "secrets")
#: The image the earlier release rendered; the controller renders its default one.
PREVIOUS_IMAGE = "ghcr.io/backup-operator/backup-operator:previous"
DEADLINE_SECONDS = 3600
FAILED_EVERY = 10
LABEL_PHASE = "workflows.argoproj.io/phase"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
FINISHED = ("Succeeded", "Failed", "Error")

Body = dict[str, Any]
#: (namespace, name)
Where = tuple[str, str]


@dataclass(frozen=True)
class Layout:
    schedules: int
    runs: int
    namespaces: int


def _outputs(bucket: str, endpoint: str, name: str) -> dict[str, str]:
    key = f"backups/{name}.sql.gz"
    return {
        "path": f"s3://{bucket}/{key}",
        "url": f"{endpoint}/{bucket}/{key}",
        "size": "1.0 KiB",
        "sizeInBytes": "1024",
        "sha256": hashlib.sha256(name.encode()).hexdigest(),
        "compressed": "true",
        "encrypted": "false",
    }


def _schedule(example: Body, index: int, namespace: str, per_schedule: int) -> Body:
    body = copy.deepcopy(example)
    body["metadata"] = {"name": f"s{index:05d}", "namespace": namespace}
    body["spec"]["successfulRunsHistoryLimit"] = per_schedule + 1
    body["spec"]["failedRunsHistoryLimit"] = per_schedule + 1
    for action in ("backup", "restore"):
        body["spec"]["template"]["spec"][action]["deadlineSeconds"] = DEADLINE_SECONDS
    return body


def _rendered(schedule: Body, storage: Body, settings: Settings) -> list[Body]:
    model = BackupSchedule(
        metadata=ObjectMeta.model_validate(schedule["metadata"]),
        spec=BackupScheduleSpec.model_validate(schedule["spec"]),
    )
    return schedule_objects(schedule, model, parse_storage(storage), settings)


@dataclass
class Tracker:
    """What the store must converge to, and whether it has (see the module docstring).

    Every method runs on the emulator's event loop (a store listener, or through
    :meth:`KubeApi.call`), so nothing here needs a lock.
    """

    store: Store
    #: The phase each run's Workflow is in.
    phases: dict[Where, str] = field(default_factory=dict)
    #: The runs of each schedule.
    runs_of: dict[Where, list[str]] = field(default_factory=dict)
    #: The spec of each CronWorkflow and WorkflowTemplate, as the controller renders them.
    specs: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    storage: str = "minio"
    #: The objects not converged: (plural, namespace, name).
    bad: set[tuple[str, str, str]] = field(default_factory=set)
    converged_at: float | None = None
    changes: int = 0
    #: Flipped Workflows: when the new phase was committed, and when the run showed it.
    flipped_at: dict[Where, float] = field(default_factory=dict)
    shown_at: dict[Where, float] = field(default_factory=dict)
    counting: set[Where] = field(default_factory=set)
    #: Objects deleted while tracked (none should be: the benchmark deletes nothing).
    deleted: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    # -- expectations ------------------------------------------------------------------------

    def counts(self, where: Where) -> tuple[int, int, int]:
        """(succeeded, failed, running) runs of the schedule ``where``."""
        phases = [self.phases[(where[0], run)] for run in self.runs_of[where]]
        return (
            phases.count("Succeeded"),
            sum(p in ("Failed", "Error") for p in phases),
            sum(p not in FINISHED for p in phases),
        )

    def succeeded(self) -> int:
        return sum(phase == "Succeeded" for phase in self.phases.values())

    # -- checks ------------------------------------------------------------------------------

    def _ok(self, plural: str, namespace: str, name: str, body: Body | None) -> bool:
        if body is None:
            return False
        status = body.get("status") or {}
        if plural == "backupruns":
            want = self.phases.get((namespace, name))
            return (
                status.get("phase") == want
                and status.get("workflow") == name
                and (want != "Succeeded" or bool(status.get("sha256")))
            )
        if plural == "workflows":
            want = self.phases.get((namespace, name))
            held = FINALIZER_CATALOGUE in (body["metadata"].get("finalizers") or ())
            return want not in FINISHED or not held
        if plural == "backupschedules":
            succeeded, failed, running = self.counts((namespace, name))
            return (
                _ready(status)
                and status.get("successfulRuns") == succeeded
                and status.get("failedRuns") == failed
                and len(status.get("active") or ()) == min(running, 32)
            )
        if plural in ("cronworkflows", "workflowtemplates"):
            return bool(body.get("spec") == self.specs.get((plural, namespace, name)))
        if plural == "backupstorages":
            return _ready(status) and status.get("runs") == self.succeeded()
        return True

    def check(self, plural: str, namespace: str, name: str) -> None:
        """Check one object as it is stored now."""
        resource = _RESOURCES[plural]
        body = self.store._live[resource].get((namespace or None, name))
        self._judge(plural, namespace, name, body)

    def _judge(self, plural: str, namespace: str, name: str, body: Body | None) -> None:
        key = (plural, namespace, name)
        if self._ok(plural, namespace, name, body):
            self.bad.discard(key)
            if not self.bad and self.converged_at is None:
                self.converged_at = time.monotonic()
        else:
            self.bad.add(key)
            self.converged_at = None
        if plural == "backupruns" and (namespace, name) in self.counting:
            phase = (body or {}).get("status", {}).get("phase")
            if phase == self.phases.get((namespace, name)):
                self.shown_at[(namespace, name)] = time.monotonic()
                self.counting.discard((namespace, name))

    def listen(self, change: Change) -> None:
        """A store listener: re-check the object of every commit."""
        try:
            self.changes += 1
            plural = str(change.resource.plural)
            if plural not in _RESOURCES:
                return
            meta = change.obj.get("metadata") or {}
            namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
            if change.type == "DELETED":
                self.deleted.append((plural, namespace, name))
            body = None if change.type == "DELETED" else change.obj
            if plural == "workflows" and (namespace, name) in self.counting:
                phase = (change.obj.get("status") or {}).get("phase")
                if phase == self.phases.get((namespace, name)):
                    self.flipped_at.setdefault((namespace, name), time.monotonic())
            self._judge(plural, namespace, name, body)
        except Exception as exc:  # never let the benchmark break the server's commit
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def check_all(self) -> None:
        for plural, resource in _RESOURCES.items():
            for (namespace, name), body in list(self.store._live[resource].items()):
                if plural in ("backupstorages", "backupruns", "backupschedules", "workflows") or (
                    (plural, namespace or "", name) in self.specs
                ):
                    self._judge(plural, namespace or "", name, body)

    # -- Argo's part -------------------------------------------------------------------------

    def flip(self, where: Where, phase: str, outputs: dict[str, str], *, timed: bool) -> None:
        """Finish the Workflow ``where`` in ``phase`` as Argo does (a PUT of the whole
        object); ``timed``: measure how long until its run shows it."""
        namespace, name = where
        self.phases[where] = phase
        if timed:
            self.counting.add(where)
        current = copy.deepcopy(self.store.get(WORKFLOWS, namespace, name))
        started = datetime.fromisoformat(current["status"]["startedAt"].replace("Z", "+00:00"))
        finished = datetime.now(UTC)
        current["status"] = workflow_status(
            current,
            phase=phase,
            outputs=outputs if phase == "Succeeded" else None,
            started=started,
            finished=finished,
            message=None if phase == "Succeeded" else "Error (exit code 1)",
        )
        current["metadata"]["labels"].update({LABEL_PHASE: phase, LABEL_COMPLETED: "true"})
        self.store.replace(WORKFLOWS, namespace, name, current)
        schedule = current["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"]
        self.check("backupruns", namespace, name)
        self.check("backupschedules", namespace, schedule)
        self.check("backupstorages", "", self.storage)

    def latencies(self) -> list[float]:
        return sorted(
            self.shown_at[where] - self.flipped_at[where]
            for where in self.shown_at
            if where in self.flipped_at
        )


_RESOURCES = {
    "backupruns": RUNS,
    "backupschedules": SCHEDULES,
    "backupstorages": STORAGES,
    "workflows": WORKFLOWS,
    "cronworkflows": CRONS,
    "workflowtemplates": TEMPLATES,
}


class RequestCounter:
    """Counts the requests the emulator serves, by verb, resource and subresource (watches
    apart): what the controller asks, to tell where the time goes."""

    def __init__(self, api: KubeApi) -> None:
        self.counts: Counter[str] = Counter()
        # The emulator is a slotted attrs class: its method is wrapped on the class (this
        # process has no other emulator).
        emulator = type(api.emulator)
        serve = emulator._emulate
        counts = self.counts

        async def counted(self: Any, request: Any) -> Any:
            resource = request.resource
            plural = resource.plural if resource is not None else None
            verb = str(request.method.value).upper()
            if verb == "GET" and request.params.get("watch") in ("true", "1"):
                verb = "WATCH"
            elif verb == "GET" and request.name is None:
                verb = "LIST"
            sub = f"/{request.subresource}" if request.subresource else ""
            counts[f"{verb} {plural or request.url.path}{sub}"] += 1
            return await serve(self, request)

        emulator._emulate = counted  # type: ignore[method-assign]

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)


def _ready(status: Body) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


@dataclass
class World:
    tracker: Tracker
    #: The running Workflows, in the order they are flipped.
    running: list[Where]
    outputs: Callable[[str], dict[str, str]]


def build(
    api: KubeApi, layout: Layout, *, endpoint: str, bucket: str, keys: tuple[str, str]
) -> World:
    """Write the objects (see the module docstring); the tracker, listening."""
    storage_doc, example = yaml.safe_load_all(EXAMPLES.read_text())
    storage_doc["spec"]["parameters"].update(endpoint=endpoint, bucket=bucket)
    per_schedule = max(1, layout.runs // layout.schedules)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    started = datetime.now(UTC)
    previous = Settings(image=PREVIOUS_IMAGE)
    current = Settings()
    store = api.emulator.store
    tracker = Tracker(store, storage=storage_doc["metadata"]["name"])
    running: list[Where] = []

    def outputs(name: str) -> dict[str, str]:
        return _outputs(bucket, endpoint, name)

    def write() -> None:
        store.create(SECRETS, "minio", source_secret(*keys))
        storage = store.create(STORAGES, None, storage_doc)
        made = 0
        for index in range(layout.schedules):
            namespace = f"bench-{index % layout.namespaces}"
            count = per_schedule + (
                1 if index < layout.runs - per_schedule * layout.schedules else 0
            )
            schedule = store.create(
                SCHEDULES, namespace, _schedule(example, index, namespace, count)
            )
            name = schedule["metadata"]["name"]
            for old, new in zip(
                _rendered(schedule, storage, previous),
                _rendered(schedule, storage, current),
                strict=True,
            ):
                resource = CRONS if old["kind"] == "CronWorkflow" else TEMPLATES
                plural = str(resource.plural)
                store.patch(
                    resource, namespace, old["metadata"]["name"], old,
                    patch_type="apply", manager=FIELD_MANAGER,
                )  # fmt: skip
                tracker.specs[(plural, namespace, old["metadata"]["name"])] = new["spec"]
            cron = store.get(CRONS, namespace, name)
            runs = tracker.runs_of.setdefault((namespace, name), [])
            for day in range(count):
                if made >= layout.runs:
                    break
                made += 1
                scheduled = today - timedelta(days=day)
                workflow = cron_child(cron, scheduled)
                run_name = workflow["metadata"]["name"]
                if day == 0:
                    phase, begun, ended = "Running", started, None
                    running.append((namespace, run_name))
                else:
                    phase = "Failed" if day % FAILED_EVERY == FAILED_EVERY // 2 else "Succeeded"
                    begun, ended = scheduled, scheduled + timedelta(minutes=2)
                workflow["status"] = workflow_status(
                    workflow,
                    phase=phase,
                    outputs=outputs(run_name) if phase == "Succeeded" else None,
                    started=begun,
                    finished=ended,
                    message=None if phase != "Failed" else "Error (exit code 1)",
                )
                workflow["metadata"]["labels"].update(
                    {LABEL_PHASE: phase, LABEL_COMPLETED: str(phase in FINISHED).lower()}
                )
                created = store.create(WORKFLOWS, namespace, workflow)
                store.create(RUNS, namespace, record_body(created, schedule))
                tracker.phases[(namespace, run_name)] = phase
                runs.append(run_name)
        tracker.check_all()
        store.listeners.append(tracker.listen)

    api.call(write, copied=False)
    return World(tracker, running, outputs)
