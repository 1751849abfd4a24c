"""Where a BackupRun stands, as :class:`Progress`, and the ``status`` and Events it makes.

The status of a run is written whole by one server-side apply (every field of
:data:`OWNED_FIELDS` that has a value), so a field it no longer holds is removed. Its conditions:
``InProgress``, ``Successful`` and ``Failed`` (Unknown while in progress), ``Restorable`` (the
backup is stored and the run has a restore action), ``Encrypted`` and ``Compressed`` (from the
spec), ``Locked`` (only for a backup that reported an Object Lock: see :class:`Lock`), then any
the caller adds (a restore request, a deletion that failed).

A run whose recorded phase is final (Succeeded, Failed, Error) keeps it: its progress is read
back from its status (:func:`progress_of_status`), whatever its Workflow says later. Events are
posted on transitions of the phase only, so a status written again posts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from generator.controller.conditions import Cond, condition, merge_conditions, parse_time
from generator.controller.names import (
    COMPLETED,
    CONDITION_COMPRESSED,
    CONDITION_ENCRYPTED,
    CONDITION_FAILED,
    CONDITION_IN_PROGRESS,
    CONDITION_LOCKED,
    CONDITION_RESTORABLE,
    CONDITION_SUCCESSFUL,
    PHASE_ERROR,
    PHASE_FAILED,
    PHASE_PENDING,
    PHASE_RUNNING,
    PHASE_SUCCEEDED,
)
from generator.controller.plan import EmitEvent, ObjectRef
from generator.models import ANNOTATION_RESTORE
from generator.render.pod import OUTPUT_PARAMETERS
from streamer.contract import Output

__all__ = [
    "OWNED_FIELDS",
    "Lock",
    "Progress",
    "Reason",
    "RunPhase",
    "is_final",
    "owned_status",
    "progress_of_status",
    "run_events",
    "run_status",
]

Body = Mapping[str, Any]
RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Error"]

#: The ``status`` fields of a BackupRun that the controller writes (all of them).
OWNED_FIELDS = (
    "phase",
    "conditions",
    "path",
    "url",
    "size",
    "sizeInBytes",
    "sha256",
    "retainUntil",
    "legalHold",
    "workflow",
    "startTime",
    "completionTime",
    "restoredAt",
)
_FAILED_PHASES = frozenset({PHASE_FAILED, PHASE_ERROR})
_RUN_PHASES: dict[str, RunPhase] = {
    p: p for p in (PHASE_PENDING, PHASE_RUNNING, PHASE_SUCCEEDED, PHASE_FAILED, PHASE_ERROR)
}


class Reason(StrEnum):
    """The ``reason`` of a BackupRun's conditions: why the run is where it is."""

    WAITING_FOR_STORAGE = "WaitingForStorage"
    WORKFLOW_CREATED = "WorkflowCreated"
    WORKFLOW_OF_PREVIOUS_RUN = "WorkflowOfPreviousRun"
    WORKFLOW_PENDING = "WorkflowPending"
    WORKFLOW_RUNNING = "WorkflowRunning"
    WORKFLOW_SUCCEEDED = "WorkflowSucceeded"
    WORKFLOW_FAILED = "WorkflowFailed"
    WORKFLOW_ERROR = "WorkflowError"
    OUTPUTS_MISSING = "OutputsMissing"
    WORKFLOW_MISSING = "WorkflowMissing"
    WORKFLOW_DELETED = "WorkflowDeleted"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    STORAGE_NOT_READY = "StorageNotReady"
    INVALID_SPEC = "InvalidSpec"
    STORED = "Stored"
    NOT_STORED = "NotStored"
    NO_RESTORE_ACTION = "NoRestoreAction"
    AGE = "Age"
    NOT_ENCRYPTED = "NotEncrypted"
    GZIP = "Gzip"
    NOT_COMPRESSED = "NotCompressed"
    RESTORE_IN_PROGRESS = "RestoreInProgress"
    RESTORED = "Restored"
    RESTORE_FAILED = "RestoreFailed"
    RESTORE_REFUSED = "RestoreRefused"
    DELETE_FAILED = "DeleteFailed"
    STORAGE_NOT_FOUND = "StorageNotFound"
    RETAINED = "Retained"
    LEGAL_HOLD = "LegalHold"
    NOT_LOCKED = "NotLocked"
    LOCK_NOT_REPORTED = "LockNotReported"
    #: The stored object is not deleted (yet): its Object Lock forbids it.
    LOCKED = "Locked"


@dataclass(frozen=True)
class Lock:
    """The S3 Object Lock a backup reported for its stored object (the streamer's
    ``retainUntil``, ``legalHold`` and ``locked`` outputs), as the run's status keeps it:
    ``status.retainUntil``, ``status.legalHold`` and the ``Locked`` condition (True: the
    object was read back locked as asked; False: stored, but not locked as asked).
    """

    #: When the retention ends (RFC 3339, UTC); None: no retention (a legal hold alone).
    retain_until: str | None = None
    legal_hold: bool = False
    #: Whether the object carries the lock the backup asked for; None: not reported.
    locked: bool | None = None

    def until(self) -> datetime | None:
        """The end of the retention, as a time."""
        return parse_time(self.retain_until)

    def describe(self) -> str:
        """``retained until 2024-05-31T12:00:00Z and under a legal hold``."""
        parts = [f"retained until {self.retain_until}"] if self.retain_until else []
        if self.legal_hold:
            parts.append("under a legal hold")
        return " and ".join(parts) or "not locked"

    @classmethod
    def of_status(cls, status: Mapping[str, Any]) -> Lock | None:
        """The lock a run's status records, None when it records none."""
        until, hold = status.get("retainUntil"), status.get("legalHold")
        cond = condition(status.get("conditions"), CONDITION_LOCKED)
        if until is None and hold is None and cond is None:
            return None
        locked = {"True": True, "False": False}.get(str((cond or {}).get("status")))
        return cls(str(until) if until else None, hold is True, locked)


@dataclass(frozen=True)
class Progress:
    """Where a run stands: its phase, why, and what its Workflow reported."""

    phase: RunPhase
    reason: str
    message: str = ""
    workflow: str | None = None
    #: Validated outputs, by status field name (``sizeInBytes`` an int).
    outputs: Mapping[str, str | int] = field(default_factory=dict)
    start_time: str | None = None
    completion_time: str | None = None
    #: The Object Lock the backup reported, if it asked for one.
    lock: Lock | None = None

    @property
    def final(self) -> bool:
        return self.phase in COMPLETED


def _spec(run: Body) -> Mapping[str, Any]:
    spec = run.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(body: Body) -> Mapping[str, Any]:
    status = body.get("status")
    return status if isinstance(status, Mapping) else {}


def is_final(run: Body) -> bool:
    """Whether a BackupRun's recorded status is final (its phase never changes again)."""
    return _status(run).get("phase") in COMPLETED


def progress_of_status(run: Body) -> Progress:
    """The progress a run's recorded status holds (for a final run, which keeps it)."""
    status = _status(run)
    phase = _RUN_PHASES.get(str(status.get("phase")), PHASE_PENDING)
    kind = CONDITION_SUCCESSFUL if phase == PHASE_SUCCEEDED else CONDITION_FAILED
    if phase not in COMPLETED:
        kind = CONDITION_IN_PROGRESS
    cond = condition(status.get("conditions"), kind) or {}
    outputs: dict[str, str | int] = {}
    for name in OUTPUT_PARAMETERS:
        if status.get(name) is not None:
            outputs[name] = status[name]
    return Progress(
        phase,
        str(cond.get("reason") or "Unknown"),
        str(cond.get("message") or ""),
        status.get("workflow"),
        outputs,
        status.get("startTime"),
        status.get("completionTime"),
        Lock.of_status(status),
    )


# --- status --------------------------------------------------------------------------------


def _main_conditions(progress: Progress, spec: Mapping[str, Any]) -> list[Cond]:
    phase, reason, message = progress.phase, progress.reason, progress.message
    if not progress.final:
        conds = [
            Cond(CONDITION_IN_PROGRESS, "True", reason, message),
            Cond(CONDITION_SUCCESSFUL, "Unknown", reason),
            Cond(CONDITION_FAILED, "Unknown", reason),
        ]
    elif phase == PHASE_SUCCEEDED:
        conds = [
            Cond(CONDITION_IN_PROGRESS, "False", reason),
            Cond(CONDITION_SUCCESSFUL, "True", reason, message),
            Cond(CONDITION_FAILED, "False", reason),
        ]
    else:
        conds = [
            Cond(CONDITION_IN_PROGRESS, "False", reason),
            Cond(CONDITION_SUCCESSFUL, "False", reason),
            Cond(CONDITION_FAILED, "True", reason, message),
        ]
    stored = phase == PHASE_SUCCEEDED and (
        Output.PATH in progress.outputs or not spec.get("backup")
    )
    if not spec.get("restore"):
        conds.append(Cond(CONDITION_RESTORABLE, "False", Reason.NO_RESTORE_ACTION))
    elif stored:
        text = f"annotate the run with {ANNOTATION_RESTORE} to restore it"
        conds.append(Cond(CONDITION_RESTORABLE, "True", Reason.STORED, text))
    else:
        conds.append(Cond(CONDITION_RESTORABLE, "False", Reason.NOT_STORED))
    encryption = spec.get("encryption")
    if isinstance(encryption, Mapping) and encryption.get("recipients"):
        count = len(encryption["recipients"])
        text = f"age-encrypted for {count} recipient{'s' if count > 1 else ''}"
        conds.append(Cond(CONDITION_ENCRYPTED, "True", Reason.AGE, text))
    else:
        conds.append(Cond(CONDITION_ENCRYPTED, "False", Reason.NOT_ENCRYPTED))
    compression = spec.get("compression") or {}
    if compression.get("algorithm", "gzip") == "none":
        conds.append(Cond(CONDITION_COMPRESSED, "False", Reason.NOT_COMPRESSED))
    else:
        level = compression.get("level")
        text = f"gzip level {level}" if level is not None else "gzip, default level"
        conds.append(Cond(CONDITION_COMPRESSED, "True", Reason.GZIP, text))
    if progress.lock is not None:
        conds.append(_locked_condition(progress.lock))
    return conds


def _locked_condition(lock: Lock) -> Cond:
    if lock.locked is None:
        text = (
            "the backup's Object Lock outputs are missing or invalid: whether the object is "
            "locked, and until when, is unknown; look at the Workflow's outputs"
        )
        return Cond(CONDITION_LOCKED, "Unknown", Reason.LOCK_NOT_REPORTED, text)
    if not lock.locked:
        text = (
            f"stored but not locked as asked: the object is {lock.describe()}; lock it in S3 "
            "(aws s3api put-object-retention, put-object-legal-hold) or delete it"
        )
        return Cond(CONDITION_LOCKED, "False", Reason.NOT_LOCKED, text)
    reason = Reason.RETAINED if lock.retain_until else Reason.LEGAL_HOLD
    text = lock.describe()
    if lock.legal_hold:
        text += " (until it is lifted in S3)"
    return Cond(CONDITION_LOCKED, "True", reason, text)


def run_status(
    progress: Progress,
    run: Body,
    now: datetime,
    *,
    extra: Sequence[Cond] = (),
    restored_at: str | None = None,
) -> dict[str, Any]:
    """The whole ``status`` of a run (every field in :data:`OWNED_FIELDS` that has a value):
    a server-side apply of it removes what it no longer holds."""
    wanted = [*_main_conditions(progress, _spec(run)), *extra]
    status: dict[str, Any] = {
        "phase": progress.phase,
        "conditions": merge_conditions(_status(run).get("conditions"), wanted, now),
        **progress.outputs,
    }
    if progress.lock is not None:
        if progress.lock.retain_until is not None:
            status["retainUntil"] = progress.lock.retain_until
        status["legalHold"] = progress.lock.legal_hold
    for key, value in (
        ("workflow", progress.workflow),
        ("startTime", progress.start_time),
        ("completionTime", progress.completion_time),
        ("restoredAt", restored_at),
    ):
        if value is not None:
            status[key] = value
    return status


def owned_status(run: Body) -> dict[str, Any]:
    """The part of a run's current status that the controller writes."""
    status = _status(run)
    return {key: status[key] for key in OWNED_FIELDS if key in status}


# --- Events --------------------------------------------------------------------------------


def _message(status: Mapping[str, Any], type_: str) -> str:
    return str((condition(status.get("conditions"), type_) or {}).get("message") or "")


def run_events(ref: ObjectRef, before: Body, after: Body) -> list[EmitEvent]:
    """The Events of a run's status going from ``before`` to ``after``: only transitions."""
    old, new = before.get("phase"), after.get("phase")
    if old == new or old in COMPLETED:
        return []
    if new == PHASE_RUNNING:
        return [EmitEvent(ref, "Started", f"Workflow {after.get('workflow')} is running")]
    if new == PHASE_SUCCEEDED:
        return [EmitEvent(ref, "Succeeded", _message(after, CONDITION_SUCCESSFUL))]
    if new in _FAILED_PHASES:
        return [EmitEvent(ref, "Failed", _message(after, CONDITION_FAILED), "Warning")]
    return []
