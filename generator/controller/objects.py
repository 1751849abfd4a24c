"""Reading and building the objects a BackupRun's decisions work with, as plain dicts.

Names (the Workflow of a run, the Workflow of a restore request), owner references, the models
of a run and a storage for rendering, the rendered Workflows as bodies, and a storage's
readiness. Shared by :mod:`generator.controller.runs`, :mod:`generator.controller.restores`
and :mod:`generator.controller.catalogue`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from generator.controller.names import (
    ANNOTATION_LAST_RESTORE,
    ANNOTATION_RECORDS,
    LABEL_CRON_WORKFLOW,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    copied_secret_name,
)
from generator.controller.settings import Settings
from generator.errors import ValidationFailed
from generator.models import (
    ANNOTATION_RESTORE,
    API_VERSION,
    BackupRun,
    BackupRunSpec,
    BackupRunStatus,
    BackupStorage,
    BackupStorageSpec,
    ObjectMeta,
)
from generator.render import ArgoObject, RenderOptions

__all__ = [
    "Body",
    "is_catalogued",
    "meta_of",
    "owner_reference",
    "parse_run",
    "parse_storage",
    "render_options",
    "restore_workflow_name",
    "run_workflow_name",
    "spec_of",
    "spec_problems",
    "storage_name",
    "workflow_body",
]

Body = dict[str, Any]


def meta_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def spec_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def storage_name(run: Mapping[str, Any]) -> str:
    storage = spec_of(run).get("storage")
    return str(storage.get("name", "")) if isinstance(storage, Mapping) else ""


def is_catalogued(run: Mapping[str, Any]) -> bool:
    """Whether a run records a Workflow that Argo spawned (then none is ever created for it)."""
    meta = meta_of(run)
    return LABEL_CRON_WORKFLOW in (meta.get("labels") or {}) or ANNOTATION_RECORDS in (
        meta.get("annotations") or {}
    )


def run_workflow_name(run: Mapping[str, Any]) -> str:
    """The Workflow that carries a run out: the one it records, else the run's own (named
    after the run; ``<run>-restore`` for a run with only a restore action)."""
    meta = meta_of(run)
    recorded = (meta.get("annotations") or {}).get(ANNOTATION_RECORDS)
    if recorded:
        return str(recorded)
    name = str(meta.get("name", ""))
    return name if spec_of(run).get("backup") else f"{name}-restore"


def restore_workflow_name(run: Mapping[str, Any]) -> str | None:
    """The Workflow of the run's pending restore request, None without one.

    ``<run>-restore-<hash>``, the hash of the annotation's value and of the last request
    handled: the same while a request is pending (across restarts too), new for the next one,
    even with the same value.
    """
    meta = meta_of(run)
    annotations = meta.get("annotations") or {}
    value = annotations.get(ANNOTATION_RESTORE)
    if value is None:
        return None
    seed = f"{value}\n{annotations.get(ANNOTATION_LAST_RESTORE, '')}".encode()
    return f"{meta.get('name', '')}-restore-{hashlib.sha256(seed).hexdigest()[:8]}"


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """An owner reference to ``body`` (controller, blocking its deletion until collected)."""
    return {
        "apiVersion": body.get("apiVersion") or API_VERSION,
        "kind": body.get("kind"),
        "name": meta_of(body).get("name"),
        "uid": meta_of(body).get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def spec_problems(exc: ValidationError | ValidationFailed) -> str:
    """What is wrong with a spec, by field path: never the offending value, which could be a
    credential the user put in an env var."""
    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"spec.{where}: {error['msg']}" if where else f"spec: {error['msg']}")
    return "; ".join(parts)


def parse_run(run: Mapping[str, Any], *, restore_path: str | None = None) -> BackupRun:
    """The model of a run's metadata and spec (its status is ours, and not parsed), for
    rendering. Without ``restore_path`` the restore annotation is left out, so only the run's
    own Workflow renders; with it, it is ``status.path``, the object the restore reads.
    Raises ValidationError."""
    meta = dict(meta_of(run))
    if restore_path is None and ANNOTATION_RESTORE in (meta.get("annotations") or {}):
        annotations = dict(meta["annotations"])
        del annotations[ANNOTATION_RESTORE]
        meta["annotations"] = annotations
    return BackupRun(
        metadata=ObjectMeta.model_validate(meta),
        spec=BackupRunSpec.model_validate(spec_of(run)),
        status=BackupRunStatus(path=restore_path) if restore_path else None,
    )


def parse_storage(storage: Mapping[str, Any]) -> BackupStorage:
    """The model of a storage's metadata and spec. Raises ValidationError."""
    return BackupStorage(
        metadata=ObjectMeta.model_validate(meta_of(storage)),
        spec=BackupStorageSpec.model_validate(spec_of(storage)),
    )


def render_options(settings: Settings, storage: str) -> RenderOptions:
    """How the controller renders a run's Workflows: they read the copy of ``storage``'s
    credentials in their own namespace."""
    return RenderOptions(
        image=settings.image,
        service_account=settings.service_account,
        credentials_secret=copied_secret_name(storage),
    )


def workflow_body(
    obj: ArgoObject,
    owner: Mapping[str, Any],
    *,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Body:
    """A rendered Workflow as the API server takes it, owned by ``owner``, renamed ``name``."""
    # generator.generate.argo_dict's dump; the controller's layer does not import generate.
    body: Body = obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    meta = body["metadata"]
    if name is not None:
        meta["name"] = name
    meta["labels"] = {**meta.get("labels", {}), LABEL_MANAGED_BY: MANAGED_BY, **(labels or {})}
    meta["ownerReferences"] = [owner_reference(owner)]
    return body
