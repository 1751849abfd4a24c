"""The plan for one BackupRun, by tables of named cases: its Workflow, its storage, its
finalizer (and the order of deletion), its restore request, Events, no secret in any status or
Event, and a controller killed after any action of any plan, whose restart finishes the job
without doing anything twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from generator.controller.names import (
    ANNOTATION_LAST_RESTORE,
    FINALIZER_STORED_OBJECT,
    LABEL_MANAGED_BY,
    LABEL_RESTORE_OF,
)
from generator.controller.objects import restore_workflow_name, run_workflow_name
from generator.controller.plan import (
    ApplyStatus,
    Create,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Patch,
    Plan,
    RemoveFinalizer,
)
from generator.controller.runs import DELETE_RETRY_SECONDS, LOCKED_RETRY_SECONDS, reconcile_run
from generator.controller.settings import Settings
from generator.models import ANNOTATION_RESTORE, ANNOTATION_RESTORED_AT
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
OUT = outputs()
SUCCEEDED_WF = workflow_status("Succeeded", global_outputs=OUT)


def reconcile(
    run: Body,
    *,
    storage: Body | None = None,
    workflow: Body | None = None,
    restore_workflow: Body | None = None,
    storage_error: str | None = None,
    now: Any = NOW,
    no_storage: bool = False,
) -> Plan:
    return reconcile_run(
        run,
        storage=None if no_storage else storage or storage_body(),
        workflow=workflow,
        restore_workflow=restore_workflow,
        storage_error=storage_error,
        settings=SETTINGS,
        now=now,
    )


def succeeded_run(**kwargs: Any) -> Body:
    """A run whose backup Succeeded and was recorded."""
    plan = reconcile(run_body(), workflow=workflow_body(status=SUCCEEDED_WF))
    return run_body(status=status_of(plan), **kwargs)


def kinds(plan: Plan) -> list[str]:
    return [type(a).__name__ for a in plan.actions]


# --- the run's Workflow --------------------------------------------------------------------


def test_a_users_run_gets_its_workflow_owned_by_it() -> None:
    plan = reconcile(run_body())
    assert kinds(plan) == ["Create", "ApplyStatus"]
    body = actions_of(plan, Create)[0].body
    assert body["kind"] == "Workflow"
    assert body["metadata"]["name"] == "nightly"
    assert body["metadata"]["namespace"] == "db"
    assert body["metadata"]["labels"][LABEL_MANAGED_BY] == "backup-operator"
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "backup-operator.io/v1",
            "kind": "BackupRun",
            "name": "nightly",
            "uid": "uid-nightly",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    status = status_of(plan)
    assert status["phase"] == "Pending"
    assert condition_of(status, "InProgress")["reason"] == "WorkflowCreated"
    # Not yet seen: a Workflow missing now would be created again, not declared lost.
    assert "workflow" not in status


def test_the_workflow_reads_the_copied_credentials() -> None:
    body = actions_of(reconcile(run_body()), Create)[0].body
    refs = [
        env["valueFrom"]["secretKeyRef"]["name"]
        for env in body["spec"]["templates"][0]["container"]["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    ]
    assert refs == ["minio-backup-credentials", "minio-backup-credentials"]


def test_a_restore_only_run_gets_its_restore_workflow() -> None:
    run = run_body(spec=run_spec(backup=None))
    body = actions_of(reconcile(run), Create)[0].body
    assert body["metadata"]["name"] == "nightly-restore" == run_workflow_name(run)
    assert body["spec"]["entrypoint"] == "restore"


def test_the_restore_annotation_does_not_change_the_backup_workflow() -> None:
    plain = actions_of(reconcile(run_body()), Create)[0].body
    run = run_body(annotations={ANNOTATION_RESTORE: "now"})
    assert [c.body for c in actions_of(reconcile(run), Create)] == [plain]


def test_the_workflow_seen_is_recorded_and_mirrored() -> None:
    plan = reconcile(run_body(), workflow=workflow_body(status=workflow_status("Running")))
    assert kinds(plan) == ["ApplyStatus", "EmitEvent"]
    status = status_of(plan)
    assert (status["phase"], status["workflow"]) == ("Running", "nightly")


def test_nothing_to_do_when_nothing_changed() -> None:
    wf = workflow_body(status=workflow_status("Running"))
    first = status_of(reconcile(run_body(), workflow=wf))
    plan = reconcile(run_body(status=first), workflow=wf, now=NOW + timedelta(minutes=1))
    assert plan.actions == ()
    assert plan.requeue_after is not None  # the deadline's backstop


NO_WORKFLOW_CASES = [
    pytest.param(
        run_body(annotations={"backup-operator.io/records-workflow": "nightly-1714564800"}),
        "WorkflowMissing",
        id="catalogued-never-created",
    ),
    pytest.param(
        run_body(status={"phase": "Running", "workflow": "nightly"}),
        "WorkflowMissing",
        id="seen-then-vanished",
    ),
    pytest.param(
        run_body(status={"phase": "Pending", "workflow": "nightly"}),
        "WorkflowMissing",
        id="seen-pending-then-vanished",
    ),
]


@pytest.mark.parametrize(("run", "reason"), NO_WORKFLOW_CASES)
def test_a_workflow_gone_before_it_ended_fails_the_run(run: Body, reason: str) -> None:
    plan = reconcile(run)
    assert actions_of(plan, Create) == []
    status = status_of(plan)
    assert status["phase"] == "Failed"
    assert condition_of(status, "Failed")["reason"] == reason
    assert condition_of(status, "InProgress")["status"] == "False"
    assert [(e.reason, e.type) for e in actions_of(plan, EmitEvent)] == [("Failed", "Warning")]


def test_a_workflow_of_an_earlier_run_of_the_same_name_is_not_mirrored() -> None:
    old = workflow_body(status=SUCCEEDED_WF, owner_uid="uid-of-a-deleted-run")
    plan = reconcile(run_body(), workflow=old)
    assert actions_of(plan, Create) == []
    status = status_of(plan)
    assert status["phase"] == "Pending"
    assert condition_of(status, "InProgress")["reason"] == "WorkflowOfPreviousRun"
    assert plan.requeue_after is not None


# --- the storage ---------------------------------------------------------------------------

STORAGE_CASES = [
    pytest.param(
        storage_body("False", "access denied"), {}, "Failed", "StorageNotReady", id="not-ready"
    ),
    pytest.param(None, {}, "Failed", "StorageNotFound", id="not-found"),
    pytest.param(
        {**storage_body(), "spec": {**storage_body()["spec"], "allowedNamespaces": ["other"]}},
        {},
        "Failed",
        "StorageNotAllowed",
        id="namespace-not-allowed",
    ),
    pytest.param(storage_body(None), {}, "Pending", "WaitingForStorage", id="not-checked-yet"),
    pytest.param(
        storage_body(None),
        {"created": "2024-05-01T11:40:00Z"},
        "Failed",
        "StorageNotReady",
        id="not-checked-for-too-long",
    ),
]


@pytest.mark.parametrize(("storage", "run_args", "phase", "reason"), STORAGE_CASES)
def test_a_storage_that_is_not_ready(
    storage: Body | None, run_args: dict[str, Any], phase: str, reason: str
) -> None:
    plan = reconcile(run_body(**run_args), storage=storage, no_storage=storage is None)
    assert actions_of(plan, Create) == []
    status = status_of(plan)
    assert status["phase"] == phase
    deciding = "Failed" if phase == "Failed" else "InProgress"
    assert condition_of(status, deciding)["reason"] == reason
    assert (plan.requeue_after is not None) == (phase == "Pending")


def test_the_storage_reason_is_in_the_run() -> None:
    plan = reconcile(run_body(), storage=storage_body("False", "the bucket does not exist"))
    assert "the bucket does not exist" in condition_of(status_of(plan), "Failed")["message"]


def test_an_invalid_spec_fails_by_field_without_its_value() -> None:
    run = run_body(spec=run_spec(retainPolicy=FAKE_SECRET))
    plan = reconcile(run)
    assert actions_of(plan, Create) == []
    failed = condition_of(status_of(plan), "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "spec.retainPolicy" in failed["message"]
    assert FAKE_SECRET not in repr(plan)


# --- the stored-object finalizer -----------------------------------------------------------

DELETE = run_spec(retainPolicy="Delete")
HELD = [FINALIZER_STORED_OBJECT]


def final_status(spec: Body, wf_status: Body) -> Body:
    return status_of(reconcile(run_body(spec=spec), workflow=workflow_body(status=wf_status)))


FINALIZER_CASES = [
    pytest.param(
        run_body(spec=DELETE), ["AddFinalizer", "Create", "ApplyStatus"], id="delete-adds-first"
    ),
    pytest.param(
        run_body(spec=DELETE, finalizers=HELD), ["Create", "ApplyStatus"], id="delete-already-held"
    ),
    pytest.param(run_body(), ["Create", "ApplyStatus"], id="retain-none"),
    pytest.param(
        run_body(finalizers=HELD),
        ["RemoveFinalizer", "Create", "ApplyStatus"],
        id="retain-drops-stale",
    ),
    pytest.param(
        run_body(
            spec=DELETE, finalizers=HELD, deleting=True, status=final_status(DELETE, SUCCEEDED_WF)
        ),
        ["DeleteStoredObject", "RemoveFinalizer"],
        id="deleted-stored-object-then-release",
    ),
    pytest.param(
        run_body(
            spec=DELETE,
            finalizers=HELD,
            deleting=True,
            status=final_status(DELETE, workflow_status("Failed")),
        ),
        ["RemoveFinalizer"],
        id="deleted-nothing-stored",
    ),
    pytest.param(
        run_body(finalizers=HELD, deleting=True, status=final_status(run_spec(), SUCCEEDED_WF)),
        ["RemoveFinalizer"],
        id="deleted-retain-keeps-object",
    ),
    pytest.param(
        run_body(spec=DELETE, finalizers=HELD, deleting=True),
        ["ApplyStatus", "EmitEvent", "RemoveFinalizer"],
        id="deleted-before-start",
    ),
    pytest.param(
        run_body(spec=DELETE, deleting=True, status=final_status(DELETE, SUCCEEDED_WF)),
        [],
        id="deleted-not-ours",
    ),
]


@pytest.mark.parametrize(("run", "expected"), FINALIZER_CASES)
def test_finalizer(run: Body, expected: list[str]) -> None:
    wf = None
    if (run.get("status") or {}).get("workflow"):
        wf = workflow_body(status=SUCCEEDED_WF)
    assert kinds(reconcile(run, workflow=wf)) == expected


def test_the_stored_object_deleted_is_the_runs_path_in_its_storage() -> None:
    run = run_body(
        spec=DELETE, finalizers=HELD, deleting=True, status=final_status(DELETE, SUCCEEDED_WF)
    )
    plan = reconcile(run)
    assert actions_of(plan, DeleteStoredObject) == [DeleteStoredObject("minio", PATH)]
    assert actions_of(plan, RemoveFinalizer)[0].finalizer == FINALIZER_STORED_OBJECT


def test_a_running_backup_is_waited_for_before_its_run_goes() -> None:
    run = run_body(spec=DELETE, finalizers=HELD, deleting=True)
    plan = reconcile(run, workflow=workflow_body(status=workflow_status("Running")))
    assert actions_of(plan, RemoveFinalizer) == []
    assert actions_of(plan, DeleteStoredObject) == []
    assert actions_of(plan, Create) == []


def test_an_unreachable_storage_keeps_the_finalizer_and_says_why() -> None:
    stored = final_status(DELETE, SUCCEEDED_WF)
    run = run_body(spec=DELETE, finalizers=HELD, deleting=True, status=stored)
    plan = reconcile(run, storage_error="could not connect to http://minio.minio.svc:9000")
    assert actions_of(plan, RemoveFinalizer) == []
    assert actions_of(plan, DeleteStoredObject) == []
    cond = condition_of(status_of(plan), "StoredObjectDeleted")
    assert (cond["status"], cond["reason"]) == ("False", "DeleteFailed")
    assert "could not connect" in cond["message"]
    assert plan.requeue_after == DELETE_RETRY_SECONDS
    assert [(e.reason, e.type) for e in actions_of(plan, EmitEvent)] == [
        ("DeleteFailed", "Warning")
    ]
    # The same failure again: the condition stays, no second Event.
    again = reconcile(
        run_body(spec=DELETE, finalizers=HELD, deleting=True, status=status_of(plan)),
        storage_error="could not connect to http://minio.minio.svc:9000",
    )
    assert again.actions == ()
    assert again.requeue_after == DELETE_RETRY_SECONDS
    # Reachable again: deleted, then released.
    retry = reconcile(run_body(spec=DELETE, finalizers=HELD, deleting=True, status=status_of(plan)))
    assert kinds(retry)[-2:] == ["DeleteStoredObject", "RemoveFinalizer"]


def test_a_deleted_storage_holds_the_run_with_a_reason() -> None:
    run = run_body(
        spec=DELETE, finalizers=HELD, deleting=True, status=final_status(DELETE, SUCCEEDED_WF)
    )
    plan = reconcile(run, no_storage=True)
    assert actions_of(plan, RemoveFinalizer) == []
    assert condition_of(status_of(plan), "StoredObjectDeleted")["reason"] == "StorageNotFound"


# --- the restore annotation ----------------------------------------------------------------

REQUEST = {ANNOTATION_RESTORE: "please"}


def restore_wf(run: Body, phase: str, message: str | None = None) -> Body:
    name = restore_workflow_name(run)
    assert name is not None
    return workflow_body(name, workflow_status(phase, message=message), owner_uid="uid-nightly")


def test_a_restore_request_creates_its_workflow() -> None:
    run = succeeded_run(annotations=REQUEST)
    plan = reconcile(run, workflow=workflow_body(status=SUCCEEDED_WF))
    assert kinds(plan) == ["Create", "ApplyStatus"]
    body = actions_of(plan, Create)[0].body
    name = restore_workflow_name(run)
    assert name is not None
    assert name.startswith("nightly-restore-")
    assert body["metadata"]["name"] == name
    assert body["metadata"]["labels"][LABEL_RESTORE_OF] == "nightly"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-nightly"
    assert body["spec"]["arguments"]["parameters"][0]["value"] == PATH
    assert condition_of(status_of(plan), "Restored")["status"] == "Unknown"


RESTORE_END_CASES = [
    pytest.param(
        "Succeeded",
        ("True", "Restored"),
        [("Restored", "Normal")],
        {ANNOTATION_RESTORE: None, ANNOTATION_RESTORED_AT: "2024-05-01T11:59:50Z"},
        id="succeeded",
    ),
    pytest.param(
        "Failed",
        ("False", "RestoreFailed"),
        [("RestoreFailed", "Warning")],
        {ANNOTATION_RESTORE: None},
        id="failed",
    ),
    pytest.param(
        "Error",
        ("False", "RestoreFailed"),
        [("RestoreFailed", "Warning")],
        {ANNOTATION_RESTORE: None},
        id="error",
    ),
    pytest.param("Running", ("Unknown", "RestoreInProgress"), [], None, id="running"),
]


@pytest.mark.parametrize(("phase", "restored", "events", "patch"), RESTORE_END_CASES)
def test_a_restore_request_ends(
    phase: str,
    restored: tuple[str, str],
    events: list[tuple[str, str]],
    patch: dict[str, str | None] | None,
) -> None:
    run = succeeded_run(annotations=REQUEST)
    plan = reconcile(
        run, workflow=workflow_body(status=SUCCEEDED_WF), restore_workflow=restore_wf(run, phase)
    )
    assert actions_of(plan, Create) == []
    status = status_of(plan)
    cond = condition_of(status, "Restored")
    assert (cond["status"], cond["reason"]) == restored
    assert [(e.reason, e.type) for e in actions_of(plan, EmitEvent)] == events
    patches = actions_of(plan, Patch)
    if patch is None:
        assert patches == []
        return
    assert len(patches) == 1
    assert dict(patches[0].annotations) == {
        **patch,
        ANNOTATION_LAST_RESTORE: restore_workflow_name(run),
    }
    # The status and its Event come before the annotation is cleared: a restart in between
    # finds the request still there and its Workflow ended.
    order = kinds(plan)
    assert order.index("ApplyStatus") < order.index("Patch")
    assert ("restoredAt" in status) == (phase == "Succeeded")


REFUSAL_CASES = [
    pytest.param(
        run_body(spec=run_spec(restore=None), annotations=REQUEST),
        "no restore action",
        id="no-restore-action",
    ),
    pytest.param("failed", "nothing was stored", id="backup-failed"),
    pytest.param("outputs-missing", "nothing was stored", id="backup-outputs-missing"),
]


@pytest.mark.parametrize(("run", "why"), REFUSAL_CASES)
def test_a_restore_request_that_cannot_be_carried_out(run: Body | str, why: str) -> None:
    if run == "failed":
        status = final_status(run_spec(), workflow_status("Failed"))
        run = run_body(status=status, annotations=REQUEST)
    elif run == "outputs-missing":
        status = final_status(run_spec(), workflow_status("Succeeded"))
        run = run_body(status=status, annotations=REQUEST)
    assert isinstance(run, dict)
    plan = reconcile(run, workflow=workflow_body(status=SUCCEEDED_WF))
    restores = [c for c in actions_of(plan, Create) if "restore" in c.body["metadata"]["name"]]
    assert restores == []
    cond = condition_of(status_of(plan), "Restored")
    assert (cond["status"], cond["reason"]) == ("False", "RestoreRefused")
    assert why in cond["message"]
    assert [dict(p.annotations) for p in actions_of(plan, Patch)] == [{ANNOTATION_RESTORE: None}]
    assert [(e.reason, e.type) for e in actions_of(plan, EmitEvent)][-1] == (
        "RestoreFailed",
        "Warning",
    )


def test_a_restore_request_on_a_running_backup_waits_for_it() -> None:
    run = run_body(annotations=REQUEST)
    plan = reconcile(run, workflow=workflow_body(status=workflow_status("Running")))
    assert actions_of(plan, Create) == []
    assert actions_of(plan, Patch) == []


def test_a_restore_request_refused_when_the_storage_is_not_ready() -> None:
    run = succeeded_run(annotations=REQUEST)
    plan = reconcile(
        run, workflow=workflow_body(status=SUCCEEDED_WF), storage=storage_body("False")
    )
    assert actions_of(plan, Create) == []
    assert condition_of(status_of(plan), "Restored")["reason"] == "RestoreRefused"


def test_a_restore_request_waits_for_the_storages_first_check() -> None:
    run = succeeded_run(annotations=REQUEST)
    plan = reconcile(run, workflow=workflow_body(status=SUCCEEDED_WF), storage=storage_body(None))
    assert actions_of(plan, Create) == []
    assert actions_of(plan, Patch) == []
    assert condition_of(status_of(plan), "Restored")["status"] == "Unknown"
    assert plan.requeue_after is not None


def test_the_same_request_value_again_is_a_new_restore() -> None:
    first = run_body(annotations=REQUEST)
    handled = run_body(
        annotations={**REQUEST, ANNOTATION_LAST_RESTORE: restore_workflow_name(first) or ""}
    )
    assert restore_workflow_name(first) != restore_workflow_name(handled)
    assert restore_workflow_name(first) == restore_workflow_name(run_body(annotations=REQUEST))
    assert restore_workflow_name(run_body()) is None


def test_the_outcome_of_the_last_restore_stays_in_the_status() -> None:
    run = succeeded_run(annotations=REQUEST)
    done = reconcile(
        run,
        workflow=workflow_body(status=SUCCEEDED_WF),
        restore_workflow=restore_wf(run, "Succeeded"),
    )
    annotations = {ANNOTATION_RESTORED_AT: "2024-05-01T11:59:50Z"}
    later = run_body(status=status_of(done), annotations=annotations)
    assert reconcile(later, workflow=workflow_body(status=SUCCEEDED_WF)).actions == ()


# --- one Event per transition, however often it is decided ---------------------------------

RUNNING_WF = workflow_status("Running")


def running_run() -> Body:
    return run_body(
        status=status_of(reconcile(run_body(), workflow=workflow_body(status=RUNNING_WF)))
    )


def restoring_run() -> Body:
    return succeeded_run(annotations=REQUEST)


DECIDED_TWICE_CASES = [
    pytest.param(
        run_body, lambda run: workflow_body(status=RUNNING_WF), None, "Started", id="started"
    ),
    pytest.param(
        running_run,
        lambda run: workflow_body(status=SUCCEEDED_WF),
        None,
        "Succeeded",
        id="succeeded",
    ),
    pytest.param(
        running_run,
        lambda run: workflow_body(status=workflow_status("Failed")),
        None,
        "Failed",
        id="failed",
    ),
    pytest.param(
        restoring_run,
        lambda run: workflow_body(status=SUCCEEDED_WF),
        lambda run: restore_wf(run, "Succeeded"),
        "Restored",
        id="restored",
    ),
]


@pytest.mark.parametrize(("make", "workflow", "restore", "reason"), DECIDED_TWICE_CASES)
def test_a_transition_decided_twice_is_one_event(
    make: Callable[[], Body],
    workflow: Callable[[Body], Body],
    restore: Callable[[Body], Body] | None,
    reason: str,
) -> None:
    """The second reconcile reads the run before the first one's status write came back from
    the watch (or the catalogue reconciles it beside): both decide the Event, under one name,
    so the API server keeps one."""
    run = make()
    plans = [
        reconcile(
            run,
            workflow=workflow(run),
            restore_workflow=restore(run) if restore else None,
            now=NOW + timedelta(seconds=seconds),
        )
        for seconds in (0, 1)
    ]
    events = [e for plan in plans for e in actions_of(plan, EmitEvent)]
    assert [e.reason for e in events] == [reason, reason]
    assert events[0].name == events[1].name


def test_the_events_of_a_lifecycle_have_names_of_their_own() -> None:
    names = [e.name for e in REFERENCE.events]
    assert len(set(names)) == len(names) == 3
    assert all(name.startswith("nightly.") for name in names)


def test_an_event_name_fits_and_names_the_incarnation() -> None:
    event = EmitEvent(
        ObjectRef("backup-operator.io/v1", "BackupRun", "a" * 253, "db", "u1"), "X", "m"
    )
    assert len(event.name) == 253
    assert event.name.startswith("a" * 236 + ".")
    other = EmitEvent(
        ObjectRef("backup-operator.io/v1", "BackupRun", "a" * 253, "db", "u2"), "X", "m"
    )
    assert other.name != event.name  # a run created again under its name has Events of its own


# --- no secret in any status or Event ------------------------------------------------------

SECRET_CASES = [
    pytest.param(run_body(), None, id="created"),
    pytest.param(run_body(), workflow_status("Running"), id="running"),
    pytest.param(run_body(), SUCCEEDED_WF, id="succeeded"),
    pytest.param(run_body(), workflow_status("Failed", message="exit code 1"), id="failed"),
    pytest.param(
        run_body(spec=run_spec(retainPolicy="Delete"), deleting=True, finalizers=HELD),
        SUCCEEDED_WF,
        id="deleted",
    ),
    pytest.param(run_body(annotations=REQUEST), SUCCEEDED_WF, id="restore-request"),
]


@pytest.mark.parametrize(("run", "wf_status"), SECRET_CASES)
def test_no_pod_env_value_reaches_a_status_event_or_annotation(
    run: Body, wf_status: Body | None
) -> None:
    assert FAKE_SECRET in repr(run["spec"])  # the Pod template does hold it
    wf = workflow_body(status=wf_status) if wf_status else None
    plan = reconcile(run, workflow=wf)
    said = [a for a in plan.actions if isinstance(a, ApplyStatus | EmitEvent | Patch)]
    assert said
    assert FAKE_SECRET not in repr(said)


# --- a restart after any action of any plan ------------------------------------------------


def controller_pass(world: World, storage_error: dict[str, str]) -> list[Plan]:
    """One reconcile of every run, each plan carried out before the next is made."""
    plans = []
    for key in sorted(k for k in world.objects if k[0] == "BackupRun"):
        run = world.objects.get(key)
        if run is None:
            continue
        plans.append(plan_for(world, run, storage_error))
        world.carry_out(plans[-1])
    return plans


def plan_for(world: World, run: Body, storage_error: dict[str, str]) -> Plan:
    return reconcile_run(
        world.get("BackupRun", run["metadata"]["name"], NAMESPACE) or run,
        storage=world.get("BackupStorage", "minio", None),
        workflow=world.get("Workflow", run_workflow_name(run), NAMESPACE),
        restore_workflow=world.get("Workflow", restore_workflow_name(run), NAMESPACE),
        storage_error=storage_error.pop(run["metadata"]["name"], None),
        settings=SETTINGS,
        now=NOW,
    )


def settle(world: World) -> None:
    """Reconcile until nothing is left to do (a restarted controller catching up)."""
    for _ in range(10):
        if not any(p.actions for p in controller_pass(world, {})):
            return
    raise AssertionError("no fixpoint after 10 passes")


def argo(
    phase: str, wf_status: Body | None = None, name: str = "nightly"
) -> Callable[[World], None]:
    def step(world: World) -> None:
        if world.get("Workflow", name, NAMESPACE) is not None:
            world.set_status("Workflow", name, NAMESPACE, wf_status or workflow_status(phase))

    return step


def annotate(world: World) -> None:
    world.objects[("BackupRun", "db", "nightly")]["metadata"]["annotations"] = dict(REQUEST)


def restore_argo(phase: str) -> Callable[[World], None]:
    def step(world: World) -> None:
        run = world.get("BackupRun", "nightly", NAMESPACE)
        name = restore_workflow_name(run) if run else None
        if name and world.get("Workflow", name, NAMESPACE) is not None:
            world.set_status("Workflow", name, NAMESPACE, workflow_status(phase))

    return step


def delete_run(world: World) -> None:
    world.delete("BackupRun", "nightly", NAMESPACE)


def stored(world: World) -> None:
    world.stored.add(("minio", PATH))


RECONCILE = "reconcile"
#: A backup with retainPolicy Delete, restored once, then deleted.
LIFECYCLE: list[str | Callable[[World], None]] = [
    RECONCILE,
    argo("Pending"),
    RECONCILE,
    argo("Running"),
    RECONCILE,
    stored,
    argo("Succeeded", SUCCEEDED_WF),
    RECONCILE,
    annotate,
    RECONCILE,
    restore_argo("Running"),
    RECONCILE,
    restore_argo("Succeeded"),
    RECONCILE,
    delete_run,
    RECONCILE,
]


def start_world() -> World:
    world = World()
    world.put(storage_body())
    world.put(run_body(spec=run_spec(retainPolicy="Delete")))
    return world


def play(crash: tuple[int, int, int] | None = None) -> World:
    """Play LIFECYCLE; ``crash`` = (reconcile step, plan of the pass, actions done) stops
    that plan after that many actions, then the controller restarts and catches up."""
    world = start_world()
    for index, step in enumerate(LIFECYCLE):
        if step != RECONCILE:
            assert callable(step)
            step(world)
            continue
        if crash is None or crash[0] != index:
            settle(world)
            continue
        keys = sorted(k for k in world.objects if k[0] == "BackupRun")
        for number, key in enumerate(keys):
            run = world.objects.get(key)
            if run is None:
                continue
            plan = plan_for(world, run, {})
            world.carry_out(plan, crash[2] if number == crash[1] else None)
        settle(world)
    return world


def crash_points() -> list[Any]:
    points = []
    for index, step in enumerate(LIFECYCLE):
        if step != RECONCILE:
            continue
        world = start_world()
        for earlier in LIFECYCLE[:index]:
            if earlier == RECONCILE:
                settle(world)
            else:
                assert callable(earlier)
                earlier(world)
        run = world.objects[("BackupRun", "db", "nightly")]
        plan = plan_for(world, run, {})
        for done in range(len(plan.actions)):
            names = "-".join(type(a).__name__ for a in plan.actions[:done]) or "nothing"
            points.append(pytest.param((index, 0, done), id=f"step{index}-after-{names}"))
    return points


REFERENCE = play()


def test_the_lifecycle_ends_with_the_run_and_its_object_gone() -> None:
    assert ("BackupRun", "db", "nightly") not in REFERENCE.objects
    assert REFERENCE.stored == set()
    assert set(REFERENCE.created.values()) == {1}
    reasons = [e.reason for e in REFERENCE.events]
    assert reasons == ["Started", "Succeeded", "Restored"]


@pytest.mark.parametrize("crash", crash_points())
def test_a_restart_after_any_action_finishes_the_job_once(crash: tuple[int, int, int]) -> None:
    world = play(crash)
    assert world.objects == REFERENCE.objects
    assert world.stored == REFERENCE.stored
    # No Workflow created twice, no object deleted before its run was final.
    assert world.created == REFERENCE.created
    assert set(world.stored_deleted) == {("minio", PATH)}
    # An Event may be lost by a crash right after the status that records it, never doubled.
    reasons = [(e.reason, e.message) for e in world.events]
    assert len(reasons) == len(set(reasons))
    assert set(reasons) <= {(e.reason, e.message) for e in REFERENCE.events}


def test_a_failed_deletion_is_retried_and_the_run_goes_after_it() -> None:
    world = start_world()
    world.put(run_body(spec=run_spec(retainPolicy="Delete"), finalizers=HELD))
    settle(world)
    argo("Succeeded", SUCCEEDED_WF)(world)
    settle(world)
    world.stored.add(("minio", PATH))
    delete_run(world)
    run = world.objects[("BackupRun", "db", "nightly")]
    # The object store fails: the plan stops at the deletion, the finalizer stays.
    plan = plan_for(world, run, {})
    assert kinds(plan)[-2:] == ["DeleteStoredObject", "RemoveFinalizer"]
    world.carry_out(plan, len(plan.actions) - 2)
    errors = {"nightly": "connection refused"}
    controller_pass(world, errors)
    run = world.objects[("BackupRun", "db", "nightly")]
    assert run["metadata"]["finalizers"] == HELD
    assert condition_of(run["status"], "StoredObjectDeleted")["reason"] == "DeleteFailed"
    settle(world)
    assert ("BackupRun", "db", "nightly") not in world.objects
    assert world.stored == set()


# --- the stored-object finalizer and S3 Object Lock --------------------------------------------

UNTIL = "2024-05-31T12:00:00Z"
#: From NOW (2024-05-01T12:00:00Z) to UNTIL.
THIRTY_DAYS = 30 * 24 * 3600.0
ACCESS_DENIED = (
    "deleting s3://backups/db/nightly-2024-05-01.sql.gz of BackupStorage minio: the bucket "
    "'backups' does not exist, or is forbidden for the given credentials (AccessDenied on "
    "DeleteObject of s3://backups/db/nightly-2024-05-01.sql.gz): check the bucket name and "
    "that the credentials may write and read it"
)


def locked_wf(until: str = UNTIL, hold: str = "false", phase: str = "Succeeded") -> Body:
    values = outputs(retainUntil=until, legalHold=hold, locked="true")
    return workflow_status(phase, global_outputs=values)


def deleted_locked_run(wf_status: Body) -> Body:
    """A retainPolicy: Delete run that stored a (locked) object, being deleted."""
    return run_body(
        spec=DELETE, finalizers=HELD, deleting=True, status=final_status(DELETE, wf_status)
    )


#: (the run's Workflow, now, storage_error) -> (kinds of the plan's tail, condition reason,
#: a part of its message, requeue)
LOCK_FINALIZER_CASES = [
    pytest.param(locked_wf(), NOW, None, [], "Locked",
                 f"is locked until {UNTIL} (S3 Object Lock): it is deleted then", THIRTY_DAYS,
                 id="locked-the-object-is-not-deleted-the-run-waits-until-then"),
    pytest.param(locked_wf(), NOW + timedelta(days=30) - timedelta(seconds=1), None, [],
                 "Locked", UNTIL, 1.0, id="a-second-before"),
    pytest.param(locked_wf(), NOW + timedelta(days=30), None,
                 ["DeleteStoredObject", "RemoveFinalizer"], None, "", None,
                 id="boundary-retain-until-now-deletes"),
    pytest.param(locked_wf(), NOW + timedelta(days=31), None,
                 ["DeleteStoredObject", "RemoveFinalizer"], None, "", None,
                 id="after-the-lock-deletes-as-any-other"),
    pytest.param(locked_wf(until="", hold="true"), NOW, None,
                 ["DeleteStoredObject", "RemoveFinalizer"], None, "", None,
                 id="legal-hold-alone-deleting-the-run-is-the-users-word"),
    pytest.param(locked_wf(hold="true"), NOW, None, [], "Locked", UNTIL, THIRTY_DAYS,
                 id="retention-and-legal-hold-wait-for-the-retention"),
    pytest.param(locked_wf(phase="Failed"), NOW, None, [], "Locked", UNTIL, THIRTY_DAYS,
                 id="a-failed-backup-whose-object-is-locked-waits-too"),
    pytest.param(locked_wf(), NOW + timedelta(days=31), ACCESS_DENIED, [], "Locked",
                 "S3 refused to delete the stored object db/nightly-2024-05-01.sql.gz of "
                 f"BackupStorage minio, as it does for a locked object (it was recorded as "
                 f"retained until {UNTIL}; a longer retention or a legal hold may have been set "
                 "since)", LOCKED_RETRY_SECONDS,
                 id="access-denied-after-the-recorded-lock-is-reported-as-a-lock-not-retried-hot"),
    pytest.param(locked_wf(until="", hold="true"), NOW, ACCESS_DENIED, [], "Locked",
                 "lift the hold in S3 (aws s3api put-object-legal-hold --legal-hold Status=OFF)",
                 LOCKED_RETRY_SECONDS, id="access-denied-under-a-legal-hold-says-how-to-lift-it"),
    pytest.param(locked_wf(), NOW + timedelta(days=31),
                 "DeleteObject of s3://backups/k failed: InvalidRequest (HTTP 400): Object is "
                 "WORM protected and cannot be overwritten", [], "Locked", "WORM protected",
                 LOCKED_RETRY_SECONDS, id="a-minio-refusal-too"),
    pytest.param(locked_wf(), NOW + timedelta(days=31), "connection refused", [],
                 "DeleteFailed", "connection refused", DELETE_RETRY_SECONDS,
                 id="another-failure-of-a-locked-run-is-retried-as-before"),
    pytest.param(SUCCEEDED_WF, NOW, ACCESS_DENIED, [], "DeleteFailed", "AccessDenied",
                 DELETE_RETRY_SECONDS, id="access-denied-on-a-run-with-no-lock-as-before"),
    pytest.param(SUCCEEDED_WF, NOW, None, ["DeleteStoredObject", "RemoveFinalizer"], None, "",
                 None, id="no-lock"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("wf_status", "now", "error", "tail", "reason", "message", "requeue"), LOCK_FINALIZER_CASES
)
def test_the_delete_finalizer_respects_the_lock(
    wf_status: Body,
    now: Any,
    error: str | None,
    tail: list[str],
    reason: str | None,
    message: str,
    requeue: float | None,
) -> None:
    run = deleted_locked_run(wf_status)
    plan = reconcile(run, workflow=workflow_body(status=wf_status), storage_error=error, now=now)
    deletes = [k for k in kinds(plan) if k in ("DeleteStoredObject", "RemoveFinalizer")]
    assert deletes == tail
    assert plan.requeue_after == requeue
    if reason is None:
        return
    cond = condition_of(status_of(plan), "StoredObjectDeleted")
    assert (cond["status"], cond["reason"]) == ("False", reason)
    assert message in cond["message"], cond["message"]
    assert [(e.reason, e.type) for e in actions_of(plan, EmitEvent)] == [(reason, "Warning")]


def test_a_locked_run_waits_once_without_writing_again() -> None:
    run = deleted_locked_run(locked_wf())
    plan = reconcile(run)
    again = reconcile(
        run_body(spec=DELETE, finalizers=HELD, deleting=True, status=status_of(plan)),
        now=NOW + timedelta(days=1),
    )
    assert again.actions == ()  # the condition does not say how long is left: no rewrite
    assert again.requeue_after == THIRTY_DAYS - 24 * 3600.0


def test_a_deleted_locked_run_goes_with_its_object_once_the_lock_ends() -> None:
    world = World()
    world.put(storage_body())
    world.put(deleted_locked_run(locked_wf()))
    world.stored.add(("minio", PATH))

    def at(now: Any) -> Plan:
        run = world.get("BackupRun", "nightly", NAMESPACE)
        assert run is not None
        plan = reconcile_run(
            run,
            storage=world.get("BackupStorage", "minio", None),
            workflow=None,
            restore_workflow=None,
            storage_error=None,
            settings=SETTINGS,
            now=now,
        )
        world.carry_out(plan)
        return plan

    waiting = at(NOW)
    assert waiting.requeue_after == THIRTY_DAYS
    assert world.stored == {("minio", PATH)}
    assert world.get("BackupRun", "nightly", NAMESPACE) is not None
    at(NOW + timedelta(seconds=THIRTY_DAYS))
    assert world.stored == set()
    assert world.stored_deleted == [("minio", PATH)]
    assert world.get("BackupRun", "nightly", NAMESPACE) is None


def test_a_retained_locked_run_lets_go_and_leaves_the_object() -> None:
    spec = run_spec(retainPolicy="Retain")
    run = run_body(
        spec=spec, finalizers=HELD, deleting=True, status=final_status(spec, locked_wf())
    )
    assert kinds(reconcile(run)) == ["RemoveFinalizer"]
