"""The Argo objects of each API object: pure functions from models to hera models.

- BackupSchedule → ``CronWorkflow`` (same name) running the backup, and, when the template has a
  restore action, a ``WorkflowTemplate`` ``<schedule>-restore`` with a required ``path``
  parameter: ``argo submit --from workflowtemplate/<schedule>-restore -p path=KEY``.
- BackupRun → ``Workflow`` (same name) running the backup, and ``<run>-restore`` restoring the
  run's object when asked (``restore=True``, the ``backup-operator.io/restore`` annotation, or a
  run that has only a restore action).
- A schedule with ``spec.verify`` → also a ``WorkflowTemplate`` ``<schedule>-verify``, its
  restore drill (:mod:`generator.render.drill`, where the Workflow of one drill is rendered).

Everything here is deterministic: the same objects give the same hera models, field for field.
"""

from __future__ import annotations

from collections.abc import Sequence

from hera.workflows import models as m

from generator.errors import Problem, ValidationFailed
from generator.models import (
    ANNOTATION_RESTORE,
    FINALIZER_CATALOGUE,
    LABEL_RUN,
    LABEL_SCHEDULE,
    LABEL_STORAGE,
    Action,
    BackupRun,
    BackupRunSpec,
    BackupSchedule,
    BackupStorage,
    Object,
)
from generator.render.drill import verify_template
from generator.render.meta import (
    ARGO_API_VERSION,
    DEFAULT_IMAGE,
    DEFAULT_SERVICE_ACCOUNT,
    DESCRIPTION,
    TITLE,
    RenderOptions,
    object_meta,
    stored_as,
)
from generator.render.pod import (
    PATH_PARAMETER,
    ActionKind,
    PodContext,
    action_template,
    object_lock_of,
    workflow_pod_fields,
)

__all__ = [
    "ARGO_API_VERSION",
    "DEFAULT_IMAGE",
    "DEFAULT_SERVICE_ACCOUNT",
    "DESCRIPTION",
    "TITLE",
    "ArgoObject",
    "RenderOptions",
    "render_objects",
    "render_run",
    "render_schedule",
]

ArgoObject = m.Workflow | m.CronWorkflow | m.WorkflowTemplate


def _lock_text(spec: BackupRunSpec, storage: BackupStorage) -> str:
    lock = object_lock_of(spec, storage)
    if lock is None:
        return ""
    parts = [f"{lock.mode} for {lock.days} days"] if lock.mode else []
    if lock.legal_hold:
        parts.append("a legal hold")
    return f", locked with S3 Object Lock ({' and '.join(parts)})"


def _backup_text(action: Action, spec: BackupRunSpec, storage: BackupStorage) -> str:
    where = stored_as(spec, storage) + _lock_text(spec, storage)
    return f"Backs up container `{action.container}` to {where}."


def _restore_text(action: Action, spec: BackupRunSpec, storage: BackupStorage) -> str:
    return f"Restores into container `{action.container}` from {stored_as(spec, storage)}."


def _spec(
    kind: ActionKind,
    spec: BackupRunSpec,
    ctx: PodContext,
    options: RenderOptions,
    *,
    arguments: m.Arguments | None = None,
    workflow_metadata: m.WorkflowMetadata | None = None,
) -> m.WorkflowSpec:
    return m.WorkflowSpec(
        entrypoint=kind,
        service_account_name=options.service_account,
        arguments=arguments,
        workflow_metadata=workflow_metadata,
        templates=[action_template(kind, spec, ctx)],
        **workflow_pod_fields(kind, spec),
    )


def _path_argument(value: str | None) -> m.Arguments:
    return m.Arguments(
        parameters=[
            m.Parameter(
                name=PATH_PARAMETER,
                value=value,
                description="The object key to restore: the path output of a backup.",
            )
        ]
    )


def render_schedule(
    schedule: BackupSchedule, storage: BackupStorage, options: RenderOptions
) -> list[ArgoObject]:
    """The CronWorkflow of a schedule, and its restore WorkflowTemplate when it can restore."""
    name = schedule.metadata.name
    namespace = schedule.metadata.namespace or options.namespace
    spec = schedule.spec.template.spec
    run_meta = schedule.spec.template.metadata
    labels = {LABEL_SCHEDULE: name, LABEL_STORAGE: storage.metadata.name}
    ctx = PodContext(
        image=options.image,
        storage=storage,
        labels=labels,
        metric_labels={"schedule": name, "storage": storage.metadata.name},
        variables={
            "namespace": "{{workflow.namespace}}",
            "run": "{{workflow.name}}",
            "schedule": name,
            "workflow": "{{workflow.name}}",
        },
        credentials_secret=options.credentials_secret,
    )
    objects: list[ArgoObject] = []
    if spec.backup is not None:
        title = f"Backup {name}"
        text = _backup_text(spec.backup, spec, storage)
        cron = m.CronWorkflow(
            api_version=ARGO_API_VERSION,
            kind="CronWorkflow",
            metadata=object_meta(name, namespace, labels, title, text),
            spec=m.CronWorkflowSpec(
                schedules=[schedule.spec.schedule],
                timezone=schedule.spec.time_zone,
                concurrency_policy=schedule.spec.concurrency_policy,
                starting_deadline_seconds=schedule.spec.starting_deadline_seconds,
                suspend=schedule.spec.suspend,
                successful_jobs_history_limit=schedule.spec.successful_runs_history_limit,
                failed_jobs_history_limit=schedule.spec.failed_runs_history_limit,
                workflow_metadata=m.ObjectMeta(
                    labels={**((run_meta.labels if run_meta else None) or {}), **labels},
                    annotations={
                        **((run_meta.annotations if run_meta else None) or {}),
                        TITLE: title,
                        DESCRIPTION: text,
                    },
                    finalizers=[FINALIZER_CATALOGUE] if options.catalogue else None,
                ),
                workflow_spec=_spec("backup", spec, ctx, options),
            ),
        )
        objects.append(cron)
    if spec.restore is not None:
        title = f"Restore {name}"
        text = (
            f"{_restore_text(spec.restore, spec, storage)} Submit with `argo submit --from "
            f"workflowtemplate/{name}-restore -p path=KEY`."
        )
        objects.append(
            m.WorkflowTemplate(
                api_version=ARGO_API_VERSION,
                kind="WorkflowTemplate",
                metadata=object_meta(f"{name}-restore", namespace, labels, title, text),
                spec=_spec(
                    "restore",
                    spec,
                    ctx,
                    options,
                    arguments=_path_argument(None),
                    workflow_metadata=m.WorkflowMetadata(
                        labels=dict(labels), annotations={TITLE: title, DESCRIPTION: text}
                    ),
                ),
            )
        )
    if schedule.spec.verify is not None:
        objects.append(verify_template(schedule, schedule.spec.verify, storage, options))
    return objects


def _restore_path(run: BackupRun) -> str | None:
    if run.status is not None and run.status.path:
        return run.status.path
    if run.spec.backup is None:
        return run.spec.storage.path
    return None


def render_run(run: BackupRun, storage: BackupStorage, options: RenderOptions) -> list[ArgoObject]:
    """The backup Workflow of a run, and its restore Workflow when one is asked for."""
    name = run.metadata.name
    namespace = run.metadata.namespace or options.namespace
    spec = run.spec
    schedule = (run.metadata.labels or {}).get(LABEL_SCHEDULE, "")
    labels = {LABEL_RUN: name, LABEL_STORAGE: storage.metadata.name}
    if schedule:
        labels[LABEL_SCHEDULE] = schedule
    metric_labels = {"run": name, "storage": storage.metadata.name}
    variables = {
        "namespace": "{{workflow.namespace}}",
        "run": name,
        "schedule": schedule,
        "workflow": "{{workflow.name}}",
    }
    ctx = PodContext(
        options.image, storage, labels, metric_labels, variables, options.credentials_secret
    )
    objects: list[ArgoObject] = []
    if spec.backup is not None:
        text = _backup_text(spec.backup, spec, storage)
        objects.append(
            m.Workflow(
                api_version=ARGO_API_VERSION,
                kind="Workflow",
                metadata=object_meta(name, namespace, labels, f"Backup {name}", text),
                spec=_spec("backup", spec, ctx, options),
            )
        )
    wanted = (
        options.restore
        or ANNOTATION_RESTORE in (run.metadata.annotations or {})
        or spec.backup is None
    )
    if wanted:
        label = f"BackupRun/{name}"
        if spec.restore is None:
            raise ValidationFailed(
                [Problem(label, "spec.restore", "a restore was asked for, but the run has none")]
            )
        path = _restore_path(run)
        if path is None:
            raise ValidationFailed(
                [Problem(label, "status.path", "nothing to restore yet: the backup has no path")]
            )
        text = _restore_text(spec.restore, spec, storage)
        objects.append(
            m.Workflow(
                api_version=ARGO_API_VERSION,
                kind="Workflow",
                metadata=object_meta(f"{name}-restore", namespace, labels, f"Restore {name}", text),
                spec=_spec("restore", spec, ctx, options, arguments=_path_argument(path)),
            )
        )
    return objects


def render_objects(objects: Sequence[Object], options: RenderOptions) -> list[ArgoObject]:
    """Argo objects for checked API objects (see :func:`generator.checks.validate_documents`)."""
    storages = {o.metadata.name: o for o in objects if isinstance(o, BackupStorage)}
    rendered: list[ArgoObject] = []
    for obj in objects:
        if isinstance(obj, BackupSchedule):
            storage = storages[obj.spec.template.spec.storage.name]
            rendered.extend(render_schedule(obj, storage, options))
        elif isinstance(obj, BackupRun):
            rendered.extend(render_run(obj, storages[obj.spec.storage.name], options))
    return rendered
