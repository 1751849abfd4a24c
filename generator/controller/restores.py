"""The ``backup-operator.io/restore`` annotation of a BackupRun: one restore per request.

A request is handled once, even across restarts, because everything about it is named
deterministically: its Workflow is ``<run>-restore-<hash>``
(:func:`~generator.controller.objects.restore_workflow_name`), created if absent, and only
when it has ended is the annotation cleared, in the same patch that records the request as
handled (``backup-operator.io/last-restore``, which makes the next request with the same value
name a new Workflow). A success also sets ``backup-operator.io/restored-at``, ``status.restoredAt``
and the ``Restored`` condition; a failure, or a request that cannot be carried out (no restore
action, nothing stored, the storage not Ready), a False ``Restored`` condition and a Warning.

A request on a run still in progress waits for the run to end; it is not refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from generator.controller.conditions import Cond, condition, parse_time, rfc3339
from generator.controller.names import (
    ANNOTATION_LAST_RESTORE,
    COMPLETED,
    CONDITION_RESTORED,
    LABEL_RESTORE_OF,
    PHASE_SUCCEEDED,
)
from generator.controller.objects import (
    meta_of,
    parse_run,
    parse_storage,
    render_options,
    restore_workflow_name,
    spec_of,
    spec_problems,
    storage_name,
    workflow_body,
)
from generator.controller.plan import Action, Create, EmitEvent, ObjectRef, Patch
from generator.controller.progress import Progress, Reason
from generator.controller.settings import Settings
from generator.controller.storages import storage_verdict
from generator.errors import ValidationFailed
from generator.models import ANNOTATION_RESTORE, ANNOTATION_RESTORED_AT
from generator.render import render_run

__all__ = ["RestoreStep", "handle_restore"]

#: How soon a restore request waiting for its storage's first check looks again.
STORAGE_WAIT_SECONDS = 30.0


@dataclass
class RestoreStep:
    """What a restore request adds to a run's plan and status."""

    conds: list[Cond] = field(default_factory=list)
    creates: list[Action] = field(default_factory=list)
    restored_at: str | None = None
    #: Annotations to set (None removes), once the request has been handled.
    annotations: dict[str, str | None] = field(default_factory=dict)
    requeue: list[float] = field(default_factory=list)

    def events(
        self, ref: ObjectRef, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> list[EmitEvent]:
        """An Event when the ``Restored`` condition ends up somewhere new."""
        new = condition(after.get("conditions"), CONDITION_RESTORED)
        if new is None or new.get("status") == "Unknown":
            return []
        old = condition(before.get("conditions"), CONDITION_RESTORED) or {}
        key = ("status", "reason", "message")
        if all(old.get(k) == new.get(k) for k in key):
            return []
        message = str(new.get("message", ""))
        if new.get("status") == "True":
            return [EmitEvent(ref, "Restored", message)]
        return [EmitEvent(ref, "RestoreFailed", message, "Warning")]

    def patches(self, ref: ObjectRef) -> list[Patch]:
        return [Patch(ref, annotations=self.annotations)] if self.annotations else []


def _carried(run: Mapping[str, Any]) -> RestoreStep:
    """The outcome of the last request, kept in the status while no other is pending."""
    status = run.get("status") or {}
    before = condition(status.get("conditions"), CONDITION_RESTORED)
    conds = []
    if before is not None and before.get("status") in ("True", "False", "Unknown"):
        conds.append(
            Cond(
                CONDITION_RESTORED,
                before["status"],
                str(before.get("reason") or "Unknown"),
                str(before.get("message") or ""),
            )
        )
    restored = parse_time(status.get("restoredAt"))
    return RestoreStep(conds, restored_at=rfc3339(restored) if restored else None)


def _refusal(run: Mapping[str, Any], progress: Progress) -> str | None:
    """Why the run cannot be restored now; None when it can (or may once it has ended)."""
    spec = spec_of(run)
    if not spec.get("restore"):
        return "the run has no restore action"
    if not progress.final:
        return None
    if spec.get("backup") and (
        progress.phase != PHASE_SUCCEEDED or not progress.outputs.get("path")
    ):
        return f"nothing was stored to restore: the backup is {progress.phase} ({progress.reason})"
    return None


def _restore_path(run: Mapping[str, Any], progress: Progress) -> str:
    if spec_of(run).get("backup"):
        return str(progress.outputs["path"])
    return str((spec_of(run).get("storage") or {}).get("path", ""))


def _refuse(step: RestoreStep, value: str, why: str) -> RestoreStep:
    text = f"restore request {value!r} refused: {why}"
    step.conds = [Cond(CONDITION_RESTORED, "False", Reason.RESTORE_REFUSED, text)]
    step.annotations = {ANNOTATION_RESTORE: None}
    return step


def _ended(
    step: RestoreStep, name: str, workflow: Mapping[str, Any], path: str, now: datetime
) -> RestoreStep:
    status = workflow.get("status") or {}
    phase = status.get("phase") or ""
    if phase not in COMPLETED:
        text = f"Workflow {name} is restoring {path}"
        step.conds = [Cond(CONDITION_RESTORED, "Unknown", Reason.RESTORE_IN_PROGRESS, text)]
        return step
    finished = rfc3339(parse_time(status.get("finishedAt")) or now)
    step.annotations = {ANNOTATION_RESTORE: None, ANNOTATION_LAST_RESTORE: name}
    if phase == PHASE_SUCCEEDED:
        text = f"Workflow {name} restored {path} at {finished}"
        step.conds = [Cond(CONDITION_RESTORED, "True", Reason.RESTORED, text)]
        step.restored_at = finished
        step.annotations[ANNOTATION_RESTORED_AT] = finished
        return step
    message = status.get("message")
    text = f"Workflow {name} failed to restore {path}" + (f": {message}" if message else "")
    step.conds = [Cond(CONDITION_RESTORED, "False", Reason.RESTORE_FAILED, text)]
    return step


def handle_restore(
    run: Mapping[str, Any],
    progress: Progress,
    *,
    storage: Mapping[str, Any] | None,
    restore_workflow: Mapping[str, Any] | None,
    settings: Settings,
    now: datetime,
    deleting: bool = False,
) -> RestoreStep:
    """The next step of the run's restore request, given where its backup stands."""
    step = _carried(run)
    value = (meta_of(run).get("annotations") or {}).get(ANNOTATION_RESTORE)
    name = restore_workflow_name(run)
    if value is None or name is None or deleting:
        return step
    why = _refusal(run, progress)
    if why is not None:
        return _refuse(step, value, why)
    if not progress.final:
        return step  # asked while the backup runs: restored once it has ended
    path = _restore_path(run, progress)
    if restore_workflow is not None:
        return _ended(step, name, restore_workflow, path, now)
    namespace = str(meta_of(run).get("namespace", ""))
    verdict = storage_verdict(storage, name=storage_name(run), namespace=namespace)
    if verdict.status == "False" or storage is None:
        return _refuse(step, value, verdict.message)
    if verdict.status == "Unknown":
        text = f"restore request {value!r} waits: {verdict.message}"
        step.conds = [Cond(CONDITION_RESTORED, "Unknown", Reason.WAITING_FOR_STORAGE, text)]
        step.requeue = [STORAGE_WAIT_SECONDS]
        return step
    try:
        model = parse_run(run, restore_path=path)
        objects = render_run(
            model, parse_storage(storage), render_options(settings, storage_name(run))
        )
    except (ValidationError, ValidationFailed) as exc:
        return _refuse(step, value, spec_problems(exc))
    labels = {LABEL_RESTORE_OF: str(meta_of(run).get("name", ""))}
    step.creates = [Create(workflow_body(objects[-1], run, name=name, labels=labels))]
    text = f"Workflow {name} submitted to restore {path}"
    step.conds = [Cond(CONDITION_RESTORED, "Unknown", Reason.RESTORE_IN_PROGRESS, text)]
    return step
