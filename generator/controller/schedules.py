"""What a BackupSchedule needs: its Argo objects, its status, rotation and the trigger.

:func:`reconcile_schedule` is a pure function of the schedule, its storage and its runs (the
BackupRuns labelled with it). In plan order it:

1. applies the CronWorkflow and the restore WorkflowTemplate, rendered for the controller (the
   catalogue finalizer in ``workflowMetadata``; Workflows read the storage's credentials copy),
   owned by the schedule so that deleting it cascades. Apply is whole-object, so an edit of the
   schedule reaches them. A storage that does not allow the namespace (``allowedNamespaces``)
   leaves the CronWorkflow suspended; a missing one leaves it as it was (nothing to render);
2. handles the ``backup-operator.io/trigger`` annotation (:mod:`generator.controller.triggers`).
   While the storage cannot be used (not found, not allowed, not Ready, not checked yet) the
   trigger waits, and the schedule is reconciled again after :data:`TRIGGER_RECHECK_SECONDS`;
3. rotates the finished runs (:func:`generator.controller.rotation.rotate`): each run to go is
   deleted (a ``retainPolicy: Delete`` run's finalizer deletes its stored object first), then
   one ``Rotated`` Event names them. A run kept only for its Object Lock goes once the lock
   ends: the plan asks to be reconciled again at the earliest such ``retainUntil``;
4. submits the restore drill that is due, and deletes old drills
   (:mod:`generator.controller.drills`);
5. writes the status when it changed: ``successfulRuns``, ``failedRuns``, ``active`` (the
   newest :data:`~generator.models.MAX_ACTIVE_RUNS` runs in progress, oldest first),
   ``lastScheduleTime``, ``lastSuccessfulTime`` (neither moves back when rotation deletes runs)
   ``lastVerifiedTime``, ``lastVerifiedRun``, ``lastVerifyScheduleTime`` (the drills') and
   ``Ready``, with an Event when ``Ready`` changes status or reason.

Events come after the change they tell of: a restart in between loses one, never doubles it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from generator.controller.conditions import Cond, condition, merge_conditions, parse_time, rfc3339
from generator.controller.drills import schedule_drills
from generator.controller.names import (
    ANNOTATION_SCHEDULED_TIME,
    CONDITION_READY,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    PHASE_SUCCEEDED,
    copied_secret_name,
)
from generator.controller.objects import parse_storage, spec_problems
from generator.controller.plan import (
    Action,
    Apply,
    ApplyStatus,
    Body,
    Delete,
    EmitEvent,
    ObjectRef,
    Plan,
)
from generator.controller.rotation import Outcome, RotationPolicy, RunRecord, rotate
from generator.controller.settings import Settings
from generator.controller.storages import (
    REASON_STORAGE_NOT_ALLOWED,
    REASON_STORAGE_NOT_FOUND,
    StorageVerdict,
    storage_verdict,
)
from generator.controller.triggers import handle_trigger
from generator.errors import GeneratorError, ValidationFailed
from generator.models import (
    ANNOTATION_KEEP,
    API_VERSION,
    LABEL_SCHEDULE,
    MAX_ACTIVE_RUNS,
    BackupRun,
    BackupSchedule,
    BackupScheduleSpec,
    BackupStorage,
    ObjectMeta,
)
from generator.render import RenderOptions, render_schedule

__all__ = [
    "LOCK_RECHECK_MIN_SECONDS",
    "MAX_NAMED_RUNS",
    "TRIGGER_RECHECK_SECONDS",
    "owner_reference",
    "reconcile_schedule",
    "schedule_objects",
]

#: How soon a schedule whose trigger waits for its storage is looked at again.
TRIGGER_RECHECK_SECONDS = 60.0
#: The soonest a schedule is rotated again for a lock that ends (S3 keeps whole seconds).
LOCK_RECHECK_MIN_SECONDS = 1.0

#: How many runs a Rotated Event names; the rest are counted.
MAX_NAMED_RUNS = 10
#: The time of a run that has none recorded: the oldest (as rotation has it).
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def owner_reference(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """The owner reference to a schedule of every object made for it."""
    meta = schedule.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": BackupSchedule.kind,
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def schedule_objects(
    schedule: Mapping[str, Any], model: BackupSchedule, storage: BackupStorage, settings: Settings
) -> list[Body]:
    """The CronWorkflow (first) and restore WorkflowTemplate of a schedule, as applied."""
    options = RenderOptions(
        image=settings.image,
        service_account=settings.service_account,
        catalogue=True,
        credentials_secret=copied_secret_name(storage.metadata.name),
    )
    # generator.generate.argo_dict's dump: the controller's layer does not import generate.
    objects = [
        obj.model_dump(by_alias=True, exclude_none=True, mode="json")
        for obj in render_schedule(model, storage, options)
    ]
    for obj in objects:
        meta = obj["metadata"]
        meta["labels"] = {**meta.get("labels", {}), LABEL_MANAGED_BY: MANAGED_BY}
        meta["ownerReferences"] = [owner_reference(schedule)]
    return objects


def _record(run: Mapping[str, Any]) -> RunRecord:
    """Rotation's view of a BackupRun, read from the dict (see :meth:`RunRecord.of`)."""
    meta = run.get("metadata") or {}
    status = run.get("status") or {}
    started = parse_time(status.get("startTime")) or parse_time(meta.get("creationTimestamp"))
    pin = (meta.get("annotations") or {}).get(ANNOTATION_KEEP)
    return RunRecord(
        name=str(meta.get("name", "")),
        outcome=Outcome.of_phase(status.get("phase")),
        started_at=started or _NO_TIME,
        keep=isinstance(pin, str) and pin.strip().lower() != "false",
        retain_until=parse_time(status.get("retainUntil")),
        legal_hold=status.get("legalHold") is True,
    )


def _run_ref(run: Mapping[str, Any]) -> ObjectRef:
    meta = run.get("metadata") or {}
    return ObjectRef(
        API_VERSION, BackupRun.kind, str(meta["name"]), meta.get("namespace"), meta.get("uid")
    )


def _scheduled_at(run: Mapping[str, Any]) -> datetime | None:
    meta = run.get("metadata") or {}
    status = run.get("status") or {}
    return (
        parse_time((meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME))
        or parse_time(status.get("startTime"))
        or parse_time(meta.get("creationTimestamp"))
    )


def _succeeded_at(run: Mapping[str, Any]) -> datetime | None:
    status = run.get("status") or {}
    return parse_time(status.get("completionTime")) or parse_time(status.get("startTime"))


def _newest(previous: object, times: Sequence[datetime | None]) -> str | None:
    known = [t for t in (parse_time(previous), *times) if t is not None]
    return rfc3339(max(known)) if known else None


def _named(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED_RUNS])
    rest = len(names) - MAX_NAMED_RUNS
    return f"{shown} and {rest} more" if rest > 0 else shown


def _ready_event(ref: ObjectRef, previous: object, ready: Cond) -> list[EmitEvent]:
    before = condition(previous, CONDITION_READY)
    if before is not None and (before.get("status"), before.get("reason")) == (
        ready.status,
        ready.reason,
    ):
        return []
    if ready.status == "Unknown":
        return []
    kind: Literal["Normal", "Warning"] = "Normal" if ready.status == "True" else "Warning"
    return [
        EmitEvent(ref, "Ready" if ready.status == "True" else ready.reason, ready.message, kind)
    ]


def _rotation(
    schedule: Mapping[str, Any], policy: RotationPolicy, runs: Sequence[Body], now: datetime
) -> tuple[tuple[Action, ...], float | None]:
    """The runs rotation deletes, one Event naming them, and in how many seconds a run kept
    only for its Object Lock is free to go (rotate again then)."""
    rotation = rotate((_record(run) for run in runs), policy, now=now)
    recheck = None
    if rotation.recheck_at is not None:
        recheck = max((rotation.recheck_at - now).total_seconds(), LOCK_RECHECK_MIN_SECONDS)
    if not rotation.delete:
        return (), recheck
    by_name = {str(run["metadata"]["name"]): run for run in runs}
    count = len(rotation.delete)
    message = (
        f"deleted {count} finished run{'s' * (count != 1)} beyond the schedule's history "
        f"rules: {_named(rotation.delete)}"
    )
    deletes: tuple[Action, ...] = (
        *(Delete(_run_ref(by_name[name])) for name in rotation.delete),
        EmitEvent(_schedule_ref(schedule), "Rotated", message),
    )
    return deletes, recheck


def _ready(
    model: BackupSchedule, verdict: StorageVerdict, problem: str | None, waiting: bool
) -> Cond:
    if problem is not None:
        return Cond(CONDITION_READY, "False", "InvalidSpec", problem)
    if verdict.ok:
        text = f"CronWorkflow {model.metadata.name} is applied"
        return Cond(
            CONDITION_READY,
            "True",
            "Scheduled",
            text + (", suspended" if model.spec.suspend else ""),
        )
    text = verdict.message
    if verdict.reason == REASON_STORAGE_NOT_ALLOWED:
        text += "; the CronWorkflow is suspended until then"
    if waiting:
        text += "; the trigger annotation waits until the storage can be used"
    return Cond(CONDITION_READY, verdict.status, verdict.reason, text)


def _status(previous: Mapping[str, Any], ready: Cond, runs: Sequence[Body], now: datetime) -> Body:
    records = sorted((_record(run) for run in runs), key=lambda r: (r.started_at, r.name))
    active = [r.name for r in records if r.outcome is Outcome.IN_PROGRESS][-MAX_ACTIVE_RUNS:]
    succeeded = [run for run in runs if (run.get("status") or {}).get("phase") == PHASE_SUCCEEDED]
    status: Body = {
        "conditions": merge_conditions(previous.get("conditions"), [ready], now),
        "successfulRuns": len(succeeded),
        "failedRuns": sum(r.outcome is Outcome.FAILED for r in records),
    }
    if active:
        status["active"] = active
    scheduled = _newest(previous.get("lastScheduleTime"), [_scheduled_at(r) for r in runs])
    if scheduled is not None:
        status["lastScheduleTime"] = scheduled
    success = _newest(previous.get("lastSuccessfulTime"), [_succeeded_at(r) for r in succeeded])
    if success is not None:
        status["lastSuccessfulTime"] = success
    return status


def _schedule_ref(schedule: Mapping[str, Any]) -> ObjectRef:
    meta = schedule.get("metadata") or {}
    return ObjectRef(
        API_VERSION,
        BackupSchedule.kind,
        str(meta.get("name", "")),
        meta.get("namespace"),
        meta.get("uid"),
    )


def _of_schedule(runs: Sequence[Body], name: str, namespace: str) -> list[Body]:
    """The runs of the schedule that are not being deleted."""
    mine = []
    for run in runs:
        meta = run.get("metadata") or {}
        if (
            meta.get("namespace") == namespace
            and (meta.get("labels") or {}).get(LABEL_SCHEDULE) == name
            and not meta.get("deletionTimestamp")
        ):
            mine.append(run)
    return mine


def reconcile_schedule(
    schedule: Body,
    *,
    storage: Body | None,
    runs: Sequence[Body],
    settings: Settings,
    now: datetime,
    drills: Sequence[Body] = (),
) -> Plan:
    """The plan for one BackupSchedule (see the module docstring for what and in which order).

    ``storage`` is the BackupStorage its template names (None: absent); ``runs`` its
    BackupRuns (others, and runs being deleted, are ignored); ``drills`` the Workflows
    labelled as its drills.
    """
    meta = schedule.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Plan()  # its objects are owned by it: the garbage collector takes them
    ref = _schedule_ref(schedule)
    namespace = ref.namespace or ""
    previous: Mapping[str, Any] = schedule.get("status") or {}
    try:
        model = BackupSchedule(
            metadata=ObjectMeta.model_validate(meta),
            spec=BackupScheduleSpec.model_validate(schedule.get("spec") or {}),
        )
    except ValidationError as exc:
        ready = Cond(CONDITION_READY, "False", "InvalidSpec", spec_problems(exc))
        status = {
            **previous,
            "conditions": merge_conditions(previous.get("conditions"), [ready], now),
        }
        return Plan(
            (ApplyStatus(ref, status), *_ready_event(ref, previous.get("conditions"), ready))
        )

    actions: list[Action] = []
    storage_name = model.spec.template.spec.storage.name
    verdict = storage_verdict(storage, name=storage_name, namespace=namespace)
    problem: str | None = None
    cron: Body | None = None
    if storage is not None and verdict.reason != REASON_STORAGE_NOT_FOUND:
        rendered = model
        if verdict.reason == REASON_STORAGE_NOT_ALLOWED:
            suspended = model.spec.model_copy(update={"suspend": True})
            rendered = model.model_copy(update={"spec": suspended})
        try:
            objects = schedule_objects(schedule, rendered, parse_storage(storage), settings)
        except ValidationError as exc:
            problem = f"BackupStorage {storage_name} is invalid: {spec_problems(exc)}"
        except GeneratorError as exc:
            problem = f"the schedule cannot be rendered: {exc}"
        else:
            cron = objects[0]
            actions += [Apply(obj) for obj in objects]

    trigger = handle_trigger(
        schedule,
        ref=ref,
        cron=cron if verdict.ok and problem is None else None,
        owner=owner_reference(schedule),
        suspended=model.spec.suspend,
        now=now,
    )
    actions += trigger.actions

    mine = _of_schedule(runs, ref.name, namespace)
    delays = [TRIGGER_RECHECK_SECONDS] if trigger.waiting else []
    try:
        policy = RotationPolicy.of(model)
    except ValidationFailed as exc:
        problem = problem or spec_problems(exc)
    else:
        rotated, recheck = _rotation(schedule, policy, mine, now)
        if recheck is not None:
            delays.append(recheck)
        actions += rotated
        gone = {a.ref.name for a in rotated if isinstance(a, Delete)}
        mine = [run for run in mine if run["metadata"]["name"] not in gone]

    drill = schedule_drills(
        schedule,
        model,
        runs=mine,
        drills=drills,
        storage=storage,
        storage_ok=verdict.ok and problem is None,
        settings=settings,
        now=now,
    )
    actions += drill.actions
    if drill.requeue_after is not None:
        delays.append(drill.requeue_after)

    ready = _ready(model, verdict, problem, trigger.waiting)
    status = {**_status(previous, ready, mine, now), **drill.status}
    if status != {key: previous[key] for key in _STATUS_KEYS if key in previous}:
        actions.append(ApplyStatus(ref, status))
    actions += _ready_event(ref, previous.get("conditions"), ready)
    actions += drill.events
    return Plan(tuple(actions), min(delays, default=None))


_STATUS_KEYS = (
    "conditions",
    "successfulRuns",
    "failedRuns",
    "active",
    "lastScheduleTime",
    "lastSuccessfulTime",
    "lastVerifiedTime",
    "lastVerifiedRun",
    "lastVerifyScheduleTime",
)
