"""A restore drill as one Argo template: read one stored backup back, and prove it is whole.

A drill never touches the backed-up data. Its level (``spec.verify.level``) decides what runs:

- ``integrity``: the streamer alone, ``streamer verify s3://BUCKET/KEY --sha256 HEX``: it
  downloads, decrypts and decompresses the object and compares its SHA-256 with the one the
  backup recorded; no user container, no exec.
- ``restore``: the run's restore, ``streamer restore … --check …``, but into the scratch Pod of
  ``verify.template`` (e.g. a throwaway database) with ``verify.restore`` (default: the run's
  own restore action); the ``--check`` command then decides.

The object's key and the recorded SHA-256 are the workflow parameters ``path`` and ``sha256``
(integrity only: ``streamer restore`` takes no expected digest), so :func:`render_drill` (the
Workflow of one finished backup's drill, which the controller submits) and
:func:`verify_template` (``<schedule>-verify``, which a user submits with ``argo submit --from
workflowtemplate/<schedule>-verify -p path=KEY -p sha256=HEX``) share one template. Its
step, flags, volumes and the way secrets reach it are a run's own (:mod:`generator.render.pod`);
only the command line and the outputs differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from hera.workflows import models as m

from generator.errors import Problem, ValidationFailed
from generator.models import (
    LABEL_SCHEDULE,
    LABEL_STORAGE,
    LABEL_VERIFIES,
    LABEL_VERIFY_LEVEL,
    LABEL_VERIFY_OF,
    Action,
    BackupRun,
    BackupRunSpec,
    BackupSchedule,
    BackupStorage,
    Check,
    Verify,
)
from generator.podtemplate import PodTemplate
from generator.render.meta import (
    ARGO_API_VERSION,
    DESCRIPTION,
    TITLE,
    RenderOptions,
    object_meta,
    stored_as,
)
from generator.render.pod import (
    OUTPUTS_DIR,
    PATH_PARAMETER,
    PodContext,
    decryption_key,
    k8s_literal,
    output_files,
    pod_fields,
    pod_template,
    read_args,
    step_metrics,
    stored_object_url,
    streamer_args,
    streamer_container,
)
from streamer.contract import FAILURE_OUTPUTS, OUTPUTS, Flag, Subcommand

__all__ = [
    "DRILL_OUTPUTS",
    "DRILL_TEMPLATE",
    "SHA256_PARAMETER",
    "drill_action",
    "drill_labels",
    "drill_parameters",
    "drill_parts",
    "drill_pod_fields",
    "drill_template",
    "render_drill",
    "verify_template",
]

#: The drill's one template (the Workflow's entrypoint), and the prefix of its metrics.
DRILL_TEMPLATE: Final = "verify"
#: The workflow parameter holding the SHA-256 the backup recorded; empty: not compared.
SHA256_PARAMETER: Final = "sha256"
#: The drill's output parameters: what the streamer writes under ``--outputs`` on success
#: (every OUTPUTS value), and on failure (FAILURE_OUTPUTS, why). Each exists in one outcome
#: only, so each has an empty default: without one, Argo's executor stops collecting at the
#: first missing file and a failed drill would lose the reason it failed.
DRILL_OUTPUTS: Final = FAILURE_OUTPUTS + OUTPUTS


def _parameter(name: str) -> str:
    return "{{workflow.parameters." + name + "}}"


def drill_parts(
    verify: Verify, spec: BackupRunSpec, *, schedule: str, run: str | None = None
) -> tuple[PodTemplate | None, Action | None]:
    """The scratch Pod and restore action of a drill of ``spec``'s backups (the run's spec,
    or the schedule's template when ``run`` is None); (None, None) for an integrity drill.

    Checked objects always have what their drill needs (:func:`generator.checks.check_verify`);
    otherwise :class:`ValidationFailed` says what is missing, and where.
    """
    label = f"BackupSchedule/{schedule}"
    problems = []
    if spec.encryption is not None and decryption_key(spec) is None:
        owner, where = (
            (label, "spec.template.spec") if run is None else (f"BackupRun/{run}", "spec")
        )
        problems.append(
            Problem(
                owner,
                f"{where}.encryption.decryptionKey",
                "required: a drill decrypts the backup; add the Secret key holding the age "
                "identity",
            )
        )
    if verify.level == "integrity":
        if problems:
            raise ValidationFailed(problems)
        return None, None
    action = drill_action(verify, spec)
    if verify.template is None:
        problems.append(
            Problem(
                label,
                "spec.verify.template",
                "required: a restore drill restores into a scratch Pod of its own",
            )
        )
    if action is None:
        problems.append(
            Problem(
                label,
                "spec.verify.restore",
                "required: a restore drill needs a restore action; add one here, or to the "
                "schedule's template",
            )
        )
    if problems:
        raise ValidationFailed(problems)
    return verify.template, action


def drill_action(verify: Verify, spec: BackupRunSpec) -> Action | None:
    """The restore action of a restore drill: its own, else the run's."""
    return verify.restore or spec.restore


def _check_args(check: Check | None, action: Action) -> list[str]:
    """``--check`` once per argument of the check command (the contract's form)."""
    if check is None:
        return []
    args: list[str] = []
    for arg in [*check.command, *(check.args or [])]:
        args += [Flag.CHECK, k8s_literal(arg)]
    if check.container is not None and check.container != action.container:
        args += [Flag.CHECK_CONTAINER, check.container]
    return args


def _verify_args(spec: BackupRunSpec, ctx: PodContext) -> list[str]:
    args = [Subcommand.VERIFY, stored_object_url(ctx.storage), *read_args(spec, ctx.storage)]
    return [*args, Flag.SHA256, _parameter(SHA256_PARAMETER), Flag.OUTPUTS, OUTPUTS_DIR]


def drill_template(
    verify: Verify, spec: BackupRunSpec, ctx: PodContext, *, schedule: str, run: str | None = None
) -> m.Template:
    """The Argo template of a drill of one of ``spec``'s backups: its storage, compression and
    encryption say how to read the object back (see :func:`drill_parts`)."""
    template, action = drill_parts(verify, spec, schedule=schedule, run=run)
    identity = decryption_key(spec) is not None
    outputs = output_files(DRILL_OUTPUTS, default="")
    metrics = step_metrics(DRILL_TEMPLATE, ctx, "restore drill")
    if action is None:  # integrity
        main = streamer_container(_verify_args(spec, ctx), ctx, outputs=True, identity=identity)
        return pod_template(
            DRILL_TEMPLATE, None, ctx, main, deadline_seconds=None, outputs=outputs, metrics=metrics
        )
    options = [
        Flag.SHA256,
        _parameter(SHA256_PARAMETER),
        Flag.OUTPUTS,
        OUTPUTS_DIR,
        *_check_args(verify.check, action),
    ]
    args = streamer_args("restore", spec, action, ctx, options)
    return pod_template(
        DRILL_TEMPLATE,
        template,
        ctx,
        streamer_container(args, ctx, outputs=True, identity=identity),
        deadline_seconds=action.deadline_seconds,
        outputs=outputs,
        metrics=metrics,
    )


def drill_pod_fields(verify: Verify, spec: BackupRunSpec) -> dict[str, Any]:
    """WorkflowSpec fields of the drill's Pod: the scratch Pod's volumes, pull secrets and DNS
    (level restore), the outputs directory and the age identity."""
    pod = verify.template.spec if verify.level == "restore" and verify.template else None
    return pod_fields(pod, outputs=True, identity=decryption_key(spec))


def drill_parameters(verify: Verify, path: str | None, sha256: str | None) -> m.Arguments:
    """The drill's workflow parameters: ``path`` (None: required) and ``sha256`` (None or
    empty: not compared; a restore drill compares it once the restore has read it all)."""
    parameters = [
        m.Parameter(
            name=PATH_PARAMETER,
            value=path,
            description="The object key to check: the path output of a backup.",
        )
    ]
    parameters.append(
        m.Parameter(
            name=SHA256_PARAMETER,
            value=sha256 or "",
            description="The SHA-256 the backup recorded (its sha256 output); the drill "
            "fails unless the stored object has it. Empty: not compared.",
        )
    )
    return m.Arguments(parameters=parameters)


# --- the drill's objects ------------------------------------------------------------------


def drill_labels(
    schedule: str, storage: BackupStorage, verify: Verify, run: str | None = None
) -> dict[str, str]:
    """The labels of a drill's objects (and Pod): the schedule it drills (LABEL_SCHEDULE and
    LABEL_VERIFY_OF), the storage, the level, and the BackupRun it checks (LABEL_VERIFIES;
    None for the WorkflowTemplate, which checks whatever key it is given). Never LABEL_RUN:
    a drill is not one of the run's own Workflows."""
    labels = {
        LABEL_SCHEDULE: schedule,
        LABEL_STORAGE: storage.metadata.name,
        LABEL_VERIFY_OF: schedule,
        LABEL_VERIFY_LEVEL: verify.level,
    }
    if run is not None:
        labels[LABEL_VERIFIES] = run
    return labels


def _drill_context(
    schedule: str,
    storage: BackupStorage,
    verify: Verify,
    labels: Mapping[str, str],
    options: RenderOptions,
) -> PodContext:
    metric_labels = {"schedule": schedule, "storage": storage.metadata.name, "level": verify.level}
    return PodContext(options.image, storage, labels, metric_labels, {}, options.credentials_secret)


def _drill_text(
    verify: Verify,
    spec: BackupRunSpec,
    storage: BackupStorage,
    *,
    schedule: str,
    run: str | None = None,
) -> str:
    _, action = drill_parts(verify, spec, schedule=schedule, run=run)
    where = f"Restore drill of a backup in {stored_as(spec, storage)}"
    if action is None:
        return (
            f"{where}: reads it back through every layer and compares its SHA-256 with the "
            "one recorded; restores nothing."
        )
    then = ""
    if verify.check is not None:
        container = verify.check.container or action.container
        then = (
            " and checks it there"
            if container == action.container
            else (f" and checks it in container `{container}`")
        )
    return (
        f"{where}: restores it into container `{action.container}` of a scratch Pod{then}; "
        "the backed-up data is not touched."
    )


def _drill_spec(
    verify: Verify,
    spec: BackupRunSpec,
    ctx: PodContext,
    options: RenderOptions,
    arguments: m.Arguments,
    *,
    schedule: str,
    run: str | None = None,
    workflow_metadata: m.WorkflowMetadata | None = None,
) -> m.WorkflowSpec:
    return m.WorkflowSpec(
        entrypoint=DRILL_TEMPLATE,
        service_account_name=options.service_account,
        arguments=arguments,
        active_deadline_seconds=verify.deadline_seconds,
        workflow_metadata=workflow_metadata,
        templates=[drill_template(verify, spec, ctx, schedule=schedule, run=run)],
        **drill_pod_fields(verify, spec),
    )


def verify_template(
    schedule: BackupSchedule, verify: Verify, storage: BackupStorage, options: RenderOptions
) -> m.WorkflowTemplate:
    """``<schedule>-verify``: the drill of any one backup of the schedule, submitted by hand."""
    name = schedule.metadata.name
    spec = schedule.spec.template.spec
    labels = drill_labels(name, storage, verify)
    title = f"Verify {name}"
    submit = (
        f"argo submit --from workflowtemplate/{name}-verify -p {PATH_PARAMETER}=KEY "
        f"-p {SHA256_PARAMETER}=HEX"
    )
    text = f"{_drill_text(verify, spec, storage, schedule=name)} Submit with `{submit}`."
    return m.WorkflowTemplate(
        api_version=ARGO_API_VERSION,
        kind="WorkflowTemplate",
        metadata=object_meta(
            f"{name}-verify",
            schedule.metadata.namespace or options.namespace,
            labels,
            title,
            text,
        ),
        spec=_drill_spec(
            verify,
            spec,
            _drill_context(name, storage, verify, labels, options),
            options,
            drill_parameters(verify, None, None),
            schedule=name,
            workflow_metadata=m.WorkflowMetadata(
                labels=dict(labels), annotations={TITLE: title, DESCRIPTION: text}
            ),
        ),
    )


def render_drill(
    run: BackupRun,
    verify: Verify,
    storage: BackupStorage,
    options: RenderOptions,
    *,
    name: str,
    schedule: str,
) -> m.Workflow:
    """The Workflow ``name`` of the restore drill of one finished backup: ``run``'s stored
    object (``status.path``) read back as its spec wrote it, checked against its recorded
    ``status.sha256`` (integrity) or restored into ``verify``'s scratch Pod (restore).

    ``schedule`` is the BackupSchedule whose ``spec.verify`` is ``verify``. Raises
    :class:`ValidationFailed` when the run has no stored object yet, or the drill cannot run.
    """
    path = run.status.path if run.status is not None else None
    if not path:
        problem = Problem(
            f"BackupRun/{run.metadata.name}",
            "status.path",
            "nothing to verify yet: the backup has no path",
        )
        raise ValidationFailed([problem])
    sha256 = run.status.sha256 if run.status is not None else None
    labels = drill_labels(schedule, storage, verify, run.metadata.name)
    text = _drill_text(verify, run.spec, storage, schedule=schedule, run=run.metadata.name)
    return m.Workflow(
        api_version=ARGO_API_VERSION,
        kind="Workflow",
        metadata=object_meta(
            name,
            run.metadata.namespace or options.namespace,
            labels,
            f"Verify {run.metadata.name}",
            text,
        ),
        spec=_drill_spec(
            verify,
            run.spec,
            _drill_context(schedule, storage, verify, labels, options),
            options,
            drill_parameters(verify, path, sha256),
            schedule=schedule,
            run=run.metadata.name,
        ),
    )
