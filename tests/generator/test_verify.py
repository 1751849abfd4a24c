"""``spec.verify`` of a schedule, the restore drills: what the CRD and ``backup-gen validate``
accept and refuse, each refusal naming the field and what to do. The cases start from the
golden schedules with a drill and change one thing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from generator.cli import main
from generator.generate import validate_texts
from generator.models import BackupSchedule
from generator.yamlio import dump_documents
from tests.generator.conftest import GOLDEN, crd_problems, load_yaml

INTEGRITY_STORAGE, INTEGRITY = load_yaml(GOLDEN / "verify-integrity.in.yaml")
RESTORE_STORAGE, RESTORE = load_yaml(GOLDEN / "verify-restore.in.yaml")
Change = Callable[[dict[str, Any]], None]


def _verify(s: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = s["spec"]["verify"]
    return result


def _run(s: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = s["spec"]["template"]["spec"]
    return result


def _scratch(s: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _verify(s)["template"]["spec"]["containers"][0]
    return result


def _changed(base: dict[str, Any], change: Change) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    change(doc)
    return doc


def _storage_of(doc: dict[str, Any]) -> dict[str, Any]:
    return (
        INTEGRITY_STORAGE
        if doc["metadata"]["name"] == INTEGRITY["metadata"]["name"]
        else (RESTORE_STORAGE)
    )


def _invoke(doc: dict[str, Any]) -> tuple[int, str]:
    text = dump_documents([_storage_of(doc), doc])
    result = CliRunner().invoke(main, ["validate", "-f", "-"], input=text)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stderr


# --- accepted ----------------------------------------------------------------------------------


def _inherit_restore(s: dict[str, Any]) -> None:
    """A restore drill with the schedule's own restore action: the scratch container has the
    same name as the schedule's."""
    del _verify(s)["restore"]
    _scratch(s)["name"] = "mysql"


def _second_container(s: dict[str, Any]) -> None:
    containers = _verify(s)["template"]["spec"]["containers"]
    containers.append({"name": "client", "image": "mysql:8.3.0", "command": ["sleep", "1d"]})
    _verify(s)["check"]["container"] = "client"


GOOD = [
    pytest.param(INTEGRITY, lambda s: None, id="integrity"),
    pytest.param(INTEGRITY, lambda s: s["spec"].update(verify={"schedule": "@weekly"}),
                 id="integrity-minimal"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(level="integrity", suspend=True),
                 id="integrity-suspended"),
    pytest.param(RESTORE, lambda s: None, id="restore"),
    pytest.param(RESTORE, _inherit_restore, id="restore-with-the-schedules-action"),
    pytest.param(RESTORE, lambda s: _verify(s).pop("check"), id="restore-without-check"),
    pytest.param(RESTORE, _second_container, id="check-in-another-container"),
    pytest.param(RESTORE, lambda s: _run(s).pop("restore"),
                 id="restore-drill-of-a-schedule-without-restore"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "change"), GOOD)
def test_a_good_drill_is_accepted_by_the_crd_and_backup_gen(
    base: dict[str, Any], change: Change
) -> None:
    doc = _changed(base, change)
    assert crd_problems(doc) == []
    code, stderr = _invoke(doc)
    assert code == 0, stderr


def test_the_defaults_are_an_integrity_drill_that_runs() -> None:
    objects = validate_texts([("case.yaml", dump_documents([INTEGRITY_STORAGE, INTEGRITY]))])
    schedule = objects[1]
    assert isinstance(schedule, BackupSchedule)
    assert schedule.spec.verify is not None
    assert (schedule.spec.verify.level, schedule.spec.verify.suspend) == ("integrity", False)


# --- refused by both ---------------------------------------------------------------------------

V = "spec.verify"
#: (base, change, field path, a part of backup-gen's message, a part of the CRD's)
REFUSED = [
    pytest.param(INTEGRITY, lambda s: _verify(s).update(template=RESTORE["spec"]["verify"]["template"]),
                 f"{V}.template", "only a restore drill runs a Pod of its own; set level: restore "
                 "or remove template", "only a restore drill runs a Pod of its own",
                 id="integrity-with-template"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(restore=RESTORE["spec"]["verify"]["restore"]),
                 f"{V}.restore", "only a restore drill runs a restore action; set level: restore "
                 "or remove restore", "only a restore drill runs a restore action",
                 id="integrity-with-restore"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(check={"command": ["true"]}),
                 f"{V}.check", "only a restore drill runs a check; set level: restore or remove "
                 "check", "only a restore drill runs a check", id="integrity-with-check"),
    pytest.param(RESTORE, lambda s: [_verify(s).pop("template"), _verify(s).pop("restore"),
                                     _verify(s).pop("check")],
                 f"{V}.template", "a restore drill restores into a scratch Pod of its own; add "
                 "verify.template", "a restore drill needs template", id="restore-without-template"),
    pytest.param(RESTORE, lambda s: [_verify(s).pop("restore"), _run(s).pop("restore")],
                 f"{V}.restore", "a restore drill needs a restore action; add verify.restore, or "
                 "restore to spec.template.spec", "a restore drill needs a restore action",
                 id="restore-without-any-restore-action"),
    pytest.param(RESTORE, lambda s: _verify(s)["restore"].update(container="mysql"),
                 f"{V}.restore.container", "'mysql' is not a container of verify.template; "
                 "containers: scratch", "verify.restore.container must be one of",
                 id="restore-container-not-in-the-scratch-pod"),
    pytest.param(RESTORE, lambda s: _verify(s).pop("restore"),
                 f"{V}.restore", "'mysql' is not a container of verify.template (the schedule's "
                 "restore runs there); containers: scratch; add verify.restore for the scratch Pod",
                 "the template's restore.container must be one of verify.template",
                 id="the-schedules-restore-container-not-in-the-scratch-pod"),
    pytest.param(RESTORE, lambda s: _verify(s)["check"].update(container="client"),
                 f"{V}.check.container", "'client' is not a container of verify.template; "
                 "containers: scratch", "verify.check.container must be one of",
                 id="check-container-not-in-the-scratch-pod"),
    pytest.param(INTEGRITY, lambda s: _run(s)["encryption"].pop("decryptionKey"),
                 "spec.template.spec.encryption.decryptionKey", "a drill decrypts the backup; add "
                 "the Secret key holding the age identity, or remove verify",
                 "a drill decrypts the backup", id="encrypted-without-decryption-key"),
    pytest.param(INTEGRITY, lambda s: _run(s).pop("backup"),
                 "spec.template.spec", "a schedule's template needs a backup action",
                 "needs a backup action", id="schedule-without-backup"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(schedule="every sunday"),
                 f"{V}.schedule", "is not a cron schedule", "every sunday", id="bad-cron"),
    pytest.param(INTEGRITY, lambda s: _verify(s).pop("schedule"),
                 f"{V}.schedule", "required field is missing", "'schedule' is a required property",
                 id="no-schedule"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(level="full"),
                 f"{V}.level", "'integrity' or 'restore'", "full", id="unknown-level"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(deadlineSeconds=0),
                 f"{V}.deadlineSeconds", "greater than or equal to 1", "0", id="zero-deadline"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(retries=3),
                 f"{V}.retries", "unknown field", "unknown field", id="unknown-field"),
    pytest.param(RESTORE, lambda s: _verify(s)["check"].update(command=[]),
                 f"{V}.check.command", "at least 1 item", "", id="check-without-command"),
    pytest.param(RESTORE, lambda s: _scratch(s).pop("command"),
                 f"{V}.template.spec.containers[0].command", 'add e.g. command: ["sleep", "1d"]',
                 "every container needs a command", id="scratch-container-without-command"),
    pytest.param(RESTORE, lambda s: [_scratch(s).update(name="wait"),
                                     _verify(s)["restore"].update(container="wait")],
                 f"{V}.template.spec.containers[0].name", "'wait' is reserved by Argo",
                 "reserved by Argo", id="scratch-container-reserved-name"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "change", "path", "ours", "crds"), REFUSED)
def test_a_bad_drill_is_refused_by_both_naming_the_field(
    base: dict[str, Any], change: Change, path: str, ours: str, crds: str
) -> None:
    doc = _changed(base, change)
    problems = crd_problems(doc)
    assert any(crds in p for p in problems), problems
    code, stderr = _invoke(doc)
    assert code == 1, stderr
    lines = [line for line in stderr.splitlines() if f": {path}: " in line]
    assert any(ours in line for line in lines), stderr


#: What only backup-gen sees (a schema has no time zone database and does not resolve Argo).
REFUSED_BY_BACKUP_GEN = [
    pytest.param(INTEGRITY, lambda s: _verify(s).update(timeZone="Mars/Olympus_Mons"),
                 f"{V}.timeZone", "'Mars/Olympus_Mons' is not an IANA time zone",
                 id="unknown-timezone"),
    pytest.param(INTEGRITY, lambda s: _verify(s).update(schedule="0 4 * * 8"),
                 f"{V}.schedule", "day of week '8' is out of range 0-6", id="cron-out-of-range"),
    pytest.param(RESTORE, lambda s: _verify(s)["check"].update(args=["{{workflow.name}}"]),
                 f"{V}.check.args[0]", "Argo Workflows would try to resolve", id="argo-variable"),
    pytest.param(RESTORE, lambda s: _verify(s)["template"]["spec"]["containers"].append(
        copy.deepcopy(_scratch(s))),
                 f"{V}.template.spec.containers[1].name", "duplicate container name 'scratch'",
                 id="duplicate-scratch-container"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "change", "path", "message"), REFUSED_BY_BACKUP_GEN)
def test_what_only_backup_gen_refuses(
    base: dict[str, Any], change: Change, path: str, message: str
) -> None:
    code, stderr = _invoke(_changed(base, change))
    assert code == 1, stderr
    assert any(f": {path}: " in line and message in line for line in stderr.splitlines()), stderr


def test_a_missing_key_is_reported_once_when_the_schedule_restores_too() -> None:
    doc = _changed(RESTORE, lambda s: _run(s).update(encryption={"recipients": [
        "age1dp5dsjnzzne2z2y967a9kh98xeyu5dvs3rngw9f088a0rmtvspqs3mf0r2"]}))  # fmt: skip
    code, stderr = _invoke(doc)
    assert code == 1
    lines = [
        x for x in stderr.splitlines() if ": spec.template.spec.encryption.decryptionKey: " in x
    ]
    assert len(lines) == 1, stderr


def test_validate_prints_the_object_the_field_and_what_to_do() -> None:
    _, stderr = _invoke(_changed(INTEGRITY, lambda s: _verify(s).update(check={"command": ["x"]})))
    assert (
        "BackupSchedule/postgres-nightly: spec.verify.check: only a restore drill runs a check; "
        "set level: restore or remove check"
    ) in stderr
