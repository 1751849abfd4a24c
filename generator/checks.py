"""Turn YAML documents into API objects and report every rule they break, with field paths.

Pure functions: documents in, objects or :class:`~generator.errors.Problem` lists out. Structure
(types, enums, bounds, unknown fields) is pydantic's job; this module adds the rules a schema
cannot hold or holds only as CEL (:data:`generator.models` declares those for the CRDs), and the
checks only the data plane can make: cron and time zone syntax, age recipients, and path
templates (syntax and sandbox), using the streamer's own parsers so both agree. Those parsers
are pure (:mod:`streamer.recipients`, :mod:`streamer.pathtemplate`): validating never loads
the data plane's native libraries.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from generator.errors import Problem, ValidationFailed
from generator.models import (
    API_VERSION,
    CRON_PATTERN,
    KINDS,
    BackupRun,
    BackupRunSpec,
    BackupSchedule,
    BackupScheduleSpec,
    BackupStorage,
    Object,
    Verify,
)
from generator.podtemplate import RESERVED_CONTAINER_NAMES, PodSpec
from streamer.errors import ConfigError
from streamer.pathtemplate import check_template
from streamer.recipients import check_recipient

__all__ = [
    "MAX_RUN_NAME",
    "MAX_SCHEDULE_NAME",
    "check_cron",
    "check_objects",
    "check_run_spec",
    "check_verify",
    "describe",
    "has_template_syntax",
    "parse_object",
    "validate_documents",
]

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
                ("month", 1, 12), ("day of week", 0, 6))  # fmt: skip
_CRON_ITEM = re.compile(r"^(\*|\?|(\d+)(-(\d+))?)(/(\d+))?$")
#: Argo appends a timestamp to a CronWorkflow's name; it refuses names longer than this.
MAX_SCHEDULE_NAME = 52
#: A run's restore Workflow is ``<run>-restore``, and Workflow names are label values (63).
MAX_RUN_NAME = 63 - len("-restore")
#: Plain words for the patterns users most often miss, by field name.
_PATTERN_MEANS = {
    "bucket": "is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-')",
    "endpoint": "is not an http:// or https:// URL",
    "name": "is not a valid name (lowercase letters, digits, '-' and '.')",
}


def describe(doc: Mapping[str, Any], origin: str = "") -> str:
    """``Kind/name`` of a document, for messages, even when the document is broken."""
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return _label(doc.get("kind") or "?", name, origin)


def _label(kind: object, name: object, origin: str) -> str:
    label = f"{kind}/{name}" if name else f"{kind} (unnamed)"
    return f"{origin}: {label}" if origin else label


def _loc(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        field = str(error["loc"][-1])
        if field == "schedule":
            return check_cron(str(error["input"])) or str(error["msg"])
        means = _PATTERN_MEANS.get(field, f"does not match {error['ctx']['pattern']}")
        return f"{error['input']!r} {means}"
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


def parse_object(doc: Mapping[str, Any], origin: str = "") -> Object:
    """One document as its API model; :class:`ValidationFailed` lists every structural problem."""
    obj = describe(doc, origin)
    if doc.get("apiVersion") != API_VERSION:
        message = f"must be {API_VERSION}, not {doc.get('apiVersion')!r}"
        raise ValidationFailed([Problem(obj, "apiVersion", message)])
    cls = KINDS.get(str(doc.get("kind")))
    if cls is None:
        message = f"unknown kind; expected one of {', '.join(KINDS)}"
        raise ValidationFailed([Problem(obj, "kind", message)])
    body = {k: v for k, v in doc.items() if k != "kind"}
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        problems = [Problem(obj, _loc(e["loc"]), _message(e)) for e in exc.errors()]
        raise ValidationFailed(problems) from None


def has_template_syntax(text: str) -> bool:
    """Whether a path is a Jinja2 template rather than a literal key."""
    return any(mark in text for mark in ("{{", "{%", "{#"))


def check_cron(text: str) -> str | None:
    """Why ``text`` is not a schedule Argo runs, or None."""
    if not re.match(CRON_PATTERN, text):
        return (
            f"{text!r} is not a cron schedule: expected 5 fields (minute hour day-of-month "
            'month day-of-week, numbers only, e.g. "0 0 * * *") or @hourly, @daily, @weekly, '
            "@monthly, @yearly, @every <duration>"
        )
    if text.startswith("@"):
        return None
    for value, (field, low, high) in zip(text.split(), _CRON_FIELDS, strict=True):
        for item in value.split(","):
            match = _CRON_ITEM.match(item)
            if match is None:
                return f"{text!r}: {field} {item!r} is not *, N, N-M or one of those /STEP"
            numbers = [int(n) for n in (match.group(2), match.group(4)) if n is not None]
            if any(not low <= n <= high for n in numbers):
                return f"{text!r}: {field} {item!r} is out of range {low}-{high}"
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                return f"{text!r}: {field} range {item!r} runs backwards"
            if match.group(6) is not None and int(match.group(6)) == 0:
                return f"{text!r}: {field} step in {item!r} must be at least 1"
    return None


def _check_timezone(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    # OSError: a region such as "America" is a directory of the zone database.
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)"
    return None


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def check_run_spec(spec: BackupRunSpec, prefix: str) -> Iterable[tuple[str, str]]:
    """The rules of one BackupRun spec (also a schedule's template); (path, message) pairs."""
    pod = spec.template.spec
    names = [c.name for c in pod.containers]
    if spec.backup is None and spec.restore is None:
        yield prefix, "a run needs backup or restore (or both)"
    for action_name, action in (("backup", spec.backup), ("restore", spec.restore)):
        if action is not None and action.container not in names:
            yield (
                f"{prefix}.{action_name}.container",
                f"{action.container!r} is not a container of the template; "
                f"containers: {', '.join(names)}",
            )
    if (
        spec.compression is not None
        and spec.compression.algorithm == "none"
        and spec.compression.level is not None
    ):
        yield (
            f"{prefix}.compression.level",
            "level applies to gzip only: remove it, or use algorithm: gzip",
        )
    if spec.encryption is not None:
        if spec.restore is not None and spec.encryption.decryption_key is None:
            yield (
                f"{prefix}.encryption.decryptionKey",
                "required: an encrypted run with restore needs the Secret key holding the "
                "age identity",
            )
        for i, recipient in enumerate(spec.encryption.recipients):
            try:
                check_recipient(recipient)
            except ConfigError as exc:
                yield f"{prefix}.encryption.recipients[{i}]", str(exc)
    yield from _check_pod(pod, f"{prefix}.template.spec")
    try:
        check_template(spec.storage.path)
    except ConfigError as exc:
        yield f"{prefix}.storage.path", str(exc)
    dumped = spec.model_dump(by_alias=True, exclude_none=True, exclude={"storage"})
    yield from _no_argo_variables(dumped, prefix)


def _no_argo_variables(dumped: Mapping[str, Any], prefix: str) -> Iterable[tuple[str, str]]:
    for path, text in _strings(dumped, prefix):
        if "{{" in text:
            yield path, "contains '{{', which Argo Workflows would try to resolve as a variable"


def _check_pod(pod: PodSpec, prefix: str) -> Iterable[tuple[str, str]]:
    """The rules of a Pod template whose containers run beside the streamer (``prefix``: its
    ``spec``)."""
    for i, container in enumerate(pod.containers):
        if not container.command:
            yield (
                f"{prefix}.containers[{i}].command",
                f"container {container.name!r} has no command; every container of the template "
                'runs beside the streamer and must keep running: add e.g. command: ["sleep", "1d"]',
            )
    # Kubernetes wants each name once across containers and init containers, beside Argo's own.
    seen: set[str] = set()
    for field, containers in (
        ("containers", pod.containers),
        ("initContainers", pod.init_containers or ()),
    ):
        for i, container in enumerate(containers):
            where = f"{prefix}.{field}[{i}].name"
            if container.name in RESERVED_CONTAINER_NAMES:
                yield where, f"{container.name!r} is reserved by Argo; rename the container"
            if container.name in seen:
                yield where, f"duplicate container name {container.name!r}"
            seen.add(container.name)


#: What only a restore drill has, by field (the CRD's CEL rules say the same).
_ONLY_RESTORE_DRILL = (
    ("template", "a Pod of its own"),
    ("restore", "a restore action"),
    ("check", "a check"),
)


def _not_in(name: str, pod: PodSpec, what: str) -> str:
    names = ", ".join(c.name for c in pod.containers)
    return f"{name!r} is not a container of verify.template{what}; containers: {names}"


def check_verify(spec: BackupScheduleSpec, prefix: str = "spec") -> Iterable[tuple[str, str]]:
    """The rules of a schedule's restore drills (``spec.verify``); (path, message) pairs."""
    verify, run = spec.verify, spec.template.spec
    if verify is None:
        return
    where = f"{prefix}.verify"
    reason = check_cron(verify.schedule)
    if reason:
        yield f"{where}.schedule", reason
    if verify.time_zone is not None:
        reason = _check_timezone(verify.time_zone)
        if reason:
            yield f"{where}.timeZone", reason
    if run.encryption is not None and run.encryption.decryption_key is None and run.restore is None:
        # With a restore action, check_run_spec reports the missing key already.
        yield (
            f"{prefix}.template.spec.encryption.decryptionKey",
            "required: a drill decrypts the backup; add the Secret key holding the age "
            "identity, or remove verify",
        )
    if verify.level == "integrity":
        for field, what in _ONLY_RESTORE_DRILL:
            if getattr(verify, field) is not None:
                yield (
                    f"{where}.{field}",
                    f"only a restore drill runs {what}; set level: restore or remove {field}",
                )
        return
    yield from _check_restore_drill(verify, run, where)


def _check_restore_drill(
    verify: Verify, run: BackupRunSpec, where: str
) -> Iterable[tuple[str, str]]:
    action = verify.restore or run.restore
    if action is None:
        yield (
            f"{where}.restore",
            "required: a restore drill needs a restore action; add verify.restore, or restore "
            "to spec.template.spec",
        )
    if verify.template is None:
        yield (
            f"{where}.template",
            "required: a restore drill restores into a scratch Pod of its own; add "
            "verify.template (e.g. a throwaway mysql:8.3.0 container), never the backed-up one",
        )
        return
    pod = verify.template.spec
    names = {c.name for c in pod.containers}
    if verify.restore is not None and verify.restore.container not in names:
        yield f"{where}.restore.container", _not_in(verify.restore.container, pod, "")
    elif verify.restore is None and run.restore is not None and run.restore.container not in names:
        yield (
            f"{where}.restore",
            _not_in(run.restore.container, pod, " (the schedule's restore runs there)")
            + "; add verify.restore for the scratch Pod",
        )
    check = verify.check.container if verify.check is not None else None
    if check is not None and check not in names:
        yield f"{where}.check.container", _not_in(check, pod, "")
    yield from _check_pod(pod, f"{where}.template.spec")
    yield from _no_argo_variables(verify.model_dump(by_alias=True, exclude_none=True), where)


def check_objects(
    objects: Sequence[tuple[str, Object]], broken_storages: Iterable[str] = ()
) -> list[Problem]:
    """Every rule broken by a set of objects (storages are resolved among them).

    ``broken_storages`` names storages in the input that did not parse: they were reported
    already, so references to them are not reported again as missing.
    """
    storages = {o.metadata.name for _, o in objects if isinstance(o, BackupStorage)}
    storages.update(broken_storages)
    problems: list[Problem] = []
    for origin, obj in objects:
        label = _label(obj.kind, obj.metadata.name, origin)
        found: list[tuple[str, str]] = []
        spec: BackupRunSpec | None = None
        prefix = "spec"
        if isinstance(obj, BackupSchedule):
            spec, prefix = obj.spec.template.spec, "spec.template.spec"
            if len(obj.metadata.name) > MAX_SCHEDULE_NAME:
                found.append(("metadata.name", f"at most {MAX_SCHEDULE_NAME} characters (Argo)"))
            if spec.backup is None:
                found.append((prefix, "a schedule's template needs a backup action"))
            reason = check_cron(obj.spec.schedule)
            if reason:
                found.append(("spec.schedule", reason))
            if obj.spec.time_zone is not None:
                reason = _check_timezone(obj.spec.time_zone)
                if reason:
                    found.append(("spec.timeZone", reason))
            found.extend(check_verify(obj.spec))
        elif isinstance(obj, BackupRun):
            spec = obj.spec
            if len(obj.metadata.name) > MAX_RUN_NAME:
                found.append(("metadata.name", f"at most {MAX_RUN_NAME} characters"))
            if spec.backup is None and has_template_syntax(spec.storage.path):
                found.append(
                    (
                        "spec.storage.path",
                        "a restore-only run restores one existing object: give its key, "
                        "not a template",
                    )
                )
        if spec is not None:
            found.extend(check_run_spec(spec, prefix))
            if spec.storage.name not in storages:
                known = ", ".join(sorted(storages)) or "none"
                found.append(
                    (
                        f"{prefix}.storage.name",
                        f"BackupStorage {spec.storage.name!r} is not in the input; "
                        f"storages: {known}",
                    )
                )
        problems.extend(Problem(label, path, message) for path, message in found)
    return problems


def validate_documents(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Object]]:
    """Parse and check documents (origin, mapping); raise with every problem of every one."""
    objects: list[tuple[str, Object]] = []
    problems: list[Problem] = []
    names: set[tuple[str, str | None, str]] = set()
    broken: list[str] = []
    for origin, doc in docs:
        try:
            obj = parse_object(doc, origin)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            meta = doc.get("metadata")
            if doc.get("kind") == BackupStorage.kind and isinstance(meta, Mapping):
                broken.append(str(meta.get("name")))
            continue
        key = (obj.kind, obj.metadata.namespace, obj.metadata.name)
        if key in names:
            problems.append(Problem(describe(doc, origin), "metadata.name", "defined twice"))
        names.add(key)
        objects.append((origin, obj))
    problems.extend(check_objects(objects, broken))
    if problems:
        raise ValidationFailed(problems)
    return objects
