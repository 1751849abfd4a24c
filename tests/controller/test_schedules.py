"""The decisions about a BackupSchedule, by tables of named cases: its Argo objects (applied
whole, owned by it, valid for Argo), the storage it may use, its status, rotation, the trigger
annotation, Events on transitions only, and a restart after any prefix of each plan.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.controller.names import (
    ANNOTATION_SCHEDULED_TIME,
    FINALIZER_CATALOGUE,
    FINALIZER_STORED_OBJECT,
    LABEL_CRON_WORKFLOW,
    LABEL_MANAGED_BY,
)
from generator.controller.objects import parse_storage
from generator.controller.plan import (
    Apply,
    ApplyStatus,
    Create,
    Delete,
    EmitEvent,
    ObjectRef,
    Patch,
    Plan,
)
from generator.controller.schedules import TRIGGER_RECHECK_SECONDS, reconcile_schedule
from generator.controller.settings import Settings
from generator.controller.triggers import trigger_workflow_name
from generator.generate import argo_dict
from generator.models import (
    ANNOTATION_TRIGGER,
    LABEL_SCHEDULE,
    LABEL_STORAGE,
    MAX_ACTIVE_RUNS,
    BackupRun,
    BackupRunStatus,
    BackupSchedule,
    BackupScheduleSpec,
    ObjectMeta,
)
from generator.render import RenderOptions, render_run, render_schedule
from tests.controller.bodies import NAMESPACE, NOW, Body, run, schedule, stamp, storage
from tests.controller.world import World, check_restart_safe, settle
from tests.generator.conftest import run_validate_argo

SETTINGS = Settings(image="registry.test/backup-operator:1", service_account="backup-sa")
OWNER = {
    "apiVersion": "backup-operator.io/v1",
    "kind": "BackupSchedule",
    "name": "nightly",
    "uid": "uid-nightly",
    "controller": True,
    "blockOwnerDeletion": True,
}
SCHEDULE_REF = ObjectRef(
    "backup-operator.io/v1", "BackupSchedule", "nightly", NAMESPACE, "uid-nightly"
)


def plan_for(
    body: Body, *, store: Body | None = None, runs: list[Body] | None = None, **kw: Any
) -> Plan:
    return reconcile_schedule(
        body,
        storage=storage() if store is None else store,
        runs=runs or [],
        settings=SETTINGS,
        now=kw.get("now", NOW),
    )


def of(plan: Plan, kind: type) -> list[Any]:
    return [a for a in plan.actions if isinstance(a, kind)]


def applied(plan: Plan, kind: str) -> Body:
    (body,) = [a.body for a in of(plan, Apply) if a.body["kind"] == kind]
    return body


def status_of(plan: Plan) -> Body:
    (action,) = of(plan, ApplyStatus)
    return action.status


def ready_of(status: Body) -> Body:
    (cond,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    return cond


def reconcile_world(world: World) -> Plan:
    """The schedule of ``world``, reconciled with what the world holds now."""
    return reconcile_schedule(
        world.get("BackupSchedule", "nightly", NAMESPACE) or {},
        storage=world.get("BackupStorage", "minio", None),
        runs=world.of_kind("BackupRun"),
        settings=SETTINGS,
        now=NOW,
    )


# --- the Argo objects ------------------------------------------------------------------------


def test_cron_workflow_and_restore_template_are_owned_and_rendered_for_the_controller() -> None:
    plan = plan_for(schedule())
    cron = applied(plan, "CronWorkflow")
    template = applied(plan, "WorkflowTemplate")
    assert [type(a).__name__ for a in plan.actions[:2]] == ["Apply", "Apply"]
    for obj in (cron, template):
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert obj["metadata"]["ownerReferences"] == [OWNER]
        assert obj["metadata"]["labels"][LABEL_MANAGED_BY] == "backup-operator"
        assert obj["metadata"]["labels"][LABEL_SCHEDULE] == "nightly"
    assert cron["metadata"]["name"] == "nightly"
    assert template["metadata"]["name"] == "nightly-restore"
    assert cron["spec"]["workflowMetadata"]["finalizers"] == [FINALIZER_CATALOGUE]
    assert "finalizers" not in template["spec"].get("workflowMetadata", {})
    for spec in (cron["spec"]["workflowSpec"], template["spec"]):
        assert spec["serviceAccountName"] == "backup-sa"
        main = spec["templates"][0]["container"]
        assert main["image"] == "registry.test/backup-operator:1"
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in main["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs == {"minio-backup-credentials"}


def test_objects_rendered_for_the_controller_pass_argo_validation(tmp_path: Path) -> None:
    body = schedule(annotations={ANNOTATION_TRIGGER: "now"})
    plan = plan_for(body)
    objects = [a.body for a in of(plan, Apply)] + [a.body for a in of(plan, Create)]
    assert sorted(o["kind"] for o in objects) == ["CronWorkflow", "Workflow", "WorkflowTemplate"]
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = run_validate_argo([path])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("edit", "field", "expected"),
    [
        pytest.param({"schedule": "30 2 * * *"}, ("schedules",), ["30 2 * * *"], id="schedule"),
        pytest.param({"suspend": True}, ("suspend",), True, id="suspend"),
        pytest.param({"timeZone": "Europe/Berlin"}, ("timezone",), "Europe/Berlin", id="time-zone"),
        pytest.param(
            {"concurrencyPolicy": "Forbid"}, ("concurrencyPolicy",), "Forbid", id="concurrency"
        ),
        pytest.param(
            {"successfulRunsHistoryLimit": 9}, ("successfulJobsHistoryLimit",), 9, id="limit"
        ),
    ],
)
def test_an_edit_of_the_schedule_reaches_the_cron_workflow(
    edit: Body, field: tuple[str, ...], expected: Any
) -> None:
    before = applied(plan_for(schedule()), "CronWorkflow")
    body = schedule()
    body["spec"].update(edit)
    after = applied(plan_for(body), "CronWorkflow")
    value: Any = after["spec"]
    for part in field:
        value = value[part]
    assert value == expected
    assert before != after


def test_a_template_edit_reaches_the_workflow_spec_and_the_restore_template() -> None:
    body = schedule()
    body["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["image"] = "mysql:9"
    plan = plan_for(body)
    for spec in (
        applied(plan, "CronWorkflow")["spec"]["workflowSpec"],
        applied(plan, "WorkflowTemplate")["spec"],
    ):
        assert [s["image"] for s in spec["templates"][0]["sidecars"]] == ["mysql:9"]


# --- the storage, and the Ready condition --------------------------------------------------


READY_CASES = [
    pytest.param(
        storage(), {}, ("True", "Scheduled", "CronWorkflow nightly is applied"), True, id="ready"
    ),
    pytest.param(
        storage(),
        {"suspend": True},
        ("True", "Scheduled", "CronWorkflow nightly is applied, suspended"),
        True,
        id="suspended",
    ),
    pytest.param(
        None,
        {},
        ("False", "StorageNotFound", "BackupStorage minio does not exist: create it"),
        False,
        id="storage-not-found",
    ),
    pytest.param(
        storage(allowed=["other"]),
        {},
        (
            "False",
            "StorageNotAllowed",
            "does not allow namespace db: add it to the storage's spec.allowedNamespaces",
        ),
        True,
        id="storage-not-allowed",
    ),
    pytest.param(
        storage(ready="False", message="the bucket 'backups' does not exist"),
        {},
        (
            "False",
            "StorageNotReady",
            "BackupStorage minio is not Ready: the bucket 'backups' does not exist",
        ),
        True,
        id="storage-not-ready",
    ),
    pytest.param(
        storage(ready=None),
        {},
        ("Unknown", "StorageNotReady", "BackupStorage minio has not been checked yet"),
        True,
        id="storage-not-checked-yet",
    ),
    pytest.param(
        storage(),
        {"timeZone": "Mars/Olympus"},
        ("False", "InvalidSpec", "'Mars/Olympus' is not an IANA time zone"),
        True,
        id="unknown-time-zone",
    ),
]


@pytest.mark.parametrize(("store", "edit", "ready", "applies"), READY_CASES)
def test_ready_condition(
    store: Body | None, edit: Body, ready: tuple[str, str, str], applies: bool
) -> None:
    body = schedule()
    body["spec"].update(edit)
    plan = reconcile_schedule(body, storage=store, runs=[], settings=SETTINGS, now=NOW)
    cond = ready_of(status_of(plan))
    assert (cond["status"], cond["reason"]) == ready[:2]
    assert ready[2] in cond["message"]
    assert cond["lastTransitionTime"] == stamp(12)
    assert bool(of(plan, Apply)) is applies
    events = of(plan, EmitEvent)
    if ready[0] == "Unknown":
        assert events == []
    else:
        (event,) = events
        assert event.regarding == SCHEDULE_REF
        assert event.reason == ("Ready" if ready[0] == "True" else ready[1])
        assert event.type == ("Normal" if ready[0] == "True" else "Warning")


def test_a_storage_that_does_not_allow_the_namespace_leaves_the_cron_workflow_suspended() -> None:
    cron = applied(plan_for(schedule(), store=storage(allowed=["prod"])), "CronWorkflow")
    assert cron["spec"]["suspend"] is True
    assert (
        applied(plan_for(schedule(), store=storage(allowed=["prod", NAMESPACE])), "CronWorkflow")[
            "spec"
        ]["suspend"]
        is False
    )


def test_an_invalid_schedule_is_reported_without_its_values() -> None:
    body = schedule()
    body["spec"]["successfulRunsHistoryLimit"] = -1
    body["spec"]["template"]["spec"]["backup"]["command"] = []
    plan = plan_for(body)
    cond = ready_of(status_of(plan))
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert "spec.successfulRunsHistoryLimit" in cond["message"]
    assert "-1" not in cond["message"]
    assert of(plan, Apply) == []


def test_a_schedule_being_deleted_is_left_to_the_garbage_collector() -> None:
    body = schedule(annotations={ANNOTATION_TRIGGER: "x"})
    body["metadata"]["deletionTimestamp"] = stamp(11)
    assert plan_for(body, runs=[run("old", "Succeeded", 1)]) == Plan()


# --- status ----------------------------------------------------------------------------------


STATUS_CASES = [
    pytest.param([], {}, {"successfulRuns": 0, "failedRuns": 0}, id="no-runs"),
    pytest.param(
        [
            run("a", "Succeeded", 1),
            run("b", "Failed", 2),
            run("c", "Error", 3),
            run("d", "Running", 4),
        ],
        {},
        {
            "successfulRuns": 1,
            "failedRuns": 2,
            "active": ["d"],
            "lastScheduleTime": stamp(4),
            "lastSuccessfulTime": stamp(1.5),
        },
        id="counts-active-and-times",
    ),
    pytest.param(
        [run("a", "Succeeded", 1, scheduled=0.5), run("b", None, 2, scheduled=2)],
        {},
        {
            "successfulRuns": 1,
            "failedRuns": 0,
            "active": ["b"],
            "lastScheduleTime": stamp(2),
            "lastSuccessfulTime": stamp(1.5),
        },
        id="scheduled-time-annotation-first-and-a-run-not-started",
    ),
    pytest.param(
        [run("a", "Succeeded", 1)],
        {"lastScheduleTime": stamp(5), "lastSuccessfulTime": stamp(4)},
        {
            "successfulRuns": 1,
            "failedRuns": 0,
            "lastScheduleTime": stamp(5),
            "lastSuccessfulTime": stamp(4),
        },
        id="times-never-move-back",
    ),
    pytest.param(
        [
            run("other-schedule", "Succeeded", 1, schedule_name="weekly"),
            run("other-namespace", "Succeeded", 1, namespace="prod"),
            run("user-run", "Succeeded", 1, schedule_name=None),
            run(
                "being-deleted", "Succeeded", 1, deleting=True, finalizers=[FINALIZER_STORED_OBJECT]
            ),
        ],
        {},
        {"successfulRuns": 0, "failedRuns": 0},
        id="runs-of-others-and-runs-being-deleted-do-not-count",
    ),
]


@pytest.mark.parametrize(("runs", "previous", "expected"), STATUS_CASES)
def test_status(runs: list[Body], previous: Body, expected: Body) -> None:
    body = schedule(successfulRunsHistoryLimit=5, failedRunsHistoryLimit=5)
    body["status"] = previous
    status = status_of(plan_for(body, runs=runs))
    assert {k: v for k, v in status.items() if k != "conditions"} == expected


def test_active_lists_the_newest_runs_in_progress_oldest_first() -> None:
    runs = [run(f"r{i:02}", "Running", i) for i in range(MAX_ACTIVE_RUNS + 3)]
    status = status_of(plan_for(schedule(), runs=runs))
    assert status["active"] == [f"r{i:02}" for i in range(3, MAX_ACTIVE_RUNS + 3)]


def test_an_unchanged_status_is_not_written_and_no_event_repeats() -> None:
    world = World.of(schedule(), storage(), run("a", "Succeeded", 1), run("b", "Running", 2))
    world.carry_out(reconcile_world(world))
    plan = settle(world, reconcile_world)
    assert [a.body["kind"] for a in plan.actions] == ["CronWorkflow", "WorkflowTemplate"]


def test_ready_changes_post_one_event_each() -> None:
    world = World.of(schedule(), storage())
    world.carry_out(reconcile_world(world))
    world.put(storage(ready="False", message="no such bucket"))
    world.carry_out(reconcile_world(world))
    world.carry_out(reconcile_world(world))
    world.put(storage())
    world.carry_out(reconcile_world(world))
    assert [(e.reason, e.type) for e in world.events] == [
        ("Ready", "Normal"),
        ("StorageNotReady", "Warning"),
        ("Ready", "Normal"),
    ]


# --- rotation --------------------------------------------------------------------------------


ROTATION_CASES = [
    pytest.param(
        [run(f"s{i}", "Succeeded", i, keep=i == 2) for i in range(1, 6)],
        (2, 1),
        ["s3", "s1"],
        id="limits-2-1-five-runs-one-kept",
    ),
    pytest.param(
        [
            run("s1", "Succeeded", 1),
            run("f1", "Failed", 2),
            run("s2", "Succeeded", 3, keep=True),
            run("f2", "Error", 4),
            run("s3", "Succeeded", 5),
        ],
        (2, 1),
        ["f1"],
        id="limits-2-1-mixed-five-runs-one-kept",
    ),
    pytest.param(
        [run("s1", "Succeeded", 1), run("p1", "Running", 2), run("p2", None, 3)],
        (0, 0),
        [],
        id="runs-in-progress-and-the-newest-success-stay",
    ),
    pytest.param(
        [run(f"s{i}", "Succeeded", i) for i in range(1, 4)],
        (3, 1),
        [],
        id="within-the-limits",
    ),
]


@pytest.mark.parametrize(("runs", "limits", "deleted"), ROTATION_CASES)
def test_rotation(runs: list[Body], limits: tuple[int, int], deleted: list[str]) -> None:
    body = schedule(successfulRunsHistoryLimit=limits[0], failedRunsHistoryLimit=limits[1])
    plan = plan_for(body, runs=runs)
    deletes = of(plan, Delete)
    assert [d.ref.name for d in deletes] == deleted
    assert all(d.ref.uid == f"uid-{d.ref.name}" and d.ref.kind == "BackupRun" for d in deletes)
    rotated = [e for e in of(plan, EmitEvent) if e.reason == "Rotated"]
    if deleted:
        (event,) = rotated
        assert event.regarding == SCHEDULE_REF
        assert all(name in event.message for name in deleted)
        assert plan.actions.index(event) > max(plan.actions.index(d) for d in deletes)
        status = status_of(plan)
        assert status["successfulRuns"] + status["failedRuns"] == len(
            [
                r
                for r in runs
                if r.get("status", {}).get("phase") in ("Succeeded", "Failed", "Error")
            ]
        ) - len(deleted)
    else:
        assert rotated == []


def test_rotation_with_limits_2_1_over_five_runs_one_kept_converges() -> None:
    runs = [
        run(f"s{i}", "Succeeded", i, keep=i == 2, finalizers=[FINALIZER_STORED_OBJECT])
        for i in range(1, 6)
    ]
    world = World.of(schedule(), storage(), *runs)
    whole = check_restart_safe(world, reconcile_world)
    gone = sorted(
        b["metadata"]["name"]
        for b in whole.of_kind("BackupRun")
        if b["metadata"].get("deletionTimestamp")
    )
    assert gone == ["s1", "s3"]  # held by their stored-object finalizer until the object goes
    assert [e.reason for e in whole.events].count("Rotated") == 1
    status = whole.get("BackupSchedule", "nightly", NAMESPACE)["status"]  # type: ignore[index]
    assert status["successfulRuns"] == 3


# --- the trigger annotation ------------------------------------------------------------------


def test_trigger_creates_the_workflow_argo_submit_from_cronwf_would_then_clears_the_annotation() -> (
    None
):
    body = schedule(annotations={ANNOTATION_TRIGGER: "2024-05-01T12:00"})
    plan = plan_for(body)
    cron = applied(plan, "CronWorkflow")
    (create,) = of(plan, Create)
    workflow = create.body
    name = trigger_workflow_name("nightly", "uid-nightly", "2024-05-01T12:00")
    assert name.startswith("nightly-manual-")
    assert len(name) == len("nightly-manual-") + 8
    assert workflow["kind"] == "Workflow"
    assert workflow["apiVersion"] == "argoproj.io/v1alpha1"
    meta = workflow["metadata"]
    assert (meta["name"], meta["namespace"]) == (name, NAMESPACE)
    assert meta["labels"] == {
        LABEL_CRON_WORKFLOW: "nightly",
        **cron["spec"]["workflowMetadata"]["labels"],
    }
    assert meta["labels"][LABEL_STORAGE] == "minio"
    assert meta["labels"]["app"] == "mysql"
    assert meta["annotations"] == {
        ANNOTATION_SCHEDULED_TIME: stamp(12),
        **cron["spec"]["workflowMetadata"]["annotations"],
    }
    assert meta["finalizers"] == [FINALIZER_CATALOGUE]
    assert meta["ownerReferences"] == [OWNER]
    assert workflow["spec"] == cron["spec"]["workflowSpec"]
    kinds = [type(a).__name__ for a in plan.actions]
    create_at = kinds.index("Create")
    assert kinds[create_at : create_at + 3] == ["Create", "Patch", "EmitEvent"]
    patch = plan.actions[create_at + 1]
    assert patch == Patch(SCHEDULE_REF, annotations={ANNOTATION_TRIGGER: None})
    event = plan.actions[create_at + 2]
    assert isinstance(event, EmitEvent)
    assert (event.reason, event.type) == ("Triggered", "Normal")
    assert name in event.message
    assert plan.requeue_after is None


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        pytest.param(
            ("nightly", "uid-1", "a"), ("nightly", "uid-1", "a"), True, id="same-value-same-name"
        ),
        pytest.param(
            ("nightly", "uid-1", "a"), ("nightly", "uid-1", "b"), False, id="new-value-new-run"
        ),
        pytest.param(
            ("nightly", "uid-1", "a"), ("nightly", "uid-2", "a"), False, id="recreated-schedule"
        ),
        pytest.param(("nightly", "uid-1", ""), ("nightly", "uid-1", " "), False, id="empty-value"),
    ],
)
def test_trigger_workflow_name_is_deterministic(
    first: tuple[str, str, str], second: tuple[str, str, str], same: bool
) -> None:
    assert (trigger_workflow_name(*first) == trigger_workflow_name(*second)) is same


def test_trigger_workflow_name_of_a_long_schedule_fits_a_label_value() -> None:
    name = trigger_workflow_name("a" * 50 + "-" + "b" * 2, "uid", "x")
    assert len(name) <= 63
    assert "--" not in name
    assert name[0].isalnum()


def test_a_suspended_schedule_can_still_be_triggered() -> None:
    plan = plan_for(schedule(suspend=True, annotations={ANNOTATION_TRIGGER: "now"}))
    assert applied(plan, "CronWorkflow")["spec"]["suspend"] is True
    assert len(of(plan, Create)) == 1
    (event,) = [e for e in of(plan, EmitEvent) if e.reason == "Triggered"]
    assert "suspended" in event.message


@pytest.mark.parametrize(
    "store",
    [
        pytest.param(None, id="storage-not-found"),
        pytest.param(storage(allowed=["prod"]), id="storage-not-allowed"),
        pytest.param(storage(ready="False"), id="storage-not-ready"),
        pytest.param(storage(ready=None), id="storage-not-checked-yet"),
    ],
)
def test_a_trigger_waits_while_the_storage_cannot_be_used(store: Body | None) -> None:
    body = schedule(annotations={ANNOTATION_TRIGGER: "now"})
    plan = reconcile_schedule(body, storage=store, runs=[], settings=SETTINGS, now=NOW)
    assert of(plan, Create) == []
    assert of(plan, Patch) == []
    assert plan.requeue_after == TRIGGER_RECHECK_SECONDS
    assert "the trigger annotation waits" in ready_of(status_of(plan))["message"]
    world = World.of(body, *([store] if store else []))
    world.carry_out(plan)
    world.put(storage())
    world.carry_out(reconcile_world(world))
    assert len(world.of_kind("Workflow")) == 1
    after = world.get("BackupSchedule", "nightly", NAMESPACE)
    assert after is not None
    assert ANNOTATION_TRIGGER not in after["metadata"].get("annotations", {})


def test_trigger_is_handled_once_across_a_restart_at_every_step() -> None:
    world = World.of(schedule(annotations={ANNOTATION_TRIGGER: "now"}), storage())
    whole = check_restart_safe(world, reconcile_world)
    assert len(whole.of_kind("Workflow")) == 1
    assert [e.reason for e in whole.events].count("Triggered") == 1


# --- a restart in the middle of each step ----------------------------------------------------


def _everything() -> World:
    """A schedule with a pending trigger, runs to rotate and a status to bring up to date."""
    runs = [
        run("s1", "Succeeded", 1, finalizers=[FINALIZER_STORED_OBJECT]),
        run("s2", "Succeeded", 2),
        run("f1", "Failed", 3),
        run("f2", "Failed", 4),
        run("s3", "Succeeded", 5, keep=True),
        run("s4", "Succeeded", 6),
        run("p1", "Running", 7),
    ]
    return World.of(schedule(annotations={ANNOTATION_TRIGGER: "again"}), storage(), *runs)


RESTART_CASES = [
    pytest.param(_everything, id="trigger-rotation-and-status"),
    pytest.param(lambda: World.of(schedule(), storage()), id="first-reconcile"),
    pytest.param(lambda: World.of(schedule(), storage(allowed=["prod"])), id="storage-not-allowed"),
    pytest.param(lambda: World.of(schedule()), id="storage-not-found"),
    pytest.param(
        lambda: World.of(schedule(), storage(), *[run(f"f{i}", "Failed", i) for i in range(4)]),
        id="failed-runs-rotated",
    ),
]


@pytest.mark.parametrize("make", RESTART_CASES)
def test_a_restart_after_any_prefix_of_the_plan_finishes_it_without_duplicates(make: Any) -> None:
    check_restart_safe(make(), reconcile_world)


def test_everything_in_one_plan_in_order() -> None:
    world = _everything()
    plan = reconcile_world(world)
    kinds = [type(a).__name__ for a in plan.actions]
    assert kinds == [
        "Apply",
        "Apply",
        "Create",
        "Patch",
        "EmitEvent",
        "Delete",
        "Delete",
        "EmitEvent",
        "ApplyStatus",
        "EmitEvent",
    ]
    assert [a.ref.name for a in of(plan, Delete)] == ["f1", "s1"]
    status = status_of(plan)
    assert (status["successfulRuns"], status["failedRuns"], status["active"]) == (3, 1, ["p1"])


@pytest.mark.parametrize(
    ("options", "secret_name", "finalizers"),
    [
        pytest.param(RenderOptions(), "minio-credentials", None, id="plain-render"),
        pytest.param(
            RenderOptions(catalogue=True, credentials_secret="minio-backup-credentials"),
            "minio-backup-credentials",
            [FINALIZER_CATALOGUE],
            id="for-the-controller",
        ),
    ],
)
def test_render_options_for_the_controller(
    options: RenderOptions, secret_name: str, finalizers: list[str] | None
) -> None:
    body = schedule()
    model = BackupSchedule(
        metadata=ObjectMeta.model_validate(body["metadata"]),
        spec=BackupScheduleSpec.model_validate(body["spec"]),
    )
    store = parse_storage(storage())
    run_model = BackupRun(
        metadata=ObjectMeta(name="once", namespace=NAMESPACE),
        spec=model.spec.template.spec,
        status=BackupRunStatus(path="mysql-2024.05.01.sql"),
    )
    objects = [argo_dict(o) for o in render_schedule(model, store, options)]
    objects += [argo_dict(o) for o in render_run(run_model, store, replace(options, restore=True))]
    assert [o["kind"] for o in objects] == [
        "CronWorkflow",
        "WorkflowTemplate",
        "Workflow",
        "Workflow",
    ]
    for obj in objects:
        spec = obj["spec"].get("workflowSpec", obj["spec"])
        env = spec["templates"][0]["container"]["env"]
        names = {
            e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e["valueFrom"]
        }
        assert names == {secret_name}
    assert objects[0]["spec"]["workflowMetadata"].get("finalizers") == finalizers


# --- rotation and S3 Object Lock ---------------------------------------------------------------


def locked_run(name: str, at: float, until: float | None = None, hold: bool = False) -> Body:
    """A successful run ``at`` hours after BASE, its object locked until ``until`` hours."""
    body = run(name, "Succeeded", at, finalizers=[FINALIZER_STORED_OBJECT])
    if until is not None:
        body["status"]["retainUntil"] = stamp(until)
    body["status"]["legalHold"] = hold
    return body


#: NOW is 12 hours after BASE: a lock until ``stamp(36)`` ends in 24 hours.
DAY = 24 * 3600.0

LOCK_ROTATION_CASES = [
    pytest.param(
        [locked_run("s1", 1, until=36), locked_run("s2", 2), locked_run("s3", 3)],
        ["s2"],
        DAY,
        id="a-locked-run-is-kept-and-the-schedule-rotates-again-when-the-lock-ends",
    ),
    pytest.param(
        [locked_run("s1", 1, until=12), locked_run("s2", 2), locked_run("s3", 3)],
        ["s2", "s1"],
        None,
        id="boundary-a-lock-ending-now-has-ended",
    ),
    pytest.param(
        [locked_run("s1", 1, until=11), locked_run("s2", 2), locked_run("s3", 3)],
        ["s2", "s1"],
        None,
        id="a-lock-that-ended-keeps-nothing",
    ),
    pytest.param(
        [locked_run("s1", 1, hold=True), locked_run("s2", 2), locked_run("s3", 3)],
        ["s2"],
        None,
        id="a-legal-hold-is-kept-with-no-date-to-wait-for",
    ),
    pytest.param(
        [locked_run("s1", 1, until=60), locked_run("s2", 2, until=36), locked_run("s3", 3)],
        [],
        DAY,
        id="the-earliest-end-is-the-one-waited-for",
    ),
    pytest.param(
        [locked_run("s1", 1), locked_run("s2", 2), locked_run("s3", 3, until=36)],
        ["s2", "s1"],
        None,
        id="a-lock-on-a-run-the-limits-keep-is-no-reason-to-come-back",
    ),
    pytest.param(
        [run("s1", "Succeeded", 1), run("s2", "Succeeded", 2), run("s3", "Succeeded", 3)],
        ["s2", "s1"],
        None,
        id="no-lock",
    ),
]


@pytest.mark.parametrize(("runs", "deleted", "requeue"), LOCK_ROTATION_CASES)
def test_rotation_keeps_locked_runs_and_comes_back_when_the_lock_ends(
    runs: list[Body], deleted: list[str], requeue: float | None
) -> None:
    plan = plan_for(schedule(successfulRunsHistoryLimit=1), runs=runs)
    assert [d.ref.name for d in of(plan, Delete)] == deleted
    assert plan.requeue_after == requeue


def test_once_the_lock_ends_the_run_is_rotated() -> None:
    runs = [locked_run("s1", 1, until=36), locked_run("s2", 2)]
    body = schedule(successfulRunsHistoryLimit=0)
    waiting = plan_for(body, runs=runs)
    assert of(waiting, Delete) == []
    assert waiting.requeue_after == DAY
    later = plan_for(body, runs=runs, now=NOW + timedelta(seconds=DAY))
    assert [d.ref.name for d in of(later, Delete)] == ["s1"]
    assert later.requeue_after is None


def test_a_lock_and_a_waiting_trigger_requeue_at_the_sooner() -> None:
    runs = [locked_run("s1", 1, until=12.5), locked_run("s2", 2), locked_run("s3", 3)]
    assert plan_for(schedule(), runs=runs).requeue_after == 1800.0
    waiting = schedule(annotations={ANNOTATION_TRIGGER: "now"})
    plan = plan_for(waiting, store=storage(ready=None), runs=runs)
    assert plan.requeue_after == TRIGGER_RECHECK_SECONDS


def test_a_locked_run_rotated_through_the_world_waits_then_goes() -> None:
    runs = [locked_run(f"s{i}", i, until=36 if i == 1 else None) for i in range(1, 5)]
    world = check_restart_safe(World.of(schedule(), storage(), *runs), reconcile_world)

    def deleted(world: World) -> list[str]:
        return sorted(
            b["metadata"]["name"]
            for b in world.of_kind("BackupRun")
            if b["metadata"].get("deletionTimestamp")
        )

    assert deleted(world) == ["s2"]  # s1 is kept for its lock, s3 and s4 by the limit

    def a_day_later(world: World) -> Plan:
        return reconcile_schedule(
            world.get("BackupSchedule", "nightly", NAMESPACE) or {},
            storage=world.get("BackupStorage", "minio", None),
            runs=world.of_kind("BackupRun"),
            settings=SETTINGS,
            now=NOW + timedelta(seconds=DAY),
        )

    world.carry_out(a_day_later(world))
    settle(world, a_day_later)
    assert deleted(world) == ["s1", "s2"]
