"""What a BackupStorage needs: its Ready condition, counts, the in-use finalizer, credentials.

:func:`reconcile_storage` is a pure function of the storage, the result of the last bucket check
(:class:`BucketCheck`, made by :mod:`generator.controller.objectstore`), the credentials Secret
and the schedules and runs that name the storage. It decides:

- ``Ready`` and ``lastValidationTime`` from the check (the message is scrubbed of every value
  of the Secret, whatever the check put in it); no Secret: ``CredentialsNotFound``;
- ``runs``, ``sizeInBytes`` and ``size``: the successful runs stored here, and their bytes;
- the ``backup-operator.io/in-use`` finalizer: always on, so a deletion waits until no schedule
  or run names the storage (``InUse`` says which, with a Warning Event when a deletion is
  held); with no user left the copies are deleted, then the finalizer removed;
- the credentials copies (:mod:`generator.controller.credentials`) in each namespace of a user
  that ``spec.allowedNamespaces`` allows; users elsewhere are named by ``UsersAllowed`` and
  refused on their own side (:func:`storage_verdict`, reason ``StorageNotAllowed``).

Events are posted on transitions only: when a condition's status or reason changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from generator.controller.conditions import Cond, condition, merge_conditions, rfc3339
from generator.controller.credentials import plan_copies, scrub
from generator.controller.names import (
    CONDITION_IN_USE,
    CONDITION_READY,
    CONDITION_USERS_ALLOWED,
    FINALIZER_IN_USE,
    PHASE_SUCCEEDED,
)
from generator.controller.objects import parse_storage, spec_problems
from generator.controller.plan import (
    Action,
    AddFinalizer,
    ApplyStatus,
    Body,
    EmitEvent,
    ObjectRef,
    Plan,
    RemoveFinalizer,
)
from generator.models import API_VERSION, BackupRun, BackupSchedule, BackupStorage
from streamer.progress import human_bytes

__all__ = [
    "MAX_NAMED_USERS",
    "REASON_STORAGE_NOT_ALLOWED",
    "REASON_STORAGE_NOT_FOUND",
    "REASON_STORAGE_NOT_READY",
    "REASON_STORAGE_READY",
    "BucketCheck",
    "StorageVerdict",
    "User",
    "reconcile_storage",
    "storage_name_of",
    "storage_verdict",
]

#: How many users a condition message or an Event names; the rest are counted.
MAX_NAMED_USERS = 5

# Reasons of the Ready condition of a storage's users (schedules, runs).
REASON_STORAGE_READY = "StorageReady"
REASON_STORAGE_NOT_FOUND = "StorageNotFound"
REASON_STORAGE_NOT_ALLOWED = "StorageNotAllowed"
REASON_STORAGE_NOT_READY = "StorageNotReady"

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class BucketCheck:
    """The outcome of one check of a storage's bucket with its credentials."""

    ok: bool
    #: What was found, for the Ready condition; scrubbed of secrets by the check, and again here.
    message: str
    checked_at: datetime


@dataclass(frozen=True, order=True)
class User:
    """A schedule or run that names a storage."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def storage_name_of(body: Mapping[str, Any]) -> str | None:
    """The BackupStorage a BackupSchedule or BackupRun (a plain dict) names, if any."""
    spec = body.get("spec") or {}
    if body.get("kind") == BackupSchedule.kind:
        spec = (spec.get("template") or {}).get("spec") or {}
    name = (spec.get("storage") or {}).get("name")
    return name if isinstance(name, str) else None


def _allows(storage: Mapping[str, Any], namespace: str) -> bool:
    allowed = (storage.get("spec") or {}).get("allowedNamespaces")
    return allowed is None or namespace in allowed


@dataclass(frozen=True)
class StorageVerdict:
    """Whether a schedule or run in one namespace can use its storage now, and if not, why."""

    status: Status
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "True"


def storage_verdict(
    storage: Mapping[str, Any] | None, *, name: str, namespace: str
) -> StorageVerdict:
    """Can an object in ``namespace`` use BackupStorage ``name`` (``storage``, None if absent)?

    Unknown while the storage has not been checked yet.
    """
    if storage is None:
        return StorageVerdict(
            "False",
            REASON_STORAGE_NOT_FOUND,
            f"BackupStorage {name} does not exist: create it, or name another one in "
            "spec.storage.name",
        )
    if not _allows(storage, namespace):
        return StorageVerdict(
            "False",
            REASON_STORAGE_NOT_ALLOWED,
            f"BackupStorage {name} does not allow namespace {namespace}: add it to the "
            "storage's spec.allowedNamespaces, or use another storage",
        )
    ready = condition((storage.get("status") or {}).get("conditions"), CONDITION_READY)
    if ready is None or ready.get("status") not in ("True", "False"):
        return StorageVerdict(
            "Unknown", REASON_STORAGE_NOT_READY, f"BackupStorage {name} has not been checked yet"
        )
    if ready.get("status") == "False":
        why = ready.get("message") or ready.get("reason") or "no reason given"
        return StorageVerdict(
            "False", REASON_STORAGE_NOT_READY, f"BackupStorage {name} is not Ready: {why}"
        )
    return StorageVerdict("True", REASON_STORAGE_READY, f"BackupStorage {name} is Ready")


def _users(storage_name: str, groups: Iterable[Sequence[Body]]) -> list[User]:
    found = set()
    for group in groups:
        for body in group:
            if storage_name_of(body) != storage_name:
                continue
            meta = body.get("metadata") or {}
            found.add(User(str(body.get("kind", "")), str(meta.get("namespace", "")), meta["name"]))
    return sorted(found)


def _named(users: Sequence[User]) -> str:
    named = ", ".join(str(u) for u in users[:MAX_NAMED_USERS])
    rest = len(users) - MAX_NAMED_USERS
    return f"{named} and {rest} more" if rest > 0 else named


def _counted(users: Sequence[User]) -> str:
    schedules = sum(u.kind == BackupSchedule.kind for u in users)
    runs = sum(u.kind == BackupRun.kind for u in users)
    parts = [f"{schedules} schedule{'s' * (schedules != 1)}"] if schedules else []
    parts += [f"{runs} run{'s' * (runs != 1)}"] if runs else []
    return " and ".join(parts)


def _ready(
    model: BackupStorage, previous: Any, check: BucketCheck | None, secret: Body | None
) -> Cond:
    credentials = model.spec.credentials
    if secret is None:
        return Cond(
            CONDITION_READY,
            "False",
            "CredentialsNotFound",
            f"the Secret {credentials.namespace}/{credentials.name} named in spec.credentials "
            "does not exist: create it, or fix spec.credentials",
        )
    if check is None:
        before = condition(previous, CONDITION_READY)
        if before is not None and before.get("reason") in ("BucketReachable", "BucketUnreachable"):
            return Cond(
                CONDITION_READY,
                before.get("status", "Unknown"),
                str(before["reason"]),
                str(before.get("message", "")),
            )
        return Cond(CONDITION_READY, "Unknown", "NotChecked", "the bucket has not been checked yet")
    bucket = model.spec.parameters.bucket
    if check.ok:
        message = scrub(check.message, secret) or f"bucket {bucket} is reachable"
        return Cond(CONDITION_READY, "True", "BucketReachable", message)
    message = scrub(check.message, secret) or f"bucket {bucket} cannot be used"
    return Cond(CONDITION_READY, "False", "BucketUnreachable", message)


def _in_use(users: Sequence[User], deleting: bool) -> Cond:
    if not users:
        return Cond(CONDITION_IN_USE, "False", "Unused", "no schedule or run uses the storage")
    if deleting:
        message = (
            f"deletion waits until no schedule or run uses the storage; used by "
            f"{_counted(users)}: {_named(users)}"
        )
        return Cond(CONDITION_IN_USE, "True", "DeletionHeld", message)
    return Cond(CONDITION_IN_USE, "True", "Used", f"used by {_counted(users)}: {_named(users)}")


def _users_allowed(refused: Sequence[User]) -> Cond:
    if not refused:
        return Cond(CONDITION_USERS_ALLOWED, "True", "AllAllowed", "")
    namespaces = sorted({u.namespace for u in refused})
    message = (
        f"used by {_counted(refused)} in namespaces outside spec.allowedNamespaces "
        f"({', '.join(namespaces)}), which are refused (StorageNotAllowed): {_named(refused)}"
    )
    return Cond(CONDITION_USERS_ALLOWED, "False", "UsersNotAllowed", message)


def _totals(storage_name: str, runs: Sequence[Body]) -> tuple[int, int]:
    count = size = 0
    for run in runs:
        status = run.get("status") or {}
        if storage_name_of(run) != storage_name or status.get("phase") != PHASE_SUCCEEDED:
            continue
        count += 1
        stored = status.get("sizeInBytes")
        if isinstance(stored, int) and not isinstance(stored, bool) and stored > 0:
            size += stored
    return count, size


#: The status fields the controller writes (compared to tell whether to write them again).
_STATUS_KEYS = (
    "conditions",
    "runs",
    "sizeInBytes",
    "size",
    "lastValidationTime",
    "credentialsNamespaces",
)

#: The Event of a condition that changed to (status, reason); None: no Event.
_EVENTS: dict[tuple[str, str], tuple[str, Literal["Normal", "Warning"]] | None] = {
    ("True", "BucketReachable"): ("Ready", "Normal"),
    ("False", "BucketUnreachable"): ("BucketUnreachable", "Warning"),
    ("False", "CredentialsNotFound"): ("CredentialsNotFound", "Warning"),
    ("False", "InvalidSpec"): ("InvalidSpec", "Warning"),
    ("True", "DeletionHeld"): ("DeletionHeld", "Warning"),
    ("False", "UsersNotAllowed"): ("UsersNotAllowed", "Warning"),
}


def _transitions(ref: ObjectRef, previous: Any, wanted: Iterable[Cond]) -> list[EmitEvent]:
    events = []
    for cond in wanted:
        before = condition(previous, cond.type)
        if before is not None and (before.get("status"), before.get("reason")) == (
            cond.status,
            cond.reason,
        ):
            continue
        event = _EVENTS.get((cond.status, cond.reason))
        if event is not None:
            events.append(EmitEvent(ref, event[0], cond.message, event[1]))
    return events


def reconcile_storage(
    storage: Body,
    *,
    check: BucketCheck | None,
    secret: Body | None,
    users: Sequence[Body],
    runs: Sequence[Body],
    now: datetime,
) -> Plan:
    """The plan for one BackupStorage.

    ``check`` is the newest bucket check (None: none since the last reconcile; the Ready
    condition stays as it was). ``secret`` is the Secret ``spec.credentials`` names, as the
    API server returns it (None: missing). ``users`` are the BackupSchedules and BackupRuns
    that name the storage, and ``runs`` its BackupRuns (the two may overlap; objects naming
    another storage are ignored).
    """
    meta = storage.get("metadata") or {}
    ref = ObjectRef(
        API_VERSION, BackupStorage.kind, str(meta.get("name", "")), None, meta.get("uid")
    )
    previous: dict[str, Any] = dict(storage.get("status") or {})
    try:
        model = parse_storage(storage)
    except ValidationError as exc:
        ready = Cond(CONDITION_READY, "False", "InvalidSpec", spec_problems(exc))
        merged = merge_conditions(previous.get("conditions"), [ready], now)
        events = _transitions(ref, previous.get("conditions"), [ready])
        return Plan((ApplyStatus(ref, {**previous, "conditions": merged}), *events))
    name = model.metadata.name
    finalizers = meta.get("finalizers") or []
    deleting = bool(meta.get("deletionTimestamp"))
    everyone = _users(name, (users, runs))
    refused = [u for u in everyone if not _allows(storage, u.namespace)]
    wanted = {u.namespace for u in everyone if _allows(storage, u.namespace)}
    copies = plan_copies(
        storage,
        source=secret,
        wanted=wanted,
        recorded=previous.get("credentialsNamespaces") or (),
    )
    conditions = [
        _ready(model, previous.get("conditions"), check, secret),
        _in_use(everyone, deleting),
        _users_allowed(refused),
    ]
    count, size = _totals(name, runs)
    checked = rfc3339(check.checked_at) if check is not None else previous.get("lastValidationTime")

    def status(namespaces: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "conditions": merge_conditions(previous.get("conditions"), conditions, now),
            "runs": count,
            "sizeInBytes": size,
            "size": human_bytes(size),
        }
        if checked:
            body["lastValidationTime"] = checked
        if namespaces:
            body["credentialsNamespaces"] = list(namespaces)
        return body

    actions: list[Action] = []
    if not deleting and FINALIZER_IN_USE not in finalizers:
        actions.append(AddFinalizer(ref, FINALIZER_IN_USE))
    applied = {key: previous[key] for key in _STATUS_KEYS if key in previous}
    if copies.record_first is not None:
        applied = status(copies.record_first)
        actions.append(ApplyStatus(ref, applied))
    actions += copies.actions
    final = status(copies.recorded)
    if final != applied:
        actions.append(ApplyStatus(ref, final))
    actions += _transitions(ref, previous.get("conditions"), conditions)
    if deleting and not everyone and FINALIZER_IN_USE in finalizers:
        actions.append(RemoveFinalizer(ref, FINALIZER_IN_USE))
    return Plan(tuple(actions))
