"""Objects as the API server returns them, and a small in-memory world that carries out Plans.

The pure decisions are tested by feeding them plain dicts; the restart tests also need to carry
a plan out *in part* (a controller killed after any action) and feed the state left behind back
in. :class:`World` does that the way the API server and the object store would for the actions
of :mod:`generator.controller.plan`: Create only if absent, finalizers holding a deletion, a
status replaced whole, merge-patched annotations, Events recorded. Argo is played by the test
(:func:`workflow_status`).
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from generator.controller.conditions import rfc3339
from generator.controller.plan import (
    Action,
    AddFinalizer,
    Apply,
    ApplyStatus,
    Create,
    Delete,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Patch,
    Plan,
    RemoveFinalizer,
)
from tests.conftest import FAKE_SECRET

Body = dict[str, Any]
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAMESPACE = "db"
SHA = "ab" * 32
PATH = "db/nightly-2024-05-01.sql.gz"


def storage_body(ready: str | None = "True", message: str = "bucket reachable") -> Body:
    body: Body = {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupStorage",
        "metadata": {"name": "minio", "uid": "uid-storage"},
        "spec": {
            "type": "s3",
            "parameters": {"bucket": "backups", "endpoint": "http://minio.minio.svc:9000"},
            "credentials": {"name": "minio-credentials", "namespace": "minio"},
        },
    }
    if ready is not None:
        reason = "BucketReachable" if ready == "True" else "BucketUnreachable"
        body["status"] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": "2024-05-01T00:00:00Z",
                }
            ]
        }
    return body


def run_spec(**changes: Any) -> Body:
    """A run spec with backup and restore; its Pod template holds FAKE_SECRET as an env value."""
    spec: Body = {
        "retainPolicy": "Retain",
        "storage": {"name": "minio", "path": "db/{{ run }}.sql.gz"},
        "backup": {"container": "db", "command": ["mariadb-dump", "test"], "deadlineSeconds": 600},
        "restore": {"container": "db", "command": ["mariadb", "test"]},
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "db",
                        "image": "mariadb:11",
                        "command": ["sleep", "1d"],
                        "env": [{"name": "MARIADB_ROOT_PASSWORD", "value": FAKE_SECRET}],
                    }
                ]
            }
        },
    }
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def run_body(
    name: str = "nightly",
    *,
    spec: Body | None = None,
    status: Body | None = None,
    annotations: Mapping[str, str] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
    created: str = "2024-05-01T11:59:00Z",
) -> Body:
    meta: Body = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": f"uid-{name}",
        "creationTimestamp": created,
        "generation": 1,
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    body: Body = {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": meta,
        "spec": spec if spec is not None else run_spec(),
    }
    if status is not None:
        body["status"] = status
    return body


def outputs(**changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "path": PATH,
        "url": f"s3://backups/{PATH}",
        "size": "1.0 MiB",
        "sizeInBytes": "1048576",
        "sha256": SHA,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def parameters(values: Mapping[str, str]) -> list[Body]:
    return [{"name": k, "value": v} for k, v in values.items()]


def workflow_status(
    phase: str,
    *,
    global_outputs: Mapping[str, str] | None = None,
    node_outputs: Mapping[str, str] | None = None,
    name: str = "nightly",
    message: str | None = None,
    started: str | None = "2024-05-01T11:59:30Z",
    finished: str | None = None,
    offloaded: bool = False,
) -> Body:
    """A Workflow's ``status`` as Argo writes it."""
    status: Body = {"phase": phase}
    if started:
        status["startedAt"] = started
    if finished:
        status["finishedAt"] = finished
    elif phase in ("Succeeded", "Failed", "Error"):
        status["finishedAt"] = "2024-05-01T11:59:50Z"
    if message:
        status["message"] = message
    if global_outputs is not None:
        status["outputs"] = {"parameters": parameters(global_outputs)}
    if offloaded:
        status["offloadNodeStatusVersion"] = "fnv:1234"
    elif node_outputs is not None or phase:
        node: Body = {
            "id": name,
            "name": name,
            "displayName": name,
            "type": "Pod",
            "templateName": "backup",
            "phase": phase or "Pending",
        }
        if node_outputs is not None:
            node["outputs"] = {"parameters": parameters(node_outputs)}
        status["nodes"] = {name: node}
    return status


def workflow_body(
    name: str = "nightly",
    status: Body | None = None,
    *,
    owner_uid: str | None = None,
    labels: Mapping[str, str] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
) -> Body:
    meta: Body = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": f"uid-wf-{name}",
        "creationTimestamp": "2024-05-01T11:59:10Z",
        "ownerReferences": [
            {
                "apiVersion": "backup-operator.io/v1",
                "kind": "BackupRun",
                "name": name,
                "uid": owner_uid or f"uid-{name}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if labels:
        meta["labels"] = dict(labels)
        meta["ownerReferences"] = []
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    body: Body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {"entrypoint": "backup"},
    }
    if status is not None:
        body["status"] = status
    return body


def actions_of(plan: Plan, kind: type[Action]) -> list[Any]:
    return [a for a in plan.actions if isinstance(a, kind)]


def status_of(plan: Plan) -> Body:
    """The status a plan applies (exactly one ApplyStatus)."""
    applied = actions_of(plan, ApplyStatus)
    assert len(applied) == 1, plan
    status: Body = applied[0].status
    return status


def condition_of(status: Mapping[str, Any], type_: str) -> Body:
    for cond in status.get("conditions", ()):
        if cond["type"] == type_:
            found: Body = cond
            return found
    raise AssertionError(f"no condition {type_} in {status}")


Key = tuple[str, str | None, str]


@dataclass
class World:
    """The API server and the object store, as far as plans touch them."""

    objects: dict[Key, Body] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)
    events: list[EmitEvent] = field(default_factory=list)
    #: How often each object was really created (Create of an absent object, or Apply).
    created: Counter[Key] = field(default_factory=Counter)
    deleted_objects: list[str] = field(default_factory=list)
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @staticmethod
    def key(body: Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        return (body["kind"], meta.get("namespace"), meta["name"])

    def put(self, body: Body) -> Body:
        self.objects[self.key(body)] = copy.deepcopy(body)
        return self.objects[self.key(body)]

    def get(self, kind: str, name: str | None, namespace: str | None = NAMESPACE) -> Body | None:
        if name is None:
            return None
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def _ref(self, ref: ObjectRef) -> Body | None:
        found = self.objects.get((ref.kind, ref.namespace, ref.name))
        if found is not None and ref.uid and found["metadata"].get("uid") != ref.uid:
            return None  # the precondition of another incarnation
        return found

    def _make(self, body: Body) -> None:
        body = copy.deepcopy(body)
        body["metadata"].setdefault("uid", f"uid-made-{next(self._uids)}")
        body["metadata"].setdefault("creationTimestamp", rfc3339(NOW))
        self.objects[self.key(body)] = body
        self.created[self.key(body)] += 1

    def _collect(self, body: Body) -> None:
        meta = body["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[self.key(body)]

    def carry_out(self, action: Action) -> None:
        if isinstance(action, Create):
            if self.key(action.body) not in self.objects:
                self._make(action.body)
        elif isinstance(action, Apply):
            found = self.objects.get(self.key(action.body))
            if found is None:
                self._make(action.body)
            else:
                found.update(
                    {k: copy.deepcopy(v) for k, v in action.body.items() if k != "metadata"}
                )
        elif isinstance(action, ApplyStatus):
            found = self._ref(action.ref)
            if found is not None:
                found["status"] = copy.deepcopy(action.status)
        elif isinstance(action, Patch):
            found = self._ref(action.ref)
            if found is not None:
                for attr, values in (
                    ("labels", action.labels),
                    ("annotations", action.annotations),
                ):
                    target = found["metadata"].setdefault(attr, {})
                    for k, v in values.items():
                        if v is None:
                            target.pop(k, None)
                        else:
                            target[k] = v
        elif isinstance(action, AddFinalizer):
            found = self._ref(action.ref)
            if found is not None and action.finalizer not in found["metadata"].get(
                "finalizers", []
            ):
                found["metadata"].setdefault("finalizers", []).append(action.finalizer)
        elif isinstance(action, RemoveFinalizer):
            found = self._ref(action.ref)
            if found is not None:
                meta = found["metadata"]
                meta["finalizers"] = [
                    f for f in meta.get("finalizers", []) if f != action.finalizer
                ]
                self._collect(found)
        elif isinstance(action, Delete):
            found = self._ref(action.ref)
            if found is not None:
                found["metadata"]["deletionTimestamp"] = rfc3339(NOW)
                self._collect(found)
        elif isinstance(action, DeleteStoredObject):
            self.stored.discard(action.key)
            self.deleted_objects.append(action.key)
        elif isinstance(action, EmitEvent):
            self.events.append(action)
        else:  # pragma: no cover - a new action kind
            raise TypeError(action)

    def carry_out_plan(self, plan: Plan, upto: int | None = None) -> None:
        """Carry out the plan's first ``upto`` actions (all by default): a crash after them."""
        for action in plan.actions[:upto]:
            self.carry_out(action)

    def delete(self, kind: str, name: str, namespace: str | None = NAMESPACE) -> None:
        self.carry_out(Delete(ObjectRef("", kind, name, namespace)))

    def set_status(self, kind: str, name: str, status: Body) -> None:
        self.objects[(kind, NAMESPACE, name)]["status"] = copy.deepcopy(status)
