"""The catalogue, by tables of named cases: a cron-spawned Workflow recorded as a BackupRun,
recording before releasing the Workflow's finalizer, a schedule gone, a record rotated away
(never recorded again), a name taken, no secret in any status or Event, and a controller
killed after any action of any plan, whose restart records every run once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from generator.controller.catalogue import record_body, record_workflow
from generator.controller.names import (
    ANNOTATION_RECORDS,
    ANNOTATION_SCHEDULED_TIME,
    FINALIZER_CATALOGUE,
    FINALIZER_STORED_OBJECT,
    LABEL_CRON_WORKFLOW,
    LABEL_MANAGED_BY,
)
from generator.controller.objects import restore_workflow_name, run_workflow_name
from generator.controller.plan import (
    Apply,
    ApplyStatus,
    EmitEvent,
    ObjectRef,
    Plan,
    RemoveFinalizer,
)
from generator.controller.runs import reconcile_run
from generator.controller.settings import Settings
from generator.models import LABEL_SCHEDULE, LABEL_STORAGE
from tests.conftest import FAKE_SECRET
from tests.controller.memory import (
    NAMESPACE,
    NOW,
    PATH,
    Body,
    actions_of,
    condition_of,
    outputs,
    run_body,
    run_spec,
    status_of,
    storage_body,
    workflow_body,
    workflow_status,
)
from tests.controller.world import World

SETTINGS = Settings()
WF = "nightly-1714532400"
SUCCEEDED = workflow_status("Succeeded", global_outputs=outputs(), name=WF)


def schedule_body(spec: Body | None = None, *, deleting: bool = False) -> Body:
    meta: Body = {"name": "nightly", "namespace": NAMESPACE, "uid": "uid-schedule"}
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    return {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupSchedule",
        "metadata": meta,
        "spec": {
            "schedule": "0 3 * * *",
            "template": {
                "metadata": {"labels": {"team": "db"}, "annotations": {"owner": "dba"}},
                "spec": spec or run_spec(),
            },
        },
    }


def cron_workflow(
    status: Body | None = None, *, holds: bool = True, deleting: bool = False
) -> Body:
    body = workflow_body(
        WF,
        status,
        labels={LABEL_CRON_WORKFLOW: "nightly"},
        finalizers=[FINALIZER_CATALOGUE] if holds else None,
        deleting=deleting,
    )
    body["metadata"]["annotations"] = {ANNOTATION_SCHEDULED_TIME: "2024-05-01T03:00:00Z"}
    return body


def record(wf_status: Body | None = None, schedule: Body | None = None) -> Body:
    """The record as it is once applied, with the status the catalogue gave it."""
    wf = cron_workflow(wf_status)
    body = record_body(wf, schedule or schedule_body())
    body["metadata"]["uid"] = "uid-record"
    if wf_status is not None:
        plan = record_workflow(wf, schedule=schedule_body(), run=None, settings=SETTINGS, now=NOW)
        body["status"] = status_of(plan)
    return body


def record_plan(
    workflow: Body,
    *,
    schedule: Body | None = None,
    run: Body | None = None,
    no_schedule: bool = False,
) -> Plan:
    return record_workflow(
        workflow,
        schedule=None if no_schedule else schedule or schedule_body(),
        run=run,
        settings=SETTINGS,
        now=NOW,
    )


def kinds(plan: Plan) -> list[str]:
    return [type(a).__name__ for a in plan.actions]


# --- the record ----------------------------------------------------------------------------


def test_the_record_is_named_labelled_owned_and_specified_by_the_schedule() -> None:
    plan = record_plan(cron_workflow(workflow_status("Running", name=WF)))
    body = actions_of(plan, Apply)[0].body
    assert body["apiVersion"] == "backup-operator.io/v1"
    assert body["kind"] == "BackupRun"
    assert body["metadata"] == {
        "name": WF,
        "namespace": NAMESPACE,
        "labels": {
            "team": "db",
            LABEL_SCHEDULE: "nightly",
            LABEL_STORAGE: "minio",
            LABEL_MANAGED_BY: "backup-operator",
        },
        "annotations": {
            "owner": "dba",
            ANNOTATION_RECORDS: WF,
            ANNOTATION_SCHEDULED_TIME: "2024-05-01T03:00:00Z",
        },
        "ownerReferences": [
            {
                "apiVersion": "backup-operator.io/v1",
                "kind": "BackupSchedule",
                "name": "nightly",
                "uid": "uid-schedule",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert body["spec"] == run_spec()
    assert "status" not in body


def test_a_delete_policy_record_is_held_from_the_start() -> None:
    wf = cron_workflow(workflow_status("Running", name=WF))
    body = record_body(wf, schedule_body(run_spec(retainPolicy="Delete")))
    assert body["metadata"]["finalizers"] == [FINALIZER_STORED_OBJECT]


def test_the_record_keeps_the_spec_it_ran_with() -> None:
    run = record(workflow_status("Running", name=WF))
    edited = schedule_body(run_spec(retainPolicy="Delete"))
    plan = record_plan(cron_workflow(SUCCEEDED), schedule=edited, run=run)
    assert actions_of(plan, Apply) == []


def test_a_recorded_run_never_gets_a_workflow_created() -> None:
    run = record(workflow_status("Running", name=WF))
    plan = reconcile_run(
        run,
        storage=storage_body(),
        workflow=None,
        restore_workflow=None,
        storage_error=None,
        settings=SETTINGS,
        now=NOW,
    )
    assert "Create" not in kinds(plan)
    assert status_of(plan)["phase"] == "Failed"
    assert condition_of(status_of(plan), "Failed")["reason"] == "WorkflowMissing"


# --- record first, then release ------------------------------------------------------------

RUNNING = workflow_status("Running", name=WF)

RECORD_CASES = [
    pytest.param(cron_workflow(), None, ["Apply", "ApplyStatus"], id="new-not-started"),
    pytest.param(
        cron_workflow(RUNNING), None, ["Apply", "ApplyStatus", "EmitEvent"], id="first-seen-running"
    ),
    pytest.param(
        cron_workflow(SUCCEEDED),
        None,
        ["Apply", "ApplyStatus", "EmitEvent", "RemoveFinalizer"],
        id="ran-while-the-controller-was-down",
    ),
    pytest.param(
        cron_workflow(SUCCEEDED),
        "running",
        ["ApplyStatus", "EmitEvent", "RemoveFinalizer"],
        id="succeeded",
    ),
    pytest.param(
        cron_workflow(workflow_status("Failed", name=WF)),
        "running",
        ["ApplyStatus", "EmitEvent", "RemoveFinalizer"],
        id="failed",
    ),
    pytest.param(
        cron_workflow(workflow_status("Succeeded", name=WF)),
        "running",
        ["ApplyStatus", "EmitEvent", "RemoveFinalizer"],
        id="succeeded-outputs-missing",
    ),
    pytest.param(
        cron_workflow(SUCCEEDED), "final", ["RemoveFinalizer"], id="recorded-not-yet-released"
    ),
    pytest.param(cron_workflow(RUNNING), "running", [], id="running-recorded"),
    pytest.param(
        cron_workflow(RUNNING, deleting=True),
        "running",
        ["ApplyStatus", "EmitEvent", "RemoveFinalizer"],
        id="deleted-while-running",
    ),
    pytest.param(
        cron_workflow(SUCCEEDED, deleting=True),
        "final",
        ["RemoveFinalizer"],
        id="deleted-after-recording",
    ),
    pytest.param(cron_workflow(SUCCEEDED, holds=False), "final", [], id="released"),
    pytest.param(
        cron_workflow(SUCCEEDED, holds=False), None, [], id="released-record-rotated-away"
    ),
    pytest.param(
        cron_workflow(RUNNING, holds=False),
        None,
        ["Apply", "ApplyStatus", "EmitEvent"],
        id="no-finalizer-still-recorded-while-running",
    ),
]


@pytest.mark.parametrize(("workflow", "run", "expected"), RECORD_CASES)
def test_record_then_release(workflow: Body, run: str | None, expected: list[str]) -> None:
    existing = None
    if run == "running":
        existing = record(RUNNING)
    elif run == "final":
        existing = record(SUCCEEDED)
    plan = record_plan(workflow, run=existing)
    assert kinds(plan) == expected
    if "RemoveFinalizer" in expected:
        # Released last, and only once the recorded status is final.
        assert kinds(plan)[-1] == "RemoveFinalizer"
        assert plan.actions[-1] == RemoveFinalizer(
            ObjectRef("argoproj.io/v1alpha1", "Workflow", WF, NAMESPACE, f"uid-wf-{WF}"),
            FINALIZER_CATALOGUE,
        )
        if actions_of(plan, ApplyStatus):
            final = status_of(plan)
        else:
            assert existing is not None
            final = existing["status"]
        assert final["phase"] in ("Succeeded", "Failed", "Error")


def test_a_workflow_deleted_while_running_is_recorded_as_failed() -> None:
    plan = record_plan(cron_workflow(RUNNING, deleting=True), run=record(RUNNING))
    status = status_of(plan)
    assert status["phase"] == "Failed"
    assert condition_of(status, "Failed")["reason"] == "WorkflowDeleted"


def test_a_succeeded_workflow_without_outputs_is_not_a_successful_run() -> None:
    plan = record_plan(cron_workflow(workflow_status("Succeeded", name=WF)), run=record(RUNNING))
    status = status_of(plan)
    assert status["phase"] == "Failed"
    assert condition_of(status, "Failed")["reason"] == "OutputsMissing"
    assert condition_of(status, "Restorable")["status"] == "False"


def test_a_successful_record_has_its_outputs() -> None:
    status = status_of(record_plan(cron_workflow(SUCCEEDED)))
    assert (status["phase"], status["path"], status["workflow"]) == ("Succeeded", PATH, WF)
    assert condition_of(status, "Restorable")["status"] == "True"


SCHEDULE_GONE_CASES = [
    pytest.param(True, False, ["RemoveFinalizer"], id="gone"),
    pytest.param(False, True, ["RemoveFinalizer"], id="being-deleted"),
]


@pytest.mark.parametrize(("gone", "deleting", "expected"), SCHEDULE_GONE_CASES)
def test_a_schedule_gone_just_releases(gone: bool, deleting: bool, expected: list[str]) -> None:
    plan = record_plan(
        cron_workflow(RUNNING), schedule=schedule_body(deleting=deleting), no_schedule=gone
    )
    assert kinds(plan) == expected


def test_a_workflow_of_no_cron_workflow_is_not_catalogued() -> None:
    assert record_plan(workflow_body(WF, RUNNING)) == Plan()


def test_a_name_taken_by_another_run_is_reported_once() -> None:
    other = run_body(WF)
    plan = record_plan(cron_workflow(RUNNING), run=other)
    assert kinds(plan) == ["RemoveFinalizer", "EmitEvent"]
    event = actions_of(plan, EmitEvent)[0]
    assert (event.reason, event.type, event.regarding.kind) == (
        "RecordConflict",
        "Warning",
        "BackupSchedule",
    )
    assert record_plan(cron_workflow(RUNNING, holds=False), run=other) == Plan()


def test_the_deadline_is_watched_for_records_too() -> None:
    plan = record_plan(cron_workflow(RUNNING), run=record(RUNNING))
    assert plan.requeue_after is not None


def test_no_pod_env_value_reaches_a_records_status_or_event() -> None:
    for wf in (cron_workflow(RUNNING), cron_workflow(SUCCEEDED)):
        plan = record_plan(wf)
        assert FAKE_SECRET in repr(actions_of(plan, Apply))  # the user's own template
        said = [a for a in plan.actions if isinstance(a, ApplyStatus | EmitEvent)]
        assert said
        assert FAKE_SECRET not in repr(said)


@pytest.mark.parametrize(
    ("wf_status", "reason"),
    [
        pytest.param(SUCCEEDED, "Succeeded", id="succeeded"),
        pytest.param(workflow_status("Failed", name=WF), "Failed", id="failed"),
    ],
)
def test_the_catalogue_and_the_run_decide_one_event_for_a_runs_end(
    wf_status: Body, reason: str
) -> None:
    """The Workflow's end queues its catalogue entry and its run at once; reading the same
    record, both decide the run's Event, under one name, so the API server keeps one."""
    running = record(workflow_status("Running", name=WF))
    workflow = cron_workflow(wf_status)
    by_catalogue = actions_of(record_plan(workflow, run=running), EmitEvent)
    by_run = actions_of(
        reconcile_run(
            running,
            storage=storage_body(),
            workflow=workflow,
            restore_workflow=None,
            storage_error=None,
            settings=SETTINGS,
            now=NOW,
        ),
        EmitEvent,
    )
    assert [e.reason for e in by_catalogue] == [e.reason for e in by_run] == [reason]
    assert by_catalogue[0].name == by_run[0].name


# --- a restart after any action of any plan ------------------------------------------------


def plans_of_pass(world: World) -> list[tuple[str, Any]]:
    """The objects one controller pass reconciles, in order: Workflows, then runs."""
    keys = sorted(k for k in world.objects if k[0] == "Workflow") + sorted(
        k for k in world.objects if k[0] == "BackupRun"
    )
    return [(k[0], k) for k in keys]


def plan_for(world: World, kind: str, key: Any) -> Plan | None:
    body = world.get(key[0], key[2], key[1])
    if body is None:
        return None
    if kind == "Workflow":
        schedule_name = (body["metadata"].get("labels") or {}).get(LABEL_CRON_WORKFLOW)
        return record_workflow(
            body,
            schedule=world.get("BackupSchedule", schedule_name, NAMESPACE),
            run=world.get("BackupRun", body["metadata"]["name"], NAMESPACE),
            settings=SETTINGS,
            now=NOW,
        )
    return reconcile_run(
        body,
        storage=world.get("BackupStorage", "minio", None),
        workflow=world.get("Workflow", run_workflow_name(body), NAMESPACE),
        restore_workflow=world.get("Workflow", restore_workflow_name(body), NAMESPACE),
        storage_error=None,
        settings=SETTINGS,
        now=NOW,
    )


def controller_pass(world: World, crash: tuple[int, int] | None = None) -> bool:
    """One pass; ``crash`` = (plan number, actions done) cuts that plan short. True when
    some plan had something to do."""
    busy = False
    for number, (kind, key) in enumerate(plans_of_pass(world)):
        plan = plan_for(world, kind, key)
        if plan is None:
            continue
        busy = busy or bool(plan.actions)
        world.carry_out(plan, crash[1] if crash and crash[0] == number else None)
    return busy


def settle(world: World) -> None:
    for _ in range(10):
        if not controller_pass(world):
            return
    raise AssertionError("no fixpoint after 10 passes")


def spawn(world: World) -> None:
    world.put(cron_workflow())


def argo(wf_status: Body) -> Callable[[World], None]:
    def step(world: World) -> None:
        world.set_status("Workflow", WF, NAMESPACE, wf_status)

    return step


def argo_deletes(world: World) -> None:
    """Argo's history limit: the Workflow is deleted (held while the finalizer is on it)."""
    world.delete("Workflow", WF, NAMESPACE)


def rotation_deletes(world: World) -> None:
    world.delete("BackupRun", WF, NAMESPACE)


def argo_keeps(world: World) -> None:
    """A Workflow Argo still keeps after its record was rotated away (it is seen again)."""
    world.put(cron_workflow(SUCCEEDED, holds=False))


RECONCILE = "reconcile"
STEPS: list[str | Callable[[World], None]] = [
    spawn,
    RECONCILE,
    argo(RUNNING),
    RECONCILE,
    argo(SUCCEEDED),
    argo_deletes,  # before the controller saw the end: held by the finalizer
    RECONCILE,
    rotation_deletes,
    argo_keeps,
    RECONCILE,
]


def start_world() -> World:
    world = World()
    world.put(storage_body())
    world.put(schedule_body())
    return world


def play(crash: tuple[int, int, int] | None = None) -> World:
    world = start_world()
    for index, step in enumerate(STEPS):
        if step != RECONCILE:
            assert callable(step)
            step(world)
        elif crash is not None and crash[0] == index:
            controller_pass(world, (crash[1], crash[2]))
            settle(world)
        else:
            settle(world)
    return world


def crash_points() -> list[Any]:
    points = []
    for index, step in enumerate(STEPS):
        if step != RECONCILE:
            continue
        world = start_world()
        for earlier in STEPS[:index]:
            if earlier == RECONCILE:
                settle(world)
            else:
                assert callable(earlier)
                earlier(world)
        for number, (kind, key) in enumerate(plans_of_pass(world)):
            plan = plan_for(world, kind, key)
            if plan is None:
                continue
            for done in range(len(plan.actions)):
                names = "-".join(type(a).__name__ for a in plan.actions[:done]) or "nothing"
                points.append(
                    pytest.param((index, number, done), id=f"step{index}-{kind}-after-{names}")
                )
            world.carry_out(plan)
    return points


REFERENCE = play()


def test_every_run_is_recorded_once_and_never_brought_back() -> None:
    assert ("BackupRun", NAMESPACE, WF) not in REFERENCE.objects  # rotated away, not recorded again
    assert REFERENCE.created[("BackupRun", NAMESPACE, WF)] == 1
    assert [e.reason for e in REFERENCE.events] == ["Started", "Succeeded"]


def test_a_controller_down_for_the_whole_run_still_records_it() -> None:
    world = start_world()
    for step in (spawn, argo(RUNNING), argo(SUCCEEDED), argo_deletes):
        step(world)
    assert ("Workflow", NAMESPACE, WF) in world.objects  # held
    settle(world)
    assert ("Workflow", NAMESPACE, WF) not in world.objects
    assert world.objects[("BackupRun", NAMESPACE, WF)]["status"]["phase"] == "Succeeded"
    assert [e.reason for e in world.events] == ["Succeeded"]


def test_the_record_outlives_its_workflow() -> None:
    world = start_world()
    for step in STEPS[: STEPS.index(rotation_deletes)]:
        if step == RECONCILE:
            settle(world)
        else:
            assert callable(step)
            step(world)
    assert ("Workflow", NAMESPACE, WF) not in world.objects
    run = world.objects[("BackupRun", NAMESPACE, WF)]
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["path"] == PATH


@pytest.mark.parametrize("crash", crash_points())
def test_a_restart_after_any_action_records_once(crash: tuple[int, int, int]) -> None:
    world = play(crash)
    assert world.objects == REFERENCE.objects
    assert world.created == REFERENCE.created
    events = [(e.reason, e.message) for e in world.events]
    assert len(events) == len(set(events))
    assert set(events) <= {(e.reason, e.message) for e in REFERENCE.events}
