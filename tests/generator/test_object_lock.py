"""``objectLock`` on a storage, a run and a schedule's template: what the models, the CRDs and
``backup-gen validate`` accept and refuse (with the field and what to do), and what a locked
backup renders to: the streamer's lock flags and the LOCK_OUTPUTS parameters, for locked
backups only, the run's lock replacing the storage's whole.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from generator.cli import main
from generator.errors import ValidationFailed
from generator.generate import argo_dict, render_texts, validate_texts
from generator.models import BackupStorage, ObjectLock
from generator.render import RenderOptions, render_objects
from generator.render.pod import OUTPUT_PARAMETERS
from generator.yamlio import dump_documents
from streamer.contract import LOCK_MODES, LOCK_OUTPUTS, MAX_LOCK_DAYS, Flag
from tests.generator.conftest import GOLDEN, crd_problems, load_yaml, run_validate_argo

STORAGE, SCHEDULE = load_yaml(GOLDEN / "seed.in.yaml")
RUN: dict[str, Any] = {
    "apiVersion": "backup-operator.io/v1",
    "kind": "BackupRun",
    "metadata": {"name": "run"},
    "spec": copy.deepcopy(SCHEDULE["spec"]["template"]["spec"]),
}
LOCK_FLAGS = {Flag.OBJECT_LOCK_MODE, Flag.OBJECT_LOCK_DAYS, Flag.LEGAL_HOLD}


def _with_lock(base: dict[str, Any], lock: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    spec = doc["spec"]["template"]["spec"] if doc["kind"] == "BackupSchedule" else doc["spec"]
    spec["objectLock"] = lock
    return doc


def _validate(*docs: dict[str, Any]) -> list[Any]:
    return validate_texts([("case.yaml", dump_documents(list(docs)))])


def test_the_models_take_the_streamers_modes_and_limit() -> None:
    mode = ObjectLock.model_fields["mode"].annotation
    assert typing.get_args(typing.get_args(mode)[0]) == LOCK_MODES
    days = ObjectLock.model_json_schema()["properties"]["days"]["anyOf"][0]
    assert (days["minimum"], days["maximum"]) == (1, MAX_LOCK_DAYS)


# --- accepted ----------------------------------------------------------------------------------

GOOD_LOCKS = [
    pytest.param({"mode": "GOVERNANCE", "days": 1}, id="governance-one-day"),
    pytest.param({"mode": "COMPLIANCE", "days": MAX_LOCK_DAYS}, id="compliance-longest"),
    pytest.param({"mode": "COMPLIANCE", "days": 30, "legalHold": True}, id="retention-and-hold"),
    pytest.param({"legalHold": True}, id="legal-hold-alone"),
]


@pytest.mark.parametrize("lock", GOOD_LOCKS)
@pytest.mark.parametrize("base", [STORAGE, SCHEDULE, RUN], ids=lambda d: d["kind"])
def test_a_good_lock_is_accepted_by_the_crd_and_backup_gen(
    base: dict[str, Any], lock: dict[str, Any]
) -> None:
    doc = _with_lock(base, lock)
    assert crd_problems(doc) == []
    docs = [doc] if doc["kind"] == "BackupStorage" else [STORAGE, doc]
    assert _validate(*docs)


# --- refused -----------------------------------------------------------------------------------

#: (lock, field path under objectLock, a part of backup-gen's message, of the CRD's)
BAD_LOCKS = [
    pytest.param({"days": 7}, "", "days needs a mode: add mode: GOVERNANCE or COMPLIANCE",
                 "days needs a mode", id="days-without-mode"),
    pytest.param({"mode": "GOVERNANCE"}, "", "mode needs days: add days (1..36500)",
                 "mode needs days", id="mode-without-days"),
    pytest.param({"mode": "COMPLIANCE", "legalHold": True}, "", "mode needs days",
                 "mode needs days", id="mode-and-hold-without-days"),
    pytest.param({}, "", "objectLock needs mode and days, legalHold: true, or both",
                 "remove objectLock to store backups unlocked", id="empty"),
    pytest.param({"legalHold": False}, "", "objectLock needs mode and days",
                 "objectLock needs mode and days", id="legal-hold-false-alone"),
    pytest.param({"mode": "GOVERNANCE", "days": 0}, ".days", "greater than or equal to 1",
                 "", id="zero-days"),
    pytest.param({"mode": "GOVERNANCE", "days": MAX_LOCK_DAYS + 1}, ".days",
                 "less than or equal to 36500", "36501", id="too-many-days"),
    pytest.param({"mode": "governance", "days": 1}, ".mode", "'GOVERNANCE' or 'COMPLIANCE'",
                 "governance", id="mode-in-lower-case"),
    pytest.param({"mode": "COMPLIANCE", "days": "30d"}, ".days", "valid integer", "30d",
                 id="days-not-a-number"),
    pytest.param({"legalHold": True, "until": "2030-01-01"}, ".until", "unknown field",
                 "unknown field", id="unknown-field"),
]  # fmt: skip


@pytest.mark.parametrize(("lock", "field", "ours", "crds"), BAD_LOCKS)
@pytest.mark.parametrize("base", [STORAGE, SCHEDULE, RUN], ids=lambda d: d["kind"])
def test_a_bad_lock_is_refused_by_both_naming_the_field(
    base: dict[str, Any], lock: dict[str, Any], field: str, ours: str, crds: str
) -> None:
    doc = _with_lock(base, lock)
    problems = crd_problems(doc)
    assert any(crds in p for p in problems), problems
    docs = [doc] if doc["kind"] == "BackupStorage" else [STORAGE, doc]
    with pytest.raises(ValidationFailed) as failed:
        _validate(*docs)
    prefix = "spec.template.spec" if doc["kind"] == "BackupSchedule" else "spec"
    found = [(p.path, p.message) for p in failed.value.problems]
    assert any(path == f"{prefix}.objectLock{field}" and ours in m for path, m in found), found


def test_validate_prints_the_object_the_field_and_what_to_do() -> None:
    text = dump_documents([STORAGE, _with_lock(SCHEDULE, {"days": 30})])
    result = CliRunner().invoke(main, ["validate", "-f", "-"], input=text)
    assert result.exit_code == 1
    assert (
        "BackupSchedule/mysql-daily: spec.template.spec.objectLock: days needs a mode: add "
        "mode: GOVERNANCE or COMPLIANCE, or remove days"
    ) in result.stderr
    assert "Traceback" not in result.output


# --- rendered ----------------------------------------------------------------------------------


def _backups(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The backup template of every rendered object that has one, by object name."""
    found = {}
    for doc in docs:
        spec = doc["spec"].get("workflowSpec", doc["spec"])
        for template in spec["templates"]:
            if template["name"] == "backup":
                found[doc["metadata"]["name"]] = template
    return found


def _lock_args(template: dict[str, Any]) -> list[str]:
    args: list[str] = template["container"]["args"]
    options = args[: args.index(Flag.END_OF_OPTIONS)]
    picked = []
    for i, arg in enumerate(options):
        if arg in (Flag.OBJECT_LOCK_MODE, Flag.OBJECT_LOCK_DAYS):
            picked += [arg, options[i + 1]]
        elif arg == Flag.LEGAL_HOLD:
            picked.append(arg)
    return picked


def _outputs(template: dict[str, Any]) -> tuple[str, ...]:
    return tuple(p["name"] for p in (template.get("outputs") or {}).get("parameters", ()))


def _render(*docs: dict[str, Any]) -> list[dict[str, Any]]:
    text = render_texts([("case.yaml", dump_documents(list(docs)))], RenderOptions())
    return [d for d in yaml.safe_load_all(text) if d]


LOCKED_STORAGE = _with_lock(STORAGE, {"mode": "GOVERNANCE", "days": 30})

RENDER_CASES = [
    pytest.param(STORAGE, None, [], id="no-lock-anywhere"),
    pytest.param(LOCKED_STORAGE, None,
                 [Flag.OBJECT_LOCK_MODE, "GOVERNANCE", Flag.OBJECT_LOCK_DAYS, "30"],
                 id="the-storages-lock-is-the-default"),
    pytest.param(LOCKED_STORAGE, {"mode": "COMPLIANCE", "days": 7},
                 [Flag.OBJECT_LOCK_MODE, "COMPLIANCE", Flag.OBJECT_LOCK_DAYS, "7"],
                 id="the-runs-lock-wins"),
    pytest.param(LOCKED_STORAGE, {"legalHold": True}, [Flag.LEGAL_HOLD],
                 id="the-runs-lock-replaces-the-storages-whole"),
    pytest.param(STORAGE, {"mode": "COMPLIANCE", "days": 365, "legalHold": True},
                 [Flag.OBJECT_LOCK_MODE, "COMPLIANCE", Flag.OBJECT_LOCK_DAYS, "365",
                  Flag.LEGAL_HOLD],
                 id="retention-and-legal-hold"),
]  # fmt: skip


@pytest.mark.parametrize(("storage", "lock", "flags"), RENDER_CASES)
@pytest.mark.parametrize("base", [SCHEDULE, RUN], ids=lambda d: d["kind"])
def test_lock_flags_and_outputs_only_for_locked_backups(
    base: dict[str, Any], storage: dict[str, Any], lock: dict[str, Any] | None, flags: list[str]
) -> None:
    doc = copy.deepcopy(base) if lock is None else _with_lock(base, lock)
    docs = _render(storage, doc)
    (backup,) = _backups(docs).values()
    assert _lock_args(backup) == flags
    assert _outputs(backup) == (OUTPUT_PARAMETERS + LOCK_OUTPUTS if flags else OUTPUT_PARAMETERS)
    for name in LOCK_OUTPUTS if flags else ():
        (parameter,) = [p for p in backup["outputs"]["parameters"] if p["name"] == name]
        assert parameter["globalName"] == name  # the controller reads the Workflow's outputs
    locked = "locked with S3 Object Lock" in backup_description(docs)
    assert locked is bool(flags)
    # A restore writes nothing: no lock flag, no output.
    for doc_ in docs:
        spec = doc_["spec"].get("workflowSpec", doc_["spec"])
        for template in spec["templates"]:
            if template["name"] == "restore":
                assert _lock_args(template) == []
                assert "outputs" not in template


def backup_description(docs: list[dict[str, Any]]) -> str:
    return str(docs[0]["metadata"]["annotations"]["workflows.argoproj.io/description"])


def test_no_golden_case_without_object_lock_declares_lock_outputs() -> None:
    for source in sorted(GOLDEN.glob("*.in.yaml")):
        if source.name == "object-lock.in.yaml":
            continue
        docs = [
            d
            for d in yaml.safe_load_all(
                render_texts([(source.name, source.read_text())], RenderOptions())
            )
            if d
        ]
        for name, template in _backups(docs).items():
            assert _lock_args(template) == [], f"{source.name}: {name}"
            assert not set(LOCK_OUTPUTS) & set(_outputs(template)), f"{source.name}: {name}"


def test_the_golden_case_locks_each_backup_as_written() -> None:
    source = GOLDEN / "object-lock.in.yaml"
    docs = [
        d
        for d in yaml.safe_load_all(
            render_texts([(source.name, source.read_text())], RenderOptions())
        )
        if d
    ]
    locks = {name: _lock_args(t) for name, t in _backups(docs).items()}
    assert locks == {
        "postgres-locked": [Flag.OBJECT_LOCK_MODE, "GOVERNANCE", Flag.OBJECT_LOCK_DAYS, "30"],
        "audit-2024": [
            Flag.OBJECT_LOCK_MODE,
            "COMPLIANCE",
            Flag.OBJECT_LOCK_DAYS,
            "3650",
            Flag.LEGAL_HOLD,
        ],
        "evidence": [Flag.LEGAL_HOLD],
    }


def test_locked_objects_rendered_for_the_controller_pass_validate_argo(tmp_path: Path) -> None:
    objects = [obj for _, obj in _parsed(GOLDEN / "object-lock.in.yaml")]
    options = RenderOptions(catalogue=True, credentials_secret="vault-backup-credentials")
    rendered = [argo_dict(o) for o in render_objects(objects, options)]
    assert any(_lock_args(t) for t in _backups(rendered).values())
    path = tmp_path / "locked.argo.yaml"
    path.write_text(dump_documents(rendered))
    done = run_validate_argo([path])
    assert done.returncode == 0, done.stdout + done.stderr


def _parsed(path: Path) -> list[tuple[str, Any]]:
    objects = validate_texts([(path.name, path.read_text())])
    assert any(isinstance(o, BackupStorage) and o.spec.object_lock for o in objects)
    return [(path.name, o) for o in objects]


def test_the_readmes_object_lock_yaml_is_valid_and_renders_locked() -> None:
    readme = (GOLDEN.parents[1] / "README.md").read_text()
    section = readme[readme.index("### Immutable backups (S3 Object Lock)") :]
    section = section[: section.index("\n### ", 1)]
    (block,) = re.findall(r"^```yaml\n(.*?)^```$", section, re.M | re.S)
    docs = [d for d in yaml.safe_load_all(block) if d]
    assert all(crd_problems(d) == [] for d in docs)
    locks = {name: _lock_args(t) for name, t in _backups(_render(*docs)).items()}
    assert locks == {
        "audit-2024": [Flag.OBJECT_LOCK_MODE, "COMPLIANCE", Flag.OBJECT_LOCK_DAYS, "3650",
                       Flag.LEGAL_HOLD],
    }  # fmt: skip
