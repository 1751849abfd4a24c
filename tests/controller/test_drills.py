"""Restore drills as pure decisions: when a schedule drills which run, and what a drill's
result does to the run it checked (its Verified condition, never its phase)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from generator.controller.drills import (
    ANNOTATION_DRILL_TIME,
    DRILLS_KEPT,
    drill_name,
    verified_condition,
)
from generator.controller.plan import ApplyStatus, Create, Delete, EmitEvent, Plan
from generator.controller.runs import reconcile_run
from generator.controller.schedules import reconcile_schedule
from generator.controller.settings import Settings
from generator.models import LABEL_VERIFIES, LABEL_VERIFY_OF
from tests.controller.bodies import BASE, NOW, run, schedule, stamp, storage
from tests.controller.memory import actions_of, condition_of, status_of

Body = dict[str, Any]
SETTINGS = Settings()
SHA = "ab" * 32
DAILY_AT_4 = {"schedule": "0 4 * * *"}
#: NOW is 12:00; the drill schedule fired at 04:00 the same day.
FIRED = BASE + timedelta(hours=4)


def backed_up(name: str, at: float, **kw: Any) -> Body:
    """A successful run that stored ``<name>.sql.gz``."""
    body = run(name, "Succeeded", at, **kw)
    body["status"].update(path=f"{name}.sql.gz", sha256=SHA, sizeInBytes=1024)
    return body


def drill(
    name: str,
    of_run: str,
    phase: str | None,
    finished: float | None = None,
    *,
    level: str = "integrity",
    outputs: dict[str, str] | None = None,
    message: str | None = None,
) -> Body:
    """A drill Workflow as Argo reports it."""
    body: Body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": "db",
            "uid": f"uid-{name}",
            "labels": {
                LABEL_VERIFY_OF: "nightly",
                LABEL_VERIFIES: of_run,
                "backup-operator.io/verify-level": level,
            },
        },
        "status": {},
    }
    if phase is not None:
        body["status"] = {"phase": phase, "startedAt": stamp((finished or 1) - 0.1)}
        if finished is not None:
            body["status"]["finishedAt"] = stamp(finished)
        if message:
            body["status"]["message"] = message
        if outputs:
            params = [{"name": k, "value": v} for k, v in outputs.items()]
            body["status"]["outputs"] = {"parameters": params}
    return body


def drilled_schedule(status: Body | None = None, **verify: Any) -> Body:
    return schedule(verify={**DAILY_AT_4, **verify}, status=status)


def _reconcile_schedule(
    body: Body, runs: list[Body], drills: list[Body] | None = None, **kw: Any
) -> Plan:
    return reconcile_schedule(
        body,
        storage=kw.pop("storage_body", storage()),
        runs=runs,
        settings=SETTINGS,
        now=kw.pop("now", NOW),
        drills=drills or [],
    )


# --- which run, when --------------------------------------------------------------------------


def test_a_due_drill_checks_the_newest_successful_backup_once() -> None:
    runs = [backed_up("nightly-1", 1), backed_up("nightly-2", 2), run("nightly-3", "Failed", 3)]
    plan = _reconcile_schedule(drilled_schedule(), runs)
    (created,) = actions_of(plan, Create)
    body = created.body
    meta = body["metadata"]
    assert (
        meta["name"] == drill_name("nightly", FIRED) == f"nightly-verify-{int(FIRED.timestamp())}"
    )
    assert meta["labels"][LABEL_VERIFY_OF] == "nightly"
    assert meta["labels"][LABEL_VERIFIES] == "nightly-2"
    assert meta["annotations"][ANNOTATION_DRILL_TIME] == stamp(4)
    assert meta["ownerReferences"][0]["kind"] == "BackupSchedule"
    assert meta["ownerReferences"][0]["uid"] == "uid-nightly"
    text = str(body["spec"])
    assert "nightly-2.sql.gz" in text
    assert SHA in text
    status = status_of(plan)
    assert status["lastVerifyScheduleTime"] == stamp(4)
    events = [a for a in plan.actions if isinstance(a, EmitEvent) and a.reason == "DrillStarted"]
    assert len(events) == 1
    assert "nightly-2" in events[0].message
    # the Create comes before the status that records it, the Event after both
    order = [type(a) for a in plan.actions]
    assert order.index(Create) < order.index(ApplyStatus) < order.index(EmitEvent)
    # woken at the next fire time: tomorrow 04:00
    assert plan.requeue_after == pytest.approx(16 * 3600)


def test_a_handled_fire_time_starts_no_second_drill_even_once_the_drill_is_gone() -> None:
    runs = [backed_up("nightly-1", 1)]
    first = _reconcile_schedule(drilled_schedule(), runs)
    recorded = drilled_schedule(status=status_of(first))
    again = _reconcile_schedule(recorded, runs)  # the drill Workflow deleted in between
    assert actions_of(again, Create) == []
    assert not [a for a in again.actions if isinstance(a, EmitEvent) and a.reason == "DrillStarted"]


def test_a_restart_before_the_status_was_written_names_the_same_drill() -> None:
    runs = [backed_up("nightly-1", 1)]
    one = actions_of(_reconcile_schedule(drilled_schedule(), runs), Create)
    two = actions_of(
        _reconcile_schedule(drilled_schedule(), runs, now=NOW + timedelta(minutes=5)), Create
    )
    assert one[0].body["metadata"]["name"] == two[0].body["metadata"]["name"]  # create-if-absent


def test_without_a_successful_backup_there_is_nothing_to_drill() -> None:
    plan = _reconcile_schedule(drilled_schedule(), [run("nightly-1", "Failed", 1)])
    assert actions_of(plan, Create) == []
    (warning,) = [a for a in plan.actions if isinstance(a, EmitEvent) and a.type == "Warning"]
    assert warning.reason == "NothingToVerify"
    assert status_of(plan)["lastVerifyScheduleTime"] == stamp(4)


def test_a_drill_waits_for_its_storage_without_counting_the_fire_time() -> None:
    plan = _reconcile_schedule(
        drilled_schedule(), [backed_up("nightly-1", 1)], storage_body=storage(ready="False")
    )
    assert actions_of(plan, Create) == []
    assert "lastVerifyScheduleTime" not in status_of(plan)
    assert plan.requeue_after is not None
    assert plan.requeue_after <= 60


@pytest.mark.parametrize(
    ("verify", "created"),
    [
        ({"suspend": True}, -24),  # suspended
        ({}, 5),  # the schedule was made after today's 04:00
        ({"schedule": "0 0 31 2 *"}, -24),  # never fires
    ],
    ids=["suspended", "made-after-the-fire-time", "never-fires"],
)
def test_no_drill_is_started(verify: Body, created: float) -> None:
    body = drilled_schedule(**verify)
    body["metadata"]["creationTimestamp"] = stamp(created)
    plan = _reconcile_schedule(body, [backed_up("nightly-1", 1)])
    assert actions_of(plan, Create) == []
    written = status_of(plan) if actions_of(plan, ApplyStatus) else {}
    assert "lastVerifyScheduleTime" not in written


def test_a_schedule_without_drills_makes_none() -> None:
    plan = _reconcile_schedule(schedule(), [backed_up("nightly-1", 1)])
    assert actions_of(plan, Create) == []


def test_a_run_being_deleted_is_not_drilled() -> None:
    runs = [backed_up("nightly-1", 1), backed_up("nightly-2", 2, deleting=True)]
    (created,) = actions_of(_reconcile_schedule(drilled_schedule(), runs), Create)
    assert created.body["metadata"]["labels"][LABEL_VERIFIES] == "nightly-1"


def test_the_drill_time_zone_moves_the_fire_time() -> None:
    # 04:00 in Tokyo is 19:00 UTC the day before: fired before NOW, after the schedule was made
    plan = _reconcile_schedule(drilled_schedule(timeZone="Asia/Tokyo"), [backed_up("nightly-1", 1)])
    assert status_of(plan)["lastVerifyScheduleTime"] == stamp(-5)


# --- the schedule's record ----------------------------------------------------------------------


def test_the_schedule_records_its_newest_successful_drill_and_never_moves_back() -> None:
    drills = [
        drill("d1", "nightly-1", "Succeeded", 2),
        drill("d2", "nightly-2", "Succeeded", 3),
        drill("d3", "nightly-2", "Failed", 4, outputs={"failure": "DigestMismatch"}),
    ]
    prior = {"lastVerifyScheduleTime": stamp(4)}
    plan = _reconcile_schedule(drilled_schedule(status=prior), [backed_up("nightly-2", 1)], drills)
    status = status_of(plan)
    assert status["lastVerifiedTime"] == stamp(3)
    assert status["lastVerifiedRun"] == "nightly-2"
    later = {**status, "lastVerifiedTime": stamp(6), "lastVerifiedRun": "nightly-9"}
    plan = _reconcile_schedule(drilled_schedule(status=later), [backed_up("nightly-2", 1)], drills)
    kept = status_of(plan) if actions_of(plan, ApplyStatus) else later
    assert kept["lastVerifiedTime"] == stamp(6)
    assert kept["lastVerifiedRun"] == "nightly-9"


def test_old_drills_go_once_their_runs_recorded_them() -> None:
    runs = [backed_up("nightly-1", 1)]
    drills = [drill(f"d{i}", "nightly-1", "Succeeded", i) for i in range(1, DRILLS_KEPT + 3)]
    recorded = verified_condition([drills[0]])
    assert recorded is not None
    runs[0]["status"]["conditions"] = [
        {"type": "Verified", "status": "True", "reason": "Verified", "message": recorded.message}
    ]
    prior = {"lastVerifyScheduleTime": stamp(4)}
    plan = _reconcile_schedule(drilled_schedule(status=prior), runs, drills)
    # d1 is recorded; d2 is not (the run shows d1's result): kept until it is
    assert [a.ref.name for a in actions_of(plan, Delete)] == ["d1"]


# --- what a result does to its run --------------------------------------------------------------


def _reconcile_run(body: Body, drills: list[Body]) -> Plan:
    return reconcile_run(
        body,
        storage=storage(),
        workflow=None,
        restore_workflow=None,
        storage_error=None,
        settings=SETTINGS,
        now=NOW,
        drills=drills,
    )


def test_a_passed_drill_marks_the_run_verified_once() -> None:
    body = backed_up("nightly-1", 1)
    body["status"]["workflow"] = "nightly-1"
    plan = _reconcile_run(body, [drill("d1", "nightly-1", "Succeeded", 5)])
    status = status_of(plan)
    verified = condition_of(status, "Verified")
    assert verified["status"] == "True"
    assert verified["reason"] == "Verified"
    assert "integrity drill d1 passed at " + stamp(5) in verified["message"]
    assert status["phase"] == "Succeeded"
    (event,) = [a for a in plan.actions if isinstance(a, EmitEvent)]
    assert (event.reason, event.type) == ("Verified", "Normal")
    # applied: the next reconcile writes nothing and tells nothing again
    body["status"] = status
    again = _reconcile_run(body, [drill("d1", "nightly-1", "Succeeded", 5)])
    assert actions_of(again, ApplyStatus) == []
    assert not [a for a in again.actions if isinstance(a, EmitEvent)]
    # the drill deleted: the result stays
    gone = _reconcile_run(body, [])
    assert actions_of(gone, ApplyStatus) == []


@pytest.mark.parametrize(
    ("outputs", "message", "reason", "said"),
    [
        (
            {"failure": "DigestMismatch", "failureMessage": "sha256 is cd…, expected ab…"},
            None,
            "DigestMismatch",
            "sha256 is cd…, expected ab…",
        ),
        (
            {"failure": "DecryptFailed", "failureMessage": "no identity matched"},
            None,
            "DecryptFailed",
            "no identity matched",
        ),
        (
            {"failure": "CheckFailed", "failureMessage": "the check command exited with 1"},
            None,
            "CheckFailed",
            "exited with 1",
        ),
        (
            {"failure": "CommandFailed", "failureMessage": "mysql exited with 1"},
            None,
            "CommandFailed",
            "mysql exited with 1",
        ),
        (None, "Step exceeded its deadline", "DrillFailed", "Step exceeded its deadline"),
    ],
    ids=["digest", "decrypt", "check", "restore-command", "no-outputs"],
)
def test_a_failed_drill_says_why_and_leaves_the_backup_alone(
    outputs: dict[str, str] | None, message: str | None, reason: str, said: str
) -> None:
    body = backed_up("nightly-1", 1)
    body["status"]["workflow"] = "nightly-1"
    failed = drill(
        "d1", "nightly-1", "Failed", 5, level="restore", outputs=outputs, message=message
    )
    plan = _reconcile_run(body, [failed])
    status = status_of(plan)
    verified = condition_of(status, "Verified")
    assert (verified["status"], verified["reason"]) == ("False", reason)
    assert said in verified["message"]
    assert "restore drill d1 failed" in verified["message"]
    assert status["phase"] == "Succeeded"
    assert status["path"] == "nightly-1.sql.gz"
    assert actions_of(plan, Delete) == []
    (event,) = [a for a in plan.actions if isinstance(a, EmitEvent)]
    assert (event.reason, event.type) == (reason, "Warning")


def test_the_newest_finished_drill_decides() -> None:
    drills = [
        drill("d2", "nightly-1", "Failed", 6, outputs={"failure": "DigestMismatch"}),
        drill("d1", "nightly-1", "Succeeded", 5),
        drill("d3", "nightly-1", "Running"),
    ]
    verified = verified_condition(drills)
    assert verified is not None
    assert (verified.status, verified.reason) == ("False", "DigestMismatch")
    assert verified_condition([drill("d3", "nightly-1", "Running")]) is None


def test_drill_names_fit_a_label_value_and_stay_distinct() -> None:
    long = "a" * 60
    one, two = drill_name(long, FIRED), drill_name(long + "b", FIRED)
    assert len(one) <= 63
    assert len(two) <= 63
    assert one != two
    assert one.endswith(f"-verify-{int(FIRED.timestamp())}")
