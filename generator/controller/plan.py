"""What a reconcile decides, as plain data: the actions the I/O module carries out.

Every decision of the controller is a pure function from objects (plain dicts, as the API
server returns them) to a :class:`Plan`. Only :mod:`generator.controller.kube` talks to the
API server, and only :mod:`generator.controller.objectstore` to S3; they carry a plan out in
order, so the order of the actions is part of the decision (a run is recorded before the
finalizer that held its Workflow is removed; a stored object is deleted before the run's
finalizer is). Every action is idempotent: carrying a plan out twice, or after a restart
half-way through it, ends in the same state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Action",
    "AddFinalizer",
    "Apply",
    "ApplyStatus",
    "Create",
    "Delete",
    "DeleteStoredObject",
    "EmitEvent",
    "ObjectRef",
    "Patch",
    "Plan",
    "RemoveFinalizer",
    "ref_of",
]

Body = dict[str, Any]
#: The longest object name (a DNS subdomain), an Event's too.
MAX_NAME = 253


@dataclass(frozen=True)
class ObjectRef:
    """One object of the API: enough to read, patch or delete it, and to post an Event on it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    #: When set, the action applies only to this incarnation of the object (a precondition).
    uid: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"


def ref_of(body: Mapping[str, Any]) -> ObjectRef:
    """The reference of an object as the API server returns it."""
    meta = body.get("metadata") or {}
    return ObjectRef(
        api_version=str(body.get("apiVersion", "")),
        kind=str(body.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=meta.get("namespace"),
        uid=meta.get("uid"),
    )


@dataclass(frozen=True)
class Apply:
    """Server-side apply of a whole object (our field manager; conflicts are forced)."""

    body: Body


@dataclass(frozen=True)
class ApplyStatus:
    """Server-side apply of an object's ``status`` subresource: ``status`` holds our fields."""

    ref: ObjectRef
    status: Body


@dataclass(frozen=True)
class Create:
    """Create an object unless it exists (then nothing happens): for objects whose spec is
    not ours after creation, such as a Workflow that Argo runs."""

    body: Body


@dataclass(frozen=True)
class Patch:
    """A JSON merge patch of metadata (labels, annotations; ``None`` removes a key)."""

    ref: ObjectRef
    labels: Mapping[str, str | None] = field(default_factory=dict)
    annotations: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class AddFinalizer:
    ref: ObjectRef
    finalizer: str


@dataclass(frozen=True)
class RemoveFinalizer:
    ref: ObjectRef
    finalizer: str


@dataclass(frozen=True)
class Delete:
    """Delete an object; one already gone counts as deleted."""

    ref: ObjectRef
    #: Background: owned objects are collected after it (Workflows, their Pods).
    propagation: Literal["Background", "Foreground", "Orphan"] = "Background"


@dataclass(frozen=True)
class DeleteStoredObject:
    """Delete one backup's object from its storage; an object already gone counts as deleted.

    The result is not returned to the plan: the next reconcile sees it (the finalizer is
    removed by the action that follows this one only if this one succeeded).
    """

    storage: str
    key: str


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on ``regarding``, so ``kubectl describe`` tells what happened."""

    regarding: ObjectRef
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"

    @property
    def name(self) -> str:
        """``<object>.<hash>``, the same for the same object (incarnation), type, reason and
        message: an Event decided twice (by two reconciles reading the same state, say the
        catalogue's and the run's, or one reading an object before its own last write came
        back) is posted once, and the API server refuses the repeat."""
        ref = self.regarding
        identity = (ref.api_version, ref.kind, ref.namespace or "", ref.name, ref.uid or "")
        text = "\n".join((*identity, self.type, self.reason, self.message))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        head = ref.name[: MAX_NAME - len(digest) - 1].rstrip("-.")
        return f"{head}.{digest}"


Action = (
    Apply
    | ApplyStatus
    | Create
    | Patch
    | AddFinalizer
    | RemoveFinalizer
    | Delete
    | DeleteStoredObject
    | EmitEvent
)


@dataclass(frozen=True)
class Plan:
    """The actions of one reconcile, in the order they must be carried out."""

    actions: tuple[Action, ...] = ()
    #: Reconcile the object again after this many seconds, though nothing changed (a backstop
    #: for deadlines, and the retry of a step that could not be done yet).
    requeue_after: float | None = None

    def __add__(self, other: Plan) -> Plan:
        delays = [d for d in (self.requeue_after, other.requeue_after) if d is not None]
        return Plan(self.actions + other.actions, min(delays) if delays else None)
