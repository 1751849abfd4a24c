"""The names the controller puts on objects and reads from them, in one place.

Finalizers, labels and annotations of our own, the ones Argo sets on the Workflows it spawns,
Argo's Workflow phases, and the condition types of our objects' status.
"""

from __future__ import annotations

import hashlib
from typing import Final

from generator.models import FINALIZER_CATALOGUE, GROUP

__all__ = [
    "ANNOTATION_LAST_RESTORE",
    "ANNOTATION_RECORDS",
    "ANNOTATION_SCHEDULED_TIME",
    "COMPLETED",
    "CONDITION_COMPRESSED",
    "CONDITION_ENCRYPTED",
    "CONDITION_FAILED",
    "CONDITION_IN_PROGRESS",
    "CONDITION_IN_USE",
    "CONDITION_LOCKED",
    "CONDITION_READY",
    "CONDITION_RESTORABLE",
    "CONDITION_RESTORED",
    "CONDITION_STORED_OBJECT_DELETED",
    "CONDITION_SUCCESSFUL",
    "CONDITION_USERS_ALLOWED",
    "CONDITION_VERIFIED",
    "FIELD_MANAGER",
    "FINALIZER_CATALOGUE",
    "FINALIZER_IN_USE",
    "FINALIZER_STORED_OBJECT",
    "LABEL_CREDENTIALS_OF",
    "LABEL_CRON_WORKFLOW",
    "LABEL_MANAGED_BY",
    "LABEL_RESTORE_OF",
    "LABEL_WORKFLOW_TEMPLATE",
    "MANAGED_BY",
    "PHASE_ERROR",
    "PHASE_FAILED",
    "PHASE_PENDING",
    "PHASE_RUNNING",
    "PHASE_SUCCEEDED",
    "PHASE_UNKNOWN",
    "copied_secret_name",
]

#: The field manager of every server-side apply of the controller.
FIELD_MANAGER: Final = "backup-operator"

#: On BackupRuns with ``retainPolicy: Delete``: their stored object is deleted before they go.
FINALIZER_STORED_OBJECT: Final = f"{GROUP}/stored-object"
#: On cron-spawned Workflows (through ``workflowMetadata``): held until the run is recorded.
# FINALIZER_CATALOGUE comes from generator.models: the renderer puts it on CronWorkflows.
#: On BackupStorages: deletion is held while schedules or runs use the storage.
FINALIZER_IN_USE: Final = f"{GROUP}/in-use"

# Set by Argo on the Workflows it spawns.
LABEL_CRON_WORKFLOW: Final = "workflows.argoproj.io/cron-workflow"
LABEL_WORKFLOW_TEMPLATE: Final = "workflows.argoproj.io/workflow-template"
ANNOTATION_SCHEDULED_TIME: Final = "workflows.argoproj.io/scheduled-time"

LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "backup-operator"
#: On restore Workflows: the name of the BackupRun whose object they restore.
LABEL_RESTORE_OF: Final = f"{GROUP}/restore-of"
#: On copied credentials Secrets: the name of the BackupStorage they belong to.
LABEL_CREDENTIALS_OF: Final = f"{GROUP}/credentials-of"
#: On catalogued BackupRuns: the name of the Workflow the run records (no Workflow is
#: ever created for such a run).
ANNOTATION_RECORDS: Final = f"{GROUP}/records-workflow"
#: On BackupRuns: the restore Workflow of the last restore request handled. A request with
#: the same value as an earlier one names a new Workflow, since this annotation changed.
ANNOTATION_LAST_RESTORE: Final = f"{GROUP}/last-restore"

# Argo's Workflow phases ("" before the Workflow controller has seen the Workflow).
PHASE_UNKNOWN: Final = ""
PHASE_PENDING: Final = "Pending"
PHASE_RUNNING: Final = "Running"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
PHASE_ERROR: Final = "Error"
#: The phases a Workflow never leaves.
COMPLETED: Final = frozenset({PHASE_SUCCEEDED, PHASE_FAILED, PHASE_ERROR})

# Condition types of a BackupRun's status.
CONDITION_IN_PROGRESS: Final = "InProgress"
CONDITION_SUCCESSFUL: Final = "Successful"
CONDITION_FAILED: Final = "Failed"
CONDITION_RESTORABLE: Final = "Restorable"
CONDITION_ENCRYPTED: Final = "Encrypted"
CONDITION_COMPRESSED: Final = "Compressed"
CONDITION_VERIFIED: Final = "Verified"
#: The last restore request: in progress (Unknown), done (True), failed or refused (False).
CONDITION_RESTORED: Final = "Restored"
#: Set (False) while a deleted run's stored object cannot be deleted, saying why.
CONDITION_STORED_OBJECT_DELETED: Final = "StoredObjectDeleted"
#: A backup with S3 Object Lock: whether its stored object was read back locked, until when.
CONDITION_LOCKED: Final = "Locked"
# Condition type of a BackupSchedule's and a BackupStorage's status.
CONDITION_READY: Final = "Ready"
# Condition types of a BackupStorage's status besides Ready.
#: Schedules or runs use the storage (its deletion is held while they do).
CONDITION_IN_USE: Final = "InUse"
#: No schedule or run in a namespace outside ``spec.allowedNamespaces`` uses the storage.
CONDITION_USERS_ALLOWED: Final = "UsersAllowed"

_COPY_SUFFIX = "-backup-credentials"
_MAX_NAME = 253


def copied_secret_name(storage: str) -> str:
    """The name of a BackupStorage's credentials copy in each namespace that uses it.

    A storage name too long for the suffix is shortened, with a hash of the whole name so
    that two long names never share a copy.
    """
    name = storage + _COPY_SUFFIX
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(storage.encode()).hexdigest()[:8]
    head = storage[: _MAX_NAME - len(_COPY_SUFFIX) - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}{_COPY_SUFFIX}"
