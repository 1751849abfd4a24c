"""The run's Pod as one Argo template: the streamer as ``main``, the user's containers around it.

One Pod per run (SEED.md): ``main`` runs ``streamer backup|restore … --pod $(POD_NAME)
--container C -- COMMAND``, which execs into container ``C``; every container of the user's
Pod template becomes an Argo sidecar, and pod-level settings are carried over to the Argo field
that holds them, or to ``podSpecPatch`` when Argo has none. Secrets reach the streamer only as
``secretKeyRef`` env and (for restore) a mounted Secret file; no value is ever copied.

Every name the streamer reads (subcommands, flags, environment variables, output files) comes
from :mod:`streamer.contract`, which the streamer's own command is built from.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hera.workflows import models as m

from generator.models import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    Action,
    BackupRunSpec,
    BackupStorage,
    Compression,
    ObjectLock,
    SecretKeyRef,
)
from generator.podtemplate import PodSpec, PodTemplate
from streamer.contract import ENCODED_TEMPLATE_PREFIX, LOCK_OUTPUTS, Env, Flag, Output, Subcommand

__all__ = [
    "DEADLINE_MARGIN_SECONDS",
    "IDENTITY_DIR",
    "IDENTITY_FILE",
    "IDENTITY_VOLUME",
    "OUTPUTS_DIR",
    "OUTPUTS_VOLUME",
    "OUTPUT_PARAMETERS",
    "PATH_PARAMETER",
    "SIDECAR_GRACE_SECONDS",
    "STREAMER_COMMAND",
    "ActionKind",
    "PodContext",
    "action_template",
    "bucket_url",
    "decryption_key",
    "k8s_literal",
    "object_lock_of",
    "output_files",
    "output_parameters",
    "pod_fields",
    "pod_template",
    "read_args",
    "step_metrics",
    "stored_object_url",
    "streamer_args",
    "streamer_container",
    "workflow_pod_fields",
]

ActionKind = Literal["backup", "restore"]

#: The streamer writes one file per output value here (the root filesystem is read-only).
OUTPUTS_DIR = "/var/run/backup-operator/outputs"
OUTPUTS_VOLUME = "backup-operator-outputs"
#: The age identity of a restore, mounted from the decryptionKey Secret.
IDENTITY_DIR = "/var/run/backup-operator/age"
IDENTITY_FILE = "identity"
IDENTITY_VOLUME = "backup-operator-age-identity"
#: The workflow parameter that names the object a restore reads.
PATH_PARAMETER = "path"
#: Output parameters of a backup, a subset of the files the streamer writes under
#: ``--outputs``. None has a default: a file the streamer stops writing fails the step.
#: Each is also a global output of the same name (``globalName``), so Argo copies it into the
#: Workflow's ``status.outputs.parameters``, which stays inline when the node status is
#: offloaded; the controller reads a run's results there.
OUTPUT_PARAMETERS = (Output.PATH, Output.URL, Output.SIZE, Output.SIZE_IN_BYTES, Output.SHA256)
# A backup with Object Lock also declares streamer.contract.LOCK_OUTPUTS (output_parameters):
# the streamer writes those files only when it is given a lock, and a declared file it does
# not write fails the step.
#: Argo's deadline is a backstop behind the streamer's own ``--deadline``, which stops the
#: command and aborts the upload cleanly; this margin lets the streamer act first.
DEADLINE_MARGIN_SECONDS = 60
#: The image's entrypoint, named so that Argo's executor never has to look it up in the
#: registry (it cannot for an image loaded into the nodes or behind pull credentials).
STREAMER_COMMAND = ("streamer",)
#: Sidecars such as ``sleep 1d`` ignore SIGTERM; a short grace period ends the Pod promptly.
SIDECAR_GRACE_SECONDS = 5

#: PodSpec fields Argo's template has no field for; they travel in ``podSpecPatch``.
_PATCHED_FIELDS = (
    "activeDeadlineSeconds",
    "enableServiceLinks",
    "hostIPC",
    "hostPID",
    "hostname",
    "nodeName",
    "preemptionPolicy",
    "priority",
    "runtimeClassName",
    "shareProcessNamespace",
    "subdomain",
    "terminationGracePeriodSeconds",
)


@dataclass(frozen=True)
class PodContext:
    """What one action's template needs besides the run spec."""

    image: str
    storage: BackupStorage
    #: Labels of the Pod and of the metrics (schedule or run, and storage).
    labels: Mapping[str, str]
    metric_labels: Mapping[str, str]
    #: Template variables for the path (``--var``); values may be Argo variables.
    variables: Mapping[str, str]
    #: The Secret in the run's namespace holding the storage's keys; None: the one the
    #: storage's ``spec.credentials`` names.
    credentials_secret: str | None = None


def k8s_literal(text: str) -> str:
    """Escape ``$(`` and ``$$`` so Kubernetes passes a container argument through unchanged."""
    return re.sub(r"\$(?=[$(])", "$$", text)


def object_lock_of(spec: BackupRunSpec, storage: BackupStorage) -> ObjectLock | None:
    """The lock of a run's backups: its own ``objectLock``, which replaces the storage's whole,
    else the storage's (a default for every run stored there)."""
    return spec.object_lock or storage.spec.object_lock


def output_parameters(spec: BackupRunSpec, storage: BackupStorage) -> tuple[str, ...]:
    """The outputs a run's backup declares: LOCK_OUTPUTS too when it is locked."""
    locked = object_lock_of(spec, storage) is not None
    return OUTPUT_PARAMETERS + LOCK_OUTPUTS if locked else OUTPUT_PARAMETERS


def _lock_args(lock: ObjectLock | None) -> list[str]:
    if lock is None:
        return []
    args: list[str] = []
    if lock.mode is not None and lock.days is not None:
        args += [Flag.OBJECT_LOCK_MODE, lock.mode, Flag.OBJECT_LOCK_DAYS, str(lock.days)]
    if lock.legal_hold:
        args.append(Flag.LEGAL_HOLD)
    return args


def bucket_url(storage: BackupStorage, key: str = "") -> str:
    return f"s3://{storage.spec.parameters.bucket}/{key}"


def _storage_args(storage: BackupStorage) -> list[str]:
    params = storage.spec.parameters
    args: list[str] = []
    if params.endpoint is not None:
        args += [Flag.ENDPOINT_URL, params.endpoint]
    if params.region is not None:
        args += [Flag.REGION, params.region]
    if params.s3_force_path_style == "true":
        args.append(Flag.PATH_STYLE)
    if params.insecure == "true":
        args.append(Flag.INSECURE)
    return args


def _env(ctx: PodContext) -> list[m.EnvVar]:
    params = ctx.storage.spec.parameters
    secret = ctx.credentials_secret or ctx.storage.spec.credentials.name

    def field(name: str, path: str) -> m.EnvVar:
        return m.EnvVar(
            name=name, value_from=m.EnvVarSource(field_ref=m.ObjectFieldSelector(field_path=path))
        )

    def secret_key(name: str, key: str) -> m.EnvVar:
        return m.EnvVar(
            name=name,
            value_from=m.EnvVarSource(secret_key_ref=m.SecretKeySelector(name=secret, key=key)),
        )

    env = [
        field(Env.POD_NAME, "metadata.name"),
        field(Env.POD_NAMESPACE, "metadata.namespace"),
        secret_key(Env.AWS_ACCESS_KEY_ID, params.access_key or DEFAULT_ACCESS_KEY),
        secret_key(Env.AWS_SECRET_ACCESS_KEY, params.secret_key or DEFAULT_SECRET_KEY),
    ]
    if params.part_checksums == "false":
        env.append(m.EnvVar(name=Env.AWS_REQUEST_CHECKSUM_CALCULATION, value="when_required"))
    return env


def _path_template(path: str) -> str:
    """Argo resolves ``{{…}}`` in container args itself and rejects tags it does not know."""
    if "{{" in path:
        return ENCODED_TEMPLATE_PREFIX + base64.b64encode(path.encode()).decode()
    return path


def stored_object_url(storage: BackupStorage) -> str:
    """The URL of the object a restore or drill reads: the key is the ``path`` parameter."""
    return bucket_url(storage, "{{workflow.parameters." + PATH_PARAMETER + "}}")


def read_args(spec: BackupRunSpec, storage: BackupStorage) -> list[str]:
    """The options of a command that reads a run's stored object back (restore, verify)."""
    args = _storage_args(storage)
    # The streamer detects gzip by its magic bytes, which data stored uncompressed may
    # start with too (a command that compresses on its own, e.g. tar -z).
    if (spec.compression or Compression()).algorithm == "none":
        args += [Flag.COMPRESSION, "none"]
    if decryption_key(spec) is not None:
        args += [Flag.IDENTITY, f"{IDENTITY_DIR}/{IDENTITY_FILE}"]
    return args


def decryption_key(spec: BackupRunSpec) -> SecretKeyRef | None:
    """The Secret key holding the age identity, mounted into the steps that read (only)."""
    return spec.encryption.decryption_key if spec.encryption is not None else None


def streamer_args(
    kind: ActionKind,
    spec: BackupRunSpec,
    action: Action,
    ctx: PodContext,
    options: Sequence[str] = (),
) -> list[str]:
    """``streamer backup|restore`` into ``action``'s container; ``options`` are added to the
    streamer's own (a drill's ``--outputs`` and ``--check``)."""
    if kind == "backup":
        args = [Subcommand.BACKUP, bucket_url(ctx.storage)]
    else:
        args = [Subcommand.RESTORE, stored_object_url(ctx.storage)]
    args += [Flag.POD, f"$({Env.POD_NAME})", Flag.NAMESPACE, f"$({Env.POD_NAMESPACE})"]
    args += [Flag.CONTAINER, action.container]
    if kind == "backup":
        compression = spec.compression or Compression()
        args += _storage_args(ctx.storage)
        args += [Flag.COMPRESSION, compression.algorithm]
        if compression.level is not None:
            args += [Flag.LEVEL, str(compression.level)]
        for recipient in spec.encryption.recipients if spec.encryption else ():
            args += [Flag.RECIPIENT, recipient]
        args += _lock_args(object_lock_of(spec, ctx.storage))
        args += [Flag.PATH_TEMPLATE, _path_template(spec.storage.path)]
        for name, value in sorted(ctx.variables.items()):
            args += [Flag.VAR, f"{name}={value}"]
        args += [Flag.OUTPUTS, OUTPUTS_DIR]
    else:
        args += read_args(spec, ctx.storage)
    args += options
    if action.deadline_seconds is not None:
        args += [Flag.DEADLINE, str(action.deadline_seconds)]
    args.append(Flag.END_OF_OPTIONS)
    args += [k8s_literal(a) for a in [*action.command, *(action.args or [])]]
    return args


def streamer_container(
    args: list[str], ctx: PodContext, *, outputs: bool, identity: bool
) -> m.Container:
    """The ``main`` container: the streamer, locked down, with the outputs directory and the
    age identity mounted when the step writes outputs and decrypts."""
    mounts: list[m.VolumeMount] = []
    if outputs:
        mounts.append(m.VolumeMount(name=OUTPUTS_VOLUME, mount_path=OUTPUTS_DIR))
    if identity:
        mounts.append(m.VolumeMount(name=IDENTITY_VOLUME, mount_path=IDENTITY_DIR, read_only=True))
    return m.Container(
        name="main",
        image=ctx.image,
        command=list(STREAMER_COMMAND),
        args=args,
        env=_env(ctx),
        volume_mounts=mounts or None,
        security_context=m.SecurityContext(
            read_only_root_filesystem=True,
            run_as_non_root=True,
            allow_privilege_escalation=False,
            capabilities=m.Capabilities(drop=["ALL"]),
        ),
    )


def _main(kind: ActionKind, spec: BackupRunSpec, action: Action, ctx: PodContext) -> m.Container:
    args = streamer_args(kind, spec, action, ctx)
    reads = kind == "restore" and decryption_key(spec) is not None
    return streamer_container(args, ctx, outputs=kind == "backup", identity=reads)


def step_metrics(kind: str, ctx: PodContext, what: str | None = None) -> m.Metrics:
    """A step's Prometheus metrics, ``backup_operator_<kind>_…`` (``what``: the step in words;
    default ``kind``). A backup also reports its stored size."""
    what = what or kind
    labels = [m.MetricLabel(key=k, value=v) for k, v in sorted(ctx.metric_labels.items())]
    metrics = [
        m.Prometheus(
            name=f"backup_operator_{kind}_duration_seconds",
            help=f"Duration of the last {what}, in seconds",
            labels=labels,
            gauge=m.Gauge(realtime=False, value="{{duration}}"),
        ),
        m.Prometheus(
            name=f"backup_operator_{kind}_total",
            help=f"Finished {what}s, by status",
            labels=[*labels, m.MetricLabel(key="status", value="{{status}}")],
            counter=m.Counter(value="1"),
        ),
    ]
    if kind == "backup":
        metrics.append(
            m.Prometheus(
                name="backup_operator_backup_size_bytes",
                help="Stored size of the last successful backup, in bytes",
                labels=labels,
                when="{{status}} == Succeeded",
                gauge=m.Gauge(
                    realtime=False, value=f"{{{{outputs.parameters.{Output.SIZE_IN_BYTES}}}}}"
                ),
            )
        )
    return m.Metrics(prometheus=metrics)


def _user_container(container: m.Container) -> m.UserContainer:
    return m.UserContainer.model_validate(container.model_dump(by_alias=True, exclude_none=True))


def _pod_patch(pod: PodSpec) -> str:
    raw = pod.model_dump(by_alias=True, exclude_none=True, mode="json")
    patch = {k: raw[k] for k in _PATCHED_FIELDS if k in raw}
    patch.setdefault("terminationGracePeriodSeconds", SIDECAR_GRACE_SECONDS)
    return json.dumps(patch, sort_keys=True, separators=(",", ":"))


def output_files(names: Sequence[str], default: str | None = None) -> m.Outputs:
    """Output parameters read from the streamer's ``--outputs`` files, each also a global
    output of the same name (see OUTPUT_PARAMETERS)."""
    return m.Outputs(
        parameters=[
            m.Parameter(
                name=name,
                global_name=name,
                value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{name}", default=default),
            )
            for name in names
        ]
    )


def action_template(kind: ActionKind, spec: BackupRunSpec, ctx: PodContext) -> m.Template:
    """The Argo template that runs one action of a run in its own Pod."""
    action = spec.backup if kind == "backup" else spec.restore
    if action is None:
        raise ValueError(f"the run has no {kind} action")  # callers check; a bug otherwise
    return pod_template(
        kind,
        spec.template,
        ctx,
        _main(kind, spec, action, ctx),
        deadline_seconds=action.deadline_seconds,
        outputs=output_files(output_parameters(spec, ctx.storage)) if kind == "backup" else None,
        metrics=step_metrics(kind, ctx),
    )


def pod_template(
    name: str,
    template: PodTemplate | None,
    ctx: PodContext,
    main: m.Container,
    *,
    deadline_seconds: int | None,
    outputs: m.Outputs | None,
    metrics: m.Metrics,
) -> m.Template:
    """An Argo template running ``main`` in a Pod of its own, built from the user's Pod
    template (its containers as sidecars); without one, the streamer alone."""
    meta = template.metadata if template else None
    deadline = deadline_seconds + DEADLINE_MARGIN_SECONDS if deadline_seconds else None
    common: dict[str, Any] = {
        "name": name,
        "metadata": m.Metadata(
            labels={**((meta.labels if meta else None) or {}), **ctx.labels},
            annotations=(meta.annotations if meta else None) or None,
        ),
        "active_deadline_seconds": m.IntOrString(deadline) if deadline else None,
        "container": main,
        "outputs": outputs,
        "metrics": metrics,
    }
    if template is None:
        return m.Template(**common)
    pod = template.spec
    return m.Template(
        **common,
        sidecars=[_user_container(c) for c in pod.containers],
        init_containers=[_user_container(c) for c in pod.init_containers or ()] or None,
        node_selector=pod.node_selector,
        tolerations=pod.tolerations,
        affinity=pod.affinity,
        security_context=pod.security_context,
        service_account_name=pod.service_account_name,
        automount_service_account_token=pod.automount_service_account_token,
        priority_class_name=pod.priority_class_name,
        scheduler_name=pod.scheduler_name,
        host_aliases=pod.host_aliases,
        pod_spec_patch=_pod_patch(pod),
    )


def workflow_pod_fields(kind: ActionKind, spec: BackupRunSpec) -> dict[str, Any]:
    """WorkflowSpec fields that come from the Pod template (volumes, pull secrets, DNS)."""
    key = decryption_key(spec) if kind == "restore" else None
    return pod_fields(spec.template.spec, outputs=kind == "backup", identity=key)


def pod_fields(
    pod: PodSpec | None, *, outputs: bool, identity: SecretKeyRef | None
) -> dict[str, Any]:
    """WorkflowSpec fields of a step's Pod: the template's volumes, pull secrets and DNS, and
    the streamer's outputs directory and age identity when it has them."""
    volumes: list[m.Volume] = list(pod.volumes or []) if pod else []
    if outputs:
        volumes.append(m.Volume(name=OUTPUTS_VOLUME, empty_dir=m.EmptyDirVolumeSource()))
    if identity is not None:
        volumes.append(
            m.Volume(
                name=IDENTITY_VOLUME,
                secret=m.SecretVolumeSource(
                    secret_name=identity.name,
                    items=[m.KeyToPath(key=identity.key, path=IDENTITY_FILE)],
                ),
            )
        )
    if pod is None:
        return {"volumes": volumes or None}
    return {
        "volumes": volumes or None,
        "image_pull_secrets": pod.image_pull_secrets,
        "dns_policy": pod.dns_policy,
        "dns_config": pod.dns_config,
        "host_network": pod.host_network,
    }
