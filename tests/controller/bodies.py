"""The objects of the controller's tests, as plain dicts the way the API server returns them."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from generator.controller.names import CONDITION_READY
from generator.models import LABEL_SCHEDULE, LABEL_STORAGE
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET

Body = dict[str, Any]

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BASE = datetime(2024, 5, 1, tzinfo=UTC)
NAMESPACE = "db"
API = "backup-operator.io/v1"


def stamp(hours: float) -> str:
    return (BASE + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(namespace: str = "minio", name: str = "minio-credentials") -> Body:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "uid-secret",
            "labels": {"team": "storage"},
            "annotations": {"note": "the source's own annotation"},
            "resourceVersion": "7",
        },
        "type": "Opaque",
        "data": {
            "AWS_ACCESS_KEY_ID": b64(FAKE_ACCESS_KEY),
            "AWS_SECRET_ACCESS_KEY": b64(FAKE_SECRET),
        },
    }


def storage(
    name: str = "minio",
    *,
    ready: str | None = "True",
    message: str = "bucket backups is reachable",
    allowed: list[str] | None = None,
    status: Body | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
) -> Body:
    body: Body = {
        "apiVersion": API,
        "kind": "BackupStorage",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "type": "s3",
            "parameters": {
                "bucket": "backups",
                "endpoint": "http://minio.minio.svc:9000",
                "s3ForcePathStyle": "true",
            },
            "credentials": {"name": "minio-credentials", "namespace": "minio"},
        },
    }
    if allowed is not None:
        body["spec"]["allowedNamespaces"] = allowed
    if status is not None:
        body["status"] = copy.deepcopy(status)
    elif ready is not None:
        body["status"] = {
            "conditions": [
                {
                    "type": CONDITION_READY,
                    "status": ready,
                    "reason": "BucketReachable" if ready == "True" else "BucketUnreachable",
                    "message": message,
                    "lastTransitionTime": stamp(0),
                }
            ]
        }
    if finalizers is not None:
        body["metadata"]["finalizers"] = list(finalizers)
    if deleting:
        body["metadata"]["deletionTimestamp"] = stamp(10)
    return body


TEMPLATE_SPEC: Body = {
    "retainPolicy": "Delete",
    "storage": {"name": "minio", "path": 'mysql-{{ now | date "2006.01.02" }}.sql'},
    "backup": {"container": "mysql", "command": ["mysqldump", "app"], "deadlineSeconds": 300},
    "restore": {"container": "mysql", "command": ["mysql", "app"]},
    "template": {
        "spec": {
            "containers": [{"name": "mysql", "image": "mysql:8.3.0", "command": ["sleep", "1d"]}]
        }
    },
}


def schedule(
    name: str = "nightly",
    *,
    namespace: str = NAMESPACE,
    storage_name: str = "minio",
    annotations: dict[str, str] | None = None,
    status: Body | None = None,
    **spec: Any,
) -> Body:
    template = copy.deepcopy(TEMPLATE_SPEC)
    template["storage"]["name"] = storage_name
    body: Body = {
        "apiVersion": API,
        "kind": "BackupSchedule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "12",
            "creationTimestamp": stamp(-24),
        },
        "spec": {
            "schedule": "0 0 * * *",
            "successfulRunsHistoryLimit": 2,
            "failedRunsHistoryLimit": 1,
            "template": {"metadata": {"labels": {"app": "mysql"}}, "spec": template},
            **spec,
        },
    }
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    if status is not None:
        body["status"] = copy.deepcopy(status)
    return body


def run(
    name: str,
    phase: str | None,
    at: float,
    *,
    schedule_name: str | None = "nightly",
    namespace: str = NAMESPACE,
    storage_name: str = "minio",
    keep: bool = False,
    size: int | None = None,
    scheduled: float | None = None,
    finished: float | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
) -> Body:
    """A BackupRun that started ``at`` hours after BASE (``phase`` None: not started yet)."""
    meta: Body = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "creationTimestamp": stamp(at),
        "labels": {LABEL_STORAGE: storage_name},
    }
    if schedule_name is not None:
        meta["labels"][LABEL_SCHEDULE] = schedule_name
    if keep:
        meta["annotations"] = {"backup-operator.io/keep": "true"}
    if scheduled is not None:
        meta.setdefault("annotations", {})["workflows.argoproj.io/scheduled-time"] = stamp(
            scheduled
        )
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = stamp(at + 1)
    spec = copy.deepcopy(TEMPLATE_SPEC)
    spec["storage"]["name"] = storage_name
    body: Body = {"apiVersion": API, "kind": "BackupRun", "metadata": meta, "spec": spec}
    if phase is not None:
        status: Body = {"phase": phase, "startTime": stamp(at)}
        if phase in ("Succeeded", "Failed", "Error"):
            status["completionTime"] = stamp(finished if finished is not None else at + 0.5)
        if size is not None:
            status["sizeInBytes"] = size
        body["status"] = status
    return body
