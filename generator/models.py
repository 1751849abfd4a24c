"""The API users write: BackupStorage, BackupSchedule and BackupRun, as typed pydantic models.

These models are the single source of truth for the API: the CRDs in ``crds/`` are generated
from them (:mod:`generator.crds`), including the CEL rules (``x-kubernetes-validations``) that
the API server enforces. The same rules are checked in Python by :mod:`generator.checks`, with
field paths, so ``backup-gen validate`` reports what ``kubectl apply`` would refuse, and more
(cron syntax, time zones, age recipients, path templates) that a schema cannot express.

The module is longer than most here on purpose: it is the whole API, field by field with the
descriptions ``kubectl explain`` shows, and splitting one CRD's models across files would hide
how the three kinds share their parts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from generator.podtemplate import DNS_LABEL, PodTemplate
from streamer.contract import DEFAULT_LEVEL, MAX_LEVEL, MAX_LOCK_DAYS, MIN_LEVEL

__all__ = [
    "ANNOTATION_KEEP",
    "ANNOTATION_RESTORE",
    "ANNOTATION_RESTORED_AT",
    "ANNOTATION_TRIGGER",
    "API_VERSION",
    "BUCKET_PATTERN",
    "CRON_PATTERN",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "FINALIZER_CATALOGUE",
    "GROUP",
    "KINDS",
    "LABEL_RUN",
    "LABEL_SCHEDULE",
    "LABEL_STORAGE",
    "LABEL_VERIFIES",
    "LABEL_VERIFY_LEVEL",
    "LABEL_VERIFY_OF",
    "MAX_ACTIVE_RUNS",
    "VERSION",
    "Action",
    "BackupRun",
    "BackupRunSpec",
    "BackupRunStatus",
    "BackupSchedule",
    "BackupScheduleSpec",
    "BackupScheduleStatus",
    "BackupStorage",
    "BackupStorageSpec",
    "BackupStorageStatus",
    "Check",
    "Compression",
    "Condition",
    "Encryption",
    "Metadata",
    "Object",
    "ObjectLock",
    "ObjectMeta",
    "Retention",
    "RunTemplate",
    "SecretKeyRef",
    "SecretRef",
    "StorageParameters",
    "StorageRef",
    "Verify",
    "VerifyLevel",
]

GROUP = "backup-operator.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

LABEL_SCHEDULE = f"{GROUP}/schedule"
LABEL_RUN = f"{GROUP}/run"
LABEL_STORAGE = f"{GROUP}/storage"
#: On a restore drill's Workflow: the schedule it drills, and the BackupRun whose backup it checks.
LABEL_VERIFY_OF = f"{GROUP}/verify-of"
LABEL_VERIFIES = f"{GROUP}/verifies"
#: On a drill's Workflow and WorkflowTemplate: the drill's level (``integrity`` or ``restore``).
LABEL_VERIFY_LEVEL = f"{GROUP}/verify-level"
ANNOTATION_TRIGGER = f"{GROUP}/trigger"
ANNOTATION_RESTORE = f"{GROUP}/restore"
ANNOTATION_RESTORED_AT = f"{GROUP}/restored-at"
ANNOTATION_KEEP = f"{GROUP}/keep"
#: On Workflows a CronWorkflow rendered for the controller spawns: held until the controller
#: has recorded the Workflow as a BackupRun, so Argo's history limits cannot delete it first.
FINALIZER_CATALOGUE = f"{GROUP}/catalogue"

#: Key names in the user's credentials Secret: part of the API, so spelled here and not taken
#: from the streamer's environment names, which may change without breaking stored objects.
DEFAULT_ACCESS_KEY = "AWS_ACCESS_KEY_ID"
DEFAULT_SECRET_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 -- a key name, not a secret

#: What Argo's CronWorkflow schema accepts (robfig/cron with descriptors); the ranges of each
#: field are checked by :func:`generator.checks.check_cron`.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|@every\s+([0-9]+(ns|us|µs|ms|s|m|h))+"
    r"|([0-9*,/?-]+\s+){4}[0-9*,/?-]+)$"
)

#: How many runs in progress a schedule's status lists at most.
MAX_ACTIVE_RUNS = 32

#: An S3 bucket name (3-63 lowercase letters, digits, dots and hyphens).
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Name = Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)]
ContainerName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
NamespaceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


def _cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """The ``x-kubernetes-validations`` of a model: (CEL rule, message[, fieldPath]).

    ``fieldPath`` makes the API server report the field at fault, as ``backup-gen`` does.
    """
    validations = []
    for rule, message, *field in rules:
        validation = {"rule": rule, "message": message}
        if field:
            validation["fieldPath"] = field[0]
        validations.append(validation)
    return {"x-kubernetes-validations": validations}


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --- shared pieces -------------------------------------------------------------------------


class ObjectMeta(_Model):
    """The part of ``metadata`` the generator reads; the API server owns the rest."""

    model_config = ConfigDict(extra="allow")

    name: Name
    namespace: Name | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Metadata(_Model):
    """Labels and annotations given to generated objects."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Condition(_Model):
    """A standard Kubernetes condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    observed_generation: Annotated[int, Field(ge=0)] | None = None


class SecretRef(_Model):
    """A Secret by name and namespace."""

    name: Name
    namespace: Name


class SecretKeyRef(_Model):
    """One key of a Secret in the run's namespace."""

    name: Name
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


_LOCK_DAYS_NEED_MODE = "days needs a mode: add mode: GOVERNANCE or COMPLIANCE, or remove days"
_LOCK_MODE_NEEDS_DAYS = (
    f"mode needs days: add days (1..{MAX_LOCK_DAYS}), how long each backup stays locked, "
    "or remove mode"
)
_LOCK_EMPTY = (
    "objectLock needs mode and days, legalHold: true, or both; remove objectLock to store "
    "backups unlocked"
)


class ObjectLock(_Model):
    """S3 Object Lock of the stored backups: a retention (mode and days), a legal hold, or both.

    The bucket must have Object Lock enabled. The streamer writes the lock with the object
    (``--object-lock-mode``, ``--object-lock-days``, ``--legal-hold``) and reads it back; the
    run records the date it holds until, and the controller deletes no locked object before it.
    """

    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("!has(self.days) || has(self.mode)", _LOCK_DAYS_NEED_MODE, ".mode"),
            ("!has(self.mode) || has(self.days)", _LOCK_MODE_NEEDS_DAYS, ".days"),
            (
                "has(self.mode) || has(self.days) || (has(self.legalHold) && self.legalHold)",
                _LOCK_EMPTY,
            ),
        )
    )

    # streamer.contract.LOCK_MODES, spelled out for the type checker (a test holds them equal).
    mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = Field(
        default=None,
        description="GOVERNANCE (credentials with s3:BypassGovernanceRetention may still "
        "delete the object) or COMPLIANCE (nobody can, not even the account's root, until "
        "the date). Comes with days.",
    )
    days: Annotated[int, Field(ge=1, le=MAX_LOCK_DAYS)] | None = Field(
        default=None,
        description="How many days after its upload started each backup stays locked. "
        "Comes with mode.",
    )
    legal_hold: bool = Field(
        default=False,
        description="Put each backup under a legal hold: locked with no end date until "
        "someone with s3:PutObjectLegalHold lifts it in S3.",
    )

    @model_validator(mode="after")
    def _a_lock_that_can_be_written(self) -> ObjectLock:
        if self.days is not None and self.mode is None:
            raise ValueError(_LOCK_DAYS_NEED_MODE)
        if self.mode is not None and self.days is None:
            raise ValueError(_LOCK_MODE_NEEDS_DAYS)
        if self.mode is None and not self.legal_hold:
            raise ValueError(_LOCK_EMPTY)
        return self


class Object(_Model):
    """Fields every kind has."""

    kind: ClassVar[str]
    api_version: Literal["backup-operator.io/v1"] = "backup-operator.io/v1"
    metadata: ObjectMeta


# --- BackupStorage -------------------------------------------------------------------------


_BOOLEAN = Literal["true", "false"]


class StorageParameters(_Model):
    """The settings of an S3 storage (strings, as in SEED.md: ``insecure: 'true'``)."""

    bucket: Annotated[str, Field(pattern=BUCKET_PATTERN)] = Field(
        description="The bucket backups are written to."
    )
    endpoint: (
        Annotated[str, Field(max_length=2048, pattern=r"^https?://[^/\s]+(/\S*)?$")] | None
    ) = Field(default=None, description="S3 endpoint URL, e.g. http://minio.minio.svc:9000.")
    region: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The bucket's region."
    )
    insecure: _BOOLEAN | None = Field(
        default=None, description="'true' skips TLS certificate verification."
    )
    s3_force_path_style: _BOOLEAN | None = Field(
        default=None, description="'true' addresses the bucket as a path (MinIO, Ceph)."
    )
    part_checksums: _BOOLEAN | None = Field(
        default=None,
        description="'false' uploads parts without their CRC32 (x-amz-checksum-crc32), for "
        "S3-compatible servers that refuse checksum headers; by default S3 checks each part.",
    )
    access_key: Annotated[str, Field(max_length=253)] | None = Field(
        default=None,
        description=f"Key of the credentials Secret holding the access key id "
        f"(default {DEFAULT_ACCESS_KEY}).",
    )
    secret_key: Annotated[str, Field(max_length=253)] | None = Field(
        default=None,
        description=f"Key of the credentials Secret holding the secret access key "
        f"(default {DEFAULT_SECRET_KEY}).",
    )


class BackupStorageSpec(_Model):
    """Where backups are stored, and the Secret that opens it."""

    type: Literal["s3"] = Field(description="Storage type; only s3 (any S3-compatible service).")
    parameters: StorageParameters
    credentials: SecretRef = Field(
        description="The Secret holding the access and secret keys. The controller copies "
        "it into each namespace whose schedules or runs use the storage, as "
        "<storage>-backup-credentials; without the controller (backup-gen render), runs "
        "read a Secret of this name in their own namespace."
    )
    allowed_namespaces: list[NamespaceName] | None = Field(
        default=None,
        description="The namespaces whose schedules and runs may use the storage (and get "
        "a copy of its credentials); absent: every namespace. Others are refused "
        "(StorageNotAllowed).",
    )
    object_lock: ObjectLock | None = Field(
        default=None,
        description="S3 Object Lock of every backup stored here, unless a run (or a "
        "schedule's template) has an objectLock of its own, which replaces this one whole. "
        "The bucket must have Object Lock enabled.",
    )


class BackupStorageStatus(_Model):
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready: the bucket is reachable with the credentials. InUse: schedules "
        "or runs use the storage (its deletion waits for them). UsersAllowed: none of them "
        "is in a namespace outside allowedNamespaces.",
    )
    runs: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Number of successful runs stored here."
    )
    size_in_bytes: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Total stored bytes of those runs."
    )
    size: str | None = Field(default=None, description="sizeInBytes, human readable.")
    last_validation_time: datetime | None = Field(
        default=None, description="When the bucket was last checked."
    )
    credentials_namespaces: list[NamespaceName] | None = Field(
        default=None, description="The namespaces holding a copy of the credentials Secret."
    )


class BackupStorage(Object):
    """An S3 bucket that backups are written to (cluster-scoped)."""

    kind: ClassVar[str] = "BackupStorage"
    spec: BackupStorageSpec
    status: BackupStorageStatus | None = None


# --- BackupRun -----------------------------------------------------------------------------


class Action(_Model):
    """A command the streamer runs inside one container of the run's Pod."""

    container: ContainerName = Field(
        description="The container of the Pod template the command runs in."
    )
    command: Annotated[list[str], Field(min_length=1)] = Field(
        description="The command. Backup: writes the data to stdout. Restore: reads it on stdin."
    )
    args: list[str] | None = Field(default=None, description="Arguments of the command.")
    deadline_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Fail the action if it has not finished after this long."
    )


class StorageRef(_Model):
    name: Name = Field(description="The BackupStorage to use.")
    path: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="The object key, a Jinja2 template rendered when the backup starts "
        'with now, namespace, run, schedule and workflow, e.g. db-{{ now | date "2006.01.02" }}.sql'
    )


class Compression(_Model):
    """How the stream is compressed before it is encrypted and stored.

    A run without ``compression`` is compressed with gzip at the default level, as SEED.md's
    backup flow always does; ``algorithm: none`` turns compression off.
    """

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "!has(self.level) || !has(self.algorithm) || self.algorithm == 'gzip'",
                "level applies to gzip only: remove it, or use algorithm: gzip",
                ".level",
            )
        )
    )

    algorithm: Literal["gzip", "none"] = Field(
        default="gzip", description="gzip (the default), or none to store the data uncompressed."
    )
    level: Annotated[int, Field(ge=MIN_LEVEL, le=MAX_LEVEL)] | None = Field(
        default=None,
        description=f"gzip level {MIN_LEVEL}..{MAX_LEVEL}; absent or {DEFAULT_LEVEL} is the "
        "default level, below it the fastest (ISA-L) levels. Only with algorithm gzip.",
    )


class Encryption(_Model):
    recipients: Annotated[list[str], Field(min_length=1, max_length=64)] = Field(
        description="age recipients: age1…, ssh-ed25519 … or ssh-rsa … public keys."
    )
    decryption_key: SecretKeyRef | None = Field(
        default=None,
        description="The Secret key holding the age identity; needed to restore. "
        "It is mounted into restore steps only.",
    )


_RUN_RULES = (
    ("has(self.backup) || has(self.restore)", "a run needs backup or restore (or both)"),
    (
        "!has(self.backup) || "
        "self.template.spec.containers.exists(c, c.name == self.backup.container)",
        "backup.container must be one of template.spec.containers",
        ".backup.container",
    ),
    (
        "!has(self.restore) || "
        "self.template.spec.containers.exists(c, c.name == self.restore.container)",
        "restore.container must be one of template.spec.containers",
        ".restore.container",
    ),
    (
        "!has(self.encryption) || !has(self.restore) || has(self.encryption.decryptionKey)",
        "an encrypted run with restore needs encryption.decryptionKey",
        ".encryption.decryptionKey",
    ),
)


class BackupRunSpec(_Model):
    """One backup, and how to restore it."""

    model_config = ConfigDict(json_schema_extra=_cel(*_RUN_RULES))

    retain_policy: Literal["Retain", "Delete"] = Field(
        default="Retain", description="Delete: the stored object is deleted with the run."
    )
    backup: Action | None = Field(default=None, description="How to produce the data.")
    restore: Action | None = Field(default=None, description="How to load the data back.")
    storage: StorageRef
    compression: Compression | None = Field(
        default=None,
        description="How to compress; absent: gzip at the default level. "
        "algorithm: none stores the data uncompressed.",
    )
    encryption: Encryption | None = Field(
        default=None, description="Encrypt with age; absent: store unencrypted."
    )
    object_lock: ObjectLock | None = Field(
        default=None,
        description="S3 Object Lock of the backup; it replaces the storage's objectLock "
        "whole. Absent: the storage's objectLock, if it has one.",
    )
    template: PodTemplate = Field(description="The Pod the commands run in.")


class BackupRunStatus(_Model):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Error"] | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        description="InProgress, Successful, Failed, Restorable, Encrypted, Compressed "
        "(True unless compression.algorithm is none), Locked (a backup with Object Lock: "
        "True once the stored object was read back locked), StoredObjectDeleted (False "
        "while a deleted run's object is not deleted yet, saying why).",
    )
    path: str | None = Field(default=None, description="The object key the backup was written to.")
    url: str | None = None
    size: str | None = Field(default=None, description="Stored size, human readable.")
    size_in_bytes: Annotated[int, Field(ge=0)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    retain_until: datetime | None = Field(
        default=None,
        description="Object Lock: the stored object cannot be deleted before this time. "
        "Until then rotation keeps the run, and a deleted retainPolicy: Delete run waits "
        "to delete its object.",
    )
    legal_hold: bool | None = Field(
        default=None,
        description="Object Lock: the stored object was stored under a legal hold. "
        "Rotation keeps the run: lift the hold in S3, then delete the run yourself.",
    )
    workflow: str | None = Field(default=None, description="The Argo Workflow of the backup.")
    start_time: datetime | None = None
    completion_time: datetime | None = None
    restored_at: datetime | None = None


class BackupRun(Object):
    """One backup (and/or restore) run, executed as an Argo Workflow."""

    kind: ClassVar[str] = "BackupRun"
    spec: BackupRunSpec
    status: BackupRunStatus | None = None


# --- BackupSchedule ------------------------------------------------------------------------


class RunTemplate(_Model):
    metadata: Metadata | None = Field(default=None, description="Labels and annotations of runs.")
    spec: BackupRunSpec


_RETENTION_RULES = tuple(
    f"keep{p}" for p in ("Last", "Hourly", "Daily", "Weekly", "Monthly", "Yearly")
)
_RETENTION_EMPTY = f"retention needs at least one of {', '.join(_RETENTION_RULES)}"


def _keep_each(period: str) -> Any:
    return Field(
        default=None,
        description=f"Keep the newest successful run of each of the N most recent {period} "
        "that have one.",
    )


class Retention(_Model):
    """Which successful runs to keep, by restic's ``forget --keep-*`` rules (K8up's too).

    A run kept by any rule is kept; calendar periods are those of the schedule's time zone.
    :mod:`generator.controller.rotation` applies them.
    """

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (" || ".join(f"has(self.{rule})" for rule in _RETENTION_RULES), _RETENTION_EMPTY)
        )
    )

    keep_last: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Keep the N newest successful runs."
    )
    keep_hourly: Annotated[int, Field(ge=0)] | None = _keep_each("hours")
    keep_daily: Annotated[int, Field(ge=0)] | None = _keep_each("days")
    keep_weekly: Annotated[int, Field(ge=0)] | None = _keep_each("ISO weeks (Monday to Sunday)")
    keep_monthly: Annotated[int, Field(ge=0)] | None = _keep_each("months")
    keep_yearly: Annotated[int, Field(ge=0)] | None = _keep_each("years")

    @model_validator(mode="after")
    def _one_rule_at_least(self) -> Retention:
        if all(getattr(self, field) is None for field in type(self).model_fields):
            raise ValueError(_RETENTION_EMPTY)
        return self


class Check(_Model):
    """A command that proves a restore drill's data is there; its exit code decides."""

    container: ContainerName | None = Field(
        default=None,
        description="The container of verify.template it runs in; absent: the restore's.",
    )
    command: Annotated[list[str], Field(min_length=1)] = Field(
        description="The command, run once the restore succeeded, e.g. a count of rows."
    )
    args: list[str] | None = Field(default=None, description="Arguments of the command.")


VerifyLevel = Literal["integrity", "restore"]

_RESTORE_DRILL = "has(self.level) && self.level == 'restore'"
_ONLY_RESTORE_DRILL = "only a restore drill runs {what}; set level: restore or remove {field}"
_VERIFY_RULES = (
    (
        f"!has(self.template) || ({_RESTORE_DRILL})",
        _ONLY_RESTORE_DRILL.format(what="a Pod of its own", field="template"),
        ".template",
    ),
    (
        f"!has(self.restore) || ({_RESTORE_DRILL})",
        _ONLY_RESTORE_DRILL.format(what="a restore action", field="restore"),
        ".restore",
    ),
    (
        f"!has(self.check) || ({_RESTORE_DRILL})",
        _ONLY_RESTORE_DRILL.format(what="a check", field="check"),
        ".check",
    ),
    (
        f"!({_RESTORE_DRILL}) || has(self.template)",
        "a restore drill needs template: the scratch Pod it restores into",
        ".template",
    ),
    (
        "!has(self.restore) || !has(self.template) || "
        "self.template.spec.containers.exists(c, c.name == self.restore.container)",
        "verify.restore.container must be one of verify.template.spec.containers",
        ".restore.container",
    ),
    (
        "!has(self.check) || !has(self.check.container) || !has(self.template) || "
        "self.template.spec.containers.exists(c, c.name == self.check.container)",
        "verify.check.container must be one of verify.template.spec.containers",
        ".check.container",
    ),
)


class Verify(_Model):
    """Restore drills of a schedule's backups, on a cron schedule of their own.

    ``integrity`` downloads, decrypts and decompresses a successful backup and compares its
    SHA-256 with the one recorded (``streamer verify``); ``restore`` restores it into a scratch
    Pod (``template``) and runs ``check`` there. Neither touches the backed-up data.
    """

    model_config = ConfigDict(json_schema_extra=_cel(*_VERIFY_RULES))

    schedule: Annotated[str, Field(min_length=1, max_length=256, pattern=CRON_PATTERN)] = Field(
        description='Cron schedule of the drills, e.g. "0 4 * * 0" or @weekly.'
    )
    time_zone: str | None = Field(
        default=None, description="IANA time zone of the drill schedule, e.g. Europe/Berlin."
    )
    suspend: bool = Field(default=False, description="true: no drill is started.")
    level: VerifyLevel = Field(
        default="integrity",
        description="integrity (the default): read the backup back through every layer and "
        "compare its SHA-256. restore: also restore it into template and run check.",
    )
    deadline_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Fail the drill if it has not finished after this long."
    )
    template: PodTemplate | None = Field(
        default=None,
        description="Level restore: the scratch Pod the backup is restored into (e.g. a "
        "throwaway database), never the backed-up one.",
    )
    restore: Action | None = Field(
        default=None,
        description="Level restore: how to load the data into template; absent: the "
        "schedule's restore action (spec.template.spec.restore), whose container must then "
        "be one of template's.",
    )
    check: Check | None = Field(
        default=None,
        description="Level restore: a command run after the restore; the drill fails "
        "unless it exits 0.",
    )


_SCHEDULE_RULES = (
    ("has(self.template.spec.backup)", "a schedule's template needs a backup action"),
    (
        "!has(self.verify) || !has(self.verify.level) || self.verify.level != 'restore' || "
        "has(self.verify.restore) || has(self.template.spec.restore)",
        "a restore drill needs a restore action: add verify.restore, or restore to the template",
        ".verify.restore",
    ),
    (
        "!has(self.verify) || has(self.verify.restore) || !has(self.verify.template) || "
        "!has(self.template.spec.restore) || self.verify.template.spec.containers.exists("
        "c, c.name == self.template.spec.restore.container)",
        "the template's restore.container must be one of verify.template.spec.containers, "
        "or give verify.restore",
        ".verify.template",
    ),
    (
        "!has(self.verify) || !has(self.template.spec.encryption) || "
        "has(self.template.spec.encryption.decryptionKey)",
        "a drill decrypts the backup: an encrypted schedule with verify needs "
        "encryption.decryptionKey",
        ".template.spec.encryption.decryptionKey",
    ),
)


class BackupScheduleSpec(_Model):
    """Runs on a cron schedule, with history limits or a calendar retention."""

    model_config = ConfigDict(json_schema_extra=_cel(*_SCHEDULE_RULES))

    schedule: Annotated[str, Field(min_length=1, max_length=256, pattern=CRON_PATTERN)] = Field(
        description='Cron schedule, e.g. "0 0 * * *" or @daily.'
    )
    time_zone: str | None = Field(
        default=None, description="IANA time zone of the schedule, e.g. Europe/Berlin."
    )
    starting_deadline_seconds: Annotated[int, Field(ge=0)] | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Replace"
    suspend: bool = False
    successful_runs_history_limit: Annotated[int, Field(ge=0)] = 3
    failed_runs_history_limit: Annotated[int, Field(ge=0)] = 1
    retention: Retention | None = Field(
        default=None,
        description="Keep successful runs by calendar instead of successfulRunsHistoryLimit; "
        "failed runs still follow failedRunsHistoryLimit, the newest success is always kept.",
    )
    template: RunTemplate
    verify: Verify | None = Field(
        default=None,
        description="Restore drills: prove on a schedule of their own that successful "
        "backups can still be read back (integrity) or restored (restore).",
    )


class BackupScheduleStatus(_Model):
    conditions: list[Condition] | None = None
    active: Annotated[list[str], Field(max_length=MAX_ACTIVE_RUNS)] | None = Field(
        default=None, description="Runs in progress."
    )
    last_schedule_time: datetime | None = None
    last_successful_time: datetime | None = None
    successful_runs: Annotated[int, Field(ge=0)] | None = None
    failed_runs: Annotated[int, Field(ge=0)] | None = None
    last_verified_time: datetime | None = Field(
        default=None, description="When the newest successful restore drill ended."
    )
    last_verified_run: str | None = Field(
        default=None, description="The BackupRun that drill proved restorable."
    )
    last_verify_schedule_time: datetime | None = Field(
        default=None, description="The last fire time of spec.verify.schedule a drill was due."
    )


class BackupSchedule(Object):
    """Backups on a cron schedule: an Argo CronWorkflow plus a restore WorkflowTemplate."""

    kind: ClassVar[str] = "BackupSchedule"
    spec: BackupScheduleSpec
    status: BackupScheduleStatus | None = None


KINDS: dict[str, type[Object]] = {
    cls.kind: cls for cls in (BackupStorage, BackupSchedule, BackupRun)
}
