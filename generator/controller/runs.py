"""What to do about one BackupRun: its Workflow, its status, its finalizer, its restore request.

:func:`reconcile_run` is a pure function of the run and the objects it depends on, as the API
server returns them, to a :class:`~generator.controller.plan.Plan`:

- A run created by a user gets its Workflow, named after the run (``<run>-restore`` for a run
  with only a restore action) and owned by it; Create is create-if-absent, so a restart never
  submits it twice. A run recorded by the catalogue (:mod:`generator.controller.catalogue`)
  never gets one: it records a Workflow that Argo spawned.
- ``status.workflow`` is written once the Workflow has been seen; a run whose Workflow was seen
  and is gone before it ended is Failed (``WorkflowMissing``), never left in progress. So the
  caller must pass ``workflow=None`` only when the Workflow really does not exist.
- A storage that is missing, not Ready, or does not allow the run's namespace fails a run that
  has not started, with the storage's reason
  (:func:`~generator.controller.storages.storage_verdict`); one not checked yet is waited for,
  twice the check interval at most. A spec the models refuse fails it too (``InvalidSpec``,
  naming the fields, never their values). A Workflow owned by an earlier run of the same name
  (deleted, not yet collected) is waited for, not mirrored.
- A run being deleted gets no Workflow; one that never started is Failed, so it can go. A
  backup still running is waited for (bounded by its deadline): it may yet store an object.
- ``retainPolicy: Delete``: the run carries :data:`FINALIZER_STORED_OBJECT` while it lives; once
  deleted and final, its stored object is deleted, then the finalizer removed. A run that never
  stored anything just lets go; a failed attempt (``storage_error``) keeps the finalizer and says
  why in the status, and the plan asks to be retried.
- S3 Object Lock: a stored object whose recorded ``retainUntil`` is still ahead is not deleted
  before that date: the finalizer stays, ``StoredObjectDeleted`` is False with reason
  ``Locked`` saying until when, and the plan asks to be reconciled at that time, when the
  object is deleted as any other. A legal hold alone does not hold the deletion back: it has
  no end the controller could see, so deleting the run is taken as the user's word that the
  hold was lifted. A deletion S3 refuses for a lock (a retention longer than recorded, a hold
  still on) is reported with reason ``Locked`` and tried again after
  :data:`LOCKED_RETRY_SECONDS`, not every :data:`DELETE_RETRY_SECONDS`.
- The restore annotation: see :mod:`generator.controller.restores`.
- Restore drills: the newest finished drill of the run sets its ``Verified`` condition, with an
  Event for each new result (:func:`~generator.controller.drills.run_verified`); the phase is
  never touched by a drill.

The order of a plan: finalizer added, objects created, status, Events, annotations, stored
object deleted, finalizer removed. Events follow the status they report, so a status write that
has to be retried posts no Event twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from generator.controller.conditions import Cond, condition, parse_time, rfc3339
from generator.controller.drills import run_verified, verified_events
from generator.controller.names import (
    CONDITION_STORED_OBJECT_DELETED,
    FINALIZER_STORED_OBJECT,
    PHASE_FAILED,
    PHASE_PENDING,
)
from generator.controller.objects import (
    Body,
    is_catalogued,
    meta_of,
    parse_run,
    parse_storage,
    render_options,
    run_workflow_name,
    spec_of,
    spec_problems,
    storage_name,
    workflow_body,
)
from generator.controller.plan import (
    Action,
    AddFinalizer,
    ApplyStatus,
    Create,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Plan,
    RemoveFinalizer,
    ref_of,
)
from generator.controller.progress import (
    Progress,
    Reason,
    is_final,
    owned_status,
    progress_of_status,
    run_events,
    run_status,
)
from generator.controller.restores import handle_restore
from generator.controller.settings import Settings
from generator.controller.storages import storage_verdict
from generator.controller.workflow_status import mirror_workflow
from generator.errors import ValidationFailed
from generator.render import render_run

__all__ = [
    "DELETE_RETRY_SECONDS",
    "LOCKED_RETRY_SECONDS",
    "WAIT_RETRY_SECONDS",
    "reconcile_run",
]

#: How soon a deletion that failed is tried again.
DELETE_RETRY_SECONDS = 30.0
#: How soon a run that waits (for its storage, or for an old Workflow to go) looks again.
WAIT_RETRY_SECONDS = 10.0
#: How soon a deletion S3 refused for an Object Lock is tried again: a lock lasts days.
LOCKED_RETRY_SECONDS = 3600.0
#: The soonest a deletion waiting for a lock to end is tried (S3 keeps whole seconds).
LOCK_END_MIN_SECONDS = 1.0
#: What S3 (AccessDenied) and S3-compatible servers (MinIO: "Object is WORM protected")
#: answer a deletion of a locked object version, as the object store's message quotes it.
_LOCK_REFUSALS = ("AccessDenied", "ObjectLocked", "WORM protected")


@dataclass
class _Step:
    """What one part of a reconcile adds to the plan and the status."""

    progress: Progress
    creates: list[Action] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)


def _failed(reason: str, message: str, now: datetime, workflow: str | None = None) -> Progress:
    return Progress(PHASE_FAILED, reason, message, workflow, completion_time=rfc3339(now))


def _owner_uid(workflow: Mapping[str, Any]) -> str | None:
    for ref in meta_of(workflow).get("ownerReferences") or ():
        if ref.get("kind") == "BackupRun" and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _start(
    run: Mapping[str, Any], storage: Mapping[str, Any] | None, settings: Settings, now: datetime
) -> _Step:
    """A user's run that has no Workflow yet: create it, or say why not."""
    name = run_workflow_name(run)
    try:
        model = parse_run(run)
    except ValidationError as exc:
        return _Step(_failed(Reason.INVALID_SPEC, spec_problems(exc), now))
    namespace = str(meta_of(run).get("namespace", ""))
    verdict = storage_verdict(storage, name=storage_name(run), namespace=namespace)
    if verdict.status == "False":
        return _Step(_failed(verdict.reason, verdict.message, now))
    if verdict.status == "Unknown" or storage is None:
        created = parse_time(meta_of(run).get("creationTimestamp")) or now
        wait = 2 * settings.storage_check_interval + settings.storage_check_timeout
        until = created + timedelta(seconds=wait)
        if now >= until:
            text = f"{verdict.message}, after {wait:g}s of waiting for its check"
            return _Step(_failed(verdict.reason, text, now))
        left = min((until - now).total_seconds(), WAIT_RETRY_SECONDS)
        waiting = Progress(PHASE_PENDING, Reason.WAITING_FOR_STORAGE, verdict.message)
        return _Step(waiting, requeue=[left])
    try:
        objects = render_run(
            model, parse_storage(storage), render_options(settings, storage_name(run))
        )
    except (ValidationError, ValidationFailed) as exc:
        return _Step(_failed(Reason.INVALID_SPEC, spec_problems(exc), now))
    text = f"Workflow {name} submitted"
    return _Step(
        Progress(PHASE_PENDING, Reason.WORKFLOW_CREATED, text),
        creates=[Create(workflow_body(objects[0], run))],
    )


def _advance(
    run: Mapping[str, Any],
    *,
    storage: Mapping[str, Any] | None,
    workflow: Mapping[str, Any] | None,
    settings: Settings,
    now: datetime,
) -> _Step:
    """Where the run's main Workflow stands, and whether to create it."""
    if is_final(run):
        return _Step(progress_of_status(run))
    name = run_workflow_name(run)
    uid = meta_of(run).get("uid")
    catalogued = is_catalogued(run)
    if workflow is not None and not catalogued and _owner_uid(workflow) not in (None, uid):
        text = f"Workflow {name} belongs to an earlier run of this name; waiting for it to go"
        progress = Progress(PHASE_PENDING, Reason.WORKFLOW_OF_PREVIOUS_RUN, text)
        return _Step(progress, requeue=[WAIT_RETRY_SECONDS])
    if workflow is not None:
        progress, requeue = mirror_workflow(workflow, run, settings=settings, now=now)
        return _Step(progress, requeue=[requeue] if requeue is not None else [])
    seen = (run.get("status") or {}).get("workflow")
    if catalogued or seen:
        text = f"Workflow {name} is gone, and it had not finished: its result is unknown"
        return _Step(_failed(Reason.WORKFLOW_MISSING, text, now, name))
    if meta_of(run).get("deletionTimestamp"):
        text = "the run was deleted before its Workflow was seen to start"
        return _Step(_failed(Reason.WORKFLOW_MISSING, text, now))
    return _start(run, storage, settings, now)


@dataclass
class _Release:
    conds: list[Cond] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)


def _locked_release(
    where: str, progress: Progress, storage_error: str | None, now: datetime
) -> _Release | None:
    """Why the stored object is not deleted yet for its Object Lock, or None if the lock is
    no reason (there is none, it has ended, or S3 refused the deletion for something else)."""
    lock = progress.lock
    if lock is None:
        return None
    until = lock.until()
    keep_run = (
        f"remove the finalizer {FINALIZER_STORED_OBJECT} to let the run go now and leave "
        "the object in the bucket"
    )
    if until is not None and now < until:
        text = (
            f"the stored {where} is locked until {lock.retain_until} (S3 Object Lock): it is "
            f"deleted then, and the run goes with it; {keep_run}"
        )
        cond = Cond(CONDITION_STORED_OBJECT_DELETED, "False", Reason.LOCKED, text)
        wait = max((until - now).total_seconds(), LOCK_END_MIN_SECONDS)
        return _Release([cond], requeue=[wait])
    if storage_error is None or not any(mark in storage_error for mark in _LOCK_REFUSALS):
        return None
    recorded = f"it was recorded as {lock.describe()}"
    lift = (
        "lift the hold in S3 (aws s3api put-object-legal-hold --legal-hold Status=OFF)"
        if lock.legal_hold
        else "wait for the lock to end"
    )
    text = (
        f"S3 refused to delete the stored {where}, as it does for a locked object ({recorded}; "
        f"a longer retention or a legal hold may have been set since): {storage_error}; "
        f"retrying every {LOCKED_RETRY_SECONDS:g}s. To delete it, {lift}, or give the "
        f"credentials the permission it needs; or {keep_run}"
    )
    cond = Cond(CONDITION_STORED_OBJECT_DELETED, "False", Reason.LOCKED, text)
    return _Release([cond], requeue=[LOCKED_RETRY_SECONDS])


def _release(
    run: Mapping[str, Any],
    progress: Progress,
    *,
    storage: Mapping[str, Any] | None,
    storage_error: str | None,
    now: datetime,
) -> _Release:
    """A deleted run: delete its stored object (Delete policy), then let it go."""
    ref = ref_of(run)
    if FINALIZER_STORED_OBJECT not in (meta_of(run).get("finalizers") or ()):
        return _Release()
    let_go = RemoveFinalizer(ref, FINALIZER_STORED_OBJECT)
    if spec_of(run).get("retainPolicy") != "Delete":
        return _Release(actions=[let_go])
    if not progress.final:
        return _Release()  # a backup still running may yet store an object: wait for its end
    path = progress.outputs.get("path")
    if not path:
        return _Release(actions=[let_go])
    where = f"object {path} of BackupStorage {storage_name(run)}"
    locked = _locked_release(where, progress, storage_error, now)
    if locked is not None:
        return locked
    if storage_error is not None:
        text = (
            f"could not delete the stored {where}: {storage_error}; retrying every "
            f"{DELETE_RETRY_SECONDS:g}s (remove the finalizer {FINALIZER_STORED_OBJECT} to "
            "keep the object and let the run go)"
        )
        cond = Cond(CONDITION_STORED_OBJECT_DELETED, "False", Reason.DELETE_FAILED, text)
        return _Release([cond], requeue=[DELETE_RETRY_SECONDS])
    if storage is None:
        text = (
            f"cannot delete the stored {where}: the BackupStorage does not exist; recreate it, "
            f"or remove the finalizer {FINALIZER_STORED_OBJECT} to let the run go"
        )
        cond = Cond(CONDITION_STORED_OBJECT_DELETED, "False", Reason.STORAGE_NOT_FOUND, text)
        return _Release([cond], requeue=[DELETE_RETRY_SECONDS])
    return _Release(actions=[DeleteStoredObject(storage_name(run), str(path)), let_go])


def _condition_events(
    ref: ObjectRef, before: Mapping[str, Any], after: Mapping[str, Any], types: tuple[str, ...]
) -> list[EmitEvent]:
    """Warning Events for conditions of ``types`` that newly went False (or changed message)."""
    events = []
    for type_ in types:
        new = condition(after.get("conditions"), type_)
        old = condition(before.get("conditions"), type_)
        if new is None or new.get("status") != "False":
            continue
        if old is not None and (old.get("status"), old.get("message")) == (
            "False",
            new.get("message"),
        ):
            continue
        events.append(EmitEvent(ref, str(new["reason"]), str(new.get("message", "")), "Warning"))
    return events


def reconcile_run(
    run: Body,
    *,
    storage: Body | None,
    workflow: Body | None,
    restore_workflow: Body | None,
    storage_error: str | None,
    settings: Settings,
    now: datetime,
    drills: Sequence[Body] = (),
) -> Plan:
    """The plan for one BackupRun (see the module docstring).

    ``workflow`` is the Workflow named :func:`run_workflow_name`, ``restore_workflow`` the one
    named :func:`~generator.controller.objects.restore_workflow_name` (None when absent);
    ``storage_error`` is why the last deletion of the stored object failed, if it did;
    ``drills`` are the drill Workflows labelled with the run.
    """
    ref = ref_of(run)
    meta = meta_of(run)
    deleting = bool(meta.get("deletionTimestamp"))
    finalizers = meta.get("finalizers") or ()
    delete_policy = spec_of(run).get("retainPolicy") == "Delete"
    first: list[Action] = []
    if not deleting and delete_policy and FINALIZER_STORED_OBJECT not in finalizers:
        first.append(AddFinalizer(ref, FINALIZER_STORED_OBJECT))
    if not deleting and not delete_policy and FINALIZER_STORED_OBJECT in finalizers:
        first.append(RemoveFinalizer(ref, FINALIZER_STORED_OBJECT))
    step = _advance(run, storage=storage, workflow=workflow, settings=settings, now=now)
    restore = handle_restore(
        run,
        step.progress,
        storage=storage,
        restore_workflow=None if deleting else restore_workflow,
        settings=settings,
        now=now,
        deleting=deleting,
    )
    release = (
        _release(run, step.progress, storage=storage, storage_error=storage_error, now=now)
        if deleting
        else _Release()
    )
    before = owned_status(run)
    verified = run_verified(run, drills)
    status = run_status(
        step.progress,
        run,
        now,
        extra=[*restore.conds, *release.conds, *([verified] if verified else [])],
        restored_at=restore.restored_at,
    )
    actions: list[Action] = [*first, *step.creates, *restore.creates]
    if status != before:
        actions.append(ApplyStatus(ref, status))
    actions += run_events(ref, before, status)
    actions += restore.events(ref, before, status)
    actions += verified_events(ref, before, status)
    actions += _condition_events(ref, before, status, (CONDITION_STORED_OBJECT_DELETED,))
    actions += restore.patches(ref)
    actions += release.actions
    delays = [*step.requeue, *restore.requeue, *release.requeue]
    return Plan(tuple(actions), min(delays) if delays else None)
