"""What every rendered Argo object shares: the options, and metadata that reads well in Argo's UI.

Both :mod:`generator.render.workflow` (backups and restores) and :mod:`generator.render.drill`
(restore drills) build on it, so a run and its drill describe the same backup in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hera.workflows import models as m

from generator.models import BackupRunSpec, BackupStorage, Compression
from streamer import __version__

__all__ = [
    "ARGO_API_VERSION",
    "DEFAULT_IMAGE",
    "DEFAULT_SERVICE_ACCOUNT",
    "DESCRIPTION",
    "TITLE",
    "RenderOptions",
    "object_meta",
    "stored_as",
]

ARGO_API_VERSION = "argoproj.io/v1alpha1"
DEFAULT_IMAGE = f"ghcr.io/backup-operator/backup-operator:{__version__}"
#: The ServiceAccount of ``argo/namespace/workflow-rbac.yaml``: get pods, create pods/exec,
#: workflowtaskresults (the ClusterRole ``argo/workflow-clusterrole.yaml``, bound per namespace).
DEFAULT_SERVICE_ACCOUNT = "backup-operator-workflow"
TITLE = "workflows.argoproj.io/title"
DESCRIPTION = "workflows.argoproj.io/description"


@dataclass(frozen=True)
class RenderOptions:
    image: str = DEFAULT_IMAGE
    service_account: str = DEFAULT_SERVICE_ACCOUNT
    #: Namespace of generated objects whose source object names none.
    namespace: str | None = None
    #: Also render the restore Workflow of every run that has a restore action.
    restore: bool = False
    #: Rendered for the controller: the Workflows a CronWorkflow spawns carry
    #: ``FINALIZER_CATALOGUE`` until the controller has recorded them. Never for plain
    #: ``backup-gen render``: without a controller the Workflows could never be deleted.
    catalogue: bool = False
    #: The Secret, in each Workflow's own namespace, holding the storage's keys (the
    #: controller's copy); None: the Secret the storage's ``spec.credentials`` names.
    credentials_secret: str | None = None


def stored_as(spec: BackupRunSpec, storage: BackupStorage) -> str:
    """Where and how a run's backups are stored, in words for descriptions."""
    compression = spec.compression or Compression()
    if compression.algorithm == "none":
        parts = ["uncompressed"]
    elif compression.level is None:
        parts = ["gzip-compressed"]
    else:
        parts = [f"gzip-compressed at level {compression.level}"]
    if spec.encryption is not None:
        count = len(spec.encryption.recipients)
        parts.append(f"age-encrypted for {count} recipient{'s' if count > 1 else ''}")
    bucket = storage.spec.parameters.bucket
    return f"BackupStorage `{storage.metadata.name}` (bucket `{bucket}`), {', '.join(parts)}"


def object_meta(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    title: str,
    description: str,
) -> m.ObjectMeta:
    """An object's metadata, with the title and description Argo's UI shows."""
    return m.ObjectMeta(
        name=name,
        namespace=namespace,
        labels=dict(labels),
        annotations={TITLE: title, DESCRIPTION: description},
    )
