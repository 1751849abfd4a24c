"""Objects as the API server returns them, for the tests of a BackupRun and of the catalogue.

A run, its storage, its Workflow and what Argo writes into it (:func:`workflow_status`), as
plain dicts; and the parts of a plan a test looks at. The tests that carry plans out do it on
:class:`tests.controller.world.World`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from generator.controller.plan import Action, ApplyStatus, Plan
from tests.conftest import FAKE_SECRET
from tests.controller.bodies import NAMESPACE, NOW, Body

__all__ = [
    "NAMESPACE",
    "NOW",
    "PATH",
    "SHA",
    "Body",
    "actions_of",
    "condition_of",
    "outputs",
    "parameters",
    "run_body",
    "run_spec",
    "status_of",
    "storage_body",
    "workflow_body",
    "workflow_status",
]

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
