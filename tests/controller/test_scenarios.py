"""The controller's life end to end: the real process, the loopback API, moto, and Argo played.

Each scenario does what a user (``kubectl``) and Argo would do, and checks what a user would
see: a BackupRun's phase, conditions, path, size and checksum, the Events, which objects exist.
The controller is the real ``backup-gen controller`` process (:mod:`tests.controller.process`);
it is killed with SIGKILL and started again where a scenario is about a restart, and the API's
failures are injected on the server (:meth:`~tests.controller.kubeapi.KubeApi.fail_next`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from generator.controller.names import (
    ANNOTATION_LAST_RESTORE,
    ANNOTATION_RECORDS,
    CONDITION_STORED_OBJECT_DELETED,
    FINALIZER_STORED_OBJECT,
    LABEL_CRON_WORKFLOW,
    LABEL_RESTORE_OF,
)
from generator.models import (
    ANNOTATION_KEEP,
    ANNOTATION_RESTORE,
    ANNOTATION_RESTORED_AT,
    ANNOTATION_TRIGGER,
)
from tests.conftest import free_port
from tests.controller.argo import ArgoPlayer
from tests.controller.kubeapi import KubeApi
from tests.controller.process import (
    CATALOGUE,
    CRONS,
    NAMESPACE,
    RUNS,
    SCHEDULES,
    STORAGES,
    WORKFLOWS,
    Controller,
    Controllers,
    arrange,
    disarm,
    examples,
    ready,
)

Body = dict[str, Any]
SCHEDULE = "mysql-daily"
EVENTS = "v1/events"
#: The first tick of the scenarios' CronWorkflow: a day in the past, so times never collide.
TICK = datetime(2024, 5, 1, tzinfo=UTC)


# -- what a user sees ------------------------------------------------------------------------


def condition(body: Body | None, type_: str) -> Body | None:
    for cond in ((body or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def events(kube_api: KubeApi, name: str, reason: str | None = None) -> list[Body]:
    """The Events of the object ``name`` (in the namespace), of ``reason`` if given."""
    return [
        e
        for e in kube_api.list(EVENTS, NAMESPACE)
        if e["involvedObject"]["name"] == name and reason in (None, e["reason"])
    ]


def no_event_twice(kube_api: KubeApi) -> None:
    """No object has the same Event twice (``kubectl describe`` would list a transition twice)."""
    said = [
        (e["involvedObject"].get("uid"), e["involvedObject"]["name"], e["reason"], e["message"])
        for e in kube_api.list(EVENTS)
    ]
    assert sorted(set(said)) == sorted(said)


def run_in(kube_api: KubeApi, name: str, phase: str) -> Callable[[], Body | None]:
    """A predicate: the BackupRun ``name`` once its status phase is ``phase``."""

    def check() -> Body | None:
        run = kube_api.get(RUNS, name, NAMESPACE)
        return run if ((run or {}).get("status") or {}).get("phase") == phase else None

    check.__name__ = f"BackupRun {name} is {phase}"
    return check


def gone(kube_api: KubeApi, resource: str, name: str) -> Callable[[], bool]:
    def check() -> bool:
        return kube_api.get(resource, name, NAMESPACE) is None

    check.__name__ = f"{resource} {name} is gone"
    return check


def workflows(kube_api: KubeApi, labels: str | None = None) -> list[Body]:
    return kube_api.list(WORKFLOWS, NAMESPACE, labels=labels)


# -- what is arranged ------------------------------------------------------------------------


def outputs_of(bucket: str, key: str, data: bytes) -> dict[str, str]:
    """The outputs the streamer reports for ``data`` stored under ``key``."""
    return {
        "path": key,
        "url": f"s3://{bucket}/{key}",
        "size": f"{len(data)} B",
        "sizeInBytes": str(len(data)),
        "sha256": hashlib.sha256(data).hexdigest(),
        "compressed": "true",
        "encrypted": "false",
    }


def template(retain_policy: str) -> Body:
    """The examples' run template, with another retainPolicy."""
    _, schedule = examples("http://unused", "unused")
    spec = copy.deepcopy(schedule["spec"]["template"])
    spec["spec"]["retainPolicy"] = retain_policy
    return dict(spec)


def ready_schedule(kube_api: KubeApi, s3_endpoint: str, bucket: str, **spec: Any) -> Body:
    """The examples applied and the storage checked (Ready): the schedule's CronWorkflow."""
    arrange(kube_api, s3_endpoint, bucket, **spec)
    kube_api.wait_for(
        lambda: ready(kube_api.get(STORAGES, "minio")) == "True", message="storage Ready"
    )
    return kube_api.wait_for(lambda: kube_api.get(CRONS, SCHEDULE, NAMESPACE), message="cron")


def cron_run(kube_api: KubeApi, argo: ArgoPlayer, cron: Body, at: datetime = TICK) -> str:
    """A tick of the CronWorkflow at ``at``, and its BackupRun recorded: the run's name."""
    name = str(argo.spawn_cron_workflow(cron, scheduled_time=at)["metadata"]["name"])
    kube_api.wait_for(lambda: kube_api.get(RUNS, name, NAMESPACE), message=f"run {name}")
    return name


def finish(
    kube_api: KubeApi, argo: ArgoPlayer, name: str, phase: str = "Succeeded", **kwargs: Any
) -> Body:
    workflow = kube_api.get(WORKFLOWS, name, NAMESPACE)
    assert workflow is not None, f"no Workflow {name}"
    return argo.finish_workflow(workflow, phase, **kwargs)


def users_run(name: str, retain_policy: str = "Retain") -> Body:
    """A BackupRun a user creates with kubectl: the schedule's template, and no schedule."""
    return {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": template(retain_policy)["spec"],
    }


# -- rotation --------------------------------------------------------------------------------


def test_rotation_keeps_the_limits_the_pinned_run_and_the_newest_success(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller, argo: ArgoPlayer
) -> None:
    cron = ready_schedule(
        kube_api, s3_endpoint, bucket, successfulRunsHistoryLimit=2, failedRunsHistoryLimit=1
    )
    ticks = [TICK + timedelta(hours=hour) for hour in range(5)]
    names = [cron_run(kube_api, argo, cron, at) for at in ticks]
    first, second, third, fourth, fifth = names
    # The oldest success is pinned: without the pin it is the third success, beyond the limit.
    kube_api.patch(
        RUNS, first, {"metadata": {"annotations": {ANNOTATION_KEEP: "audit"}}}, NAMESPACE
    )
    outcomes = ["Succeeded", "Failed", "Succeeded", "Failed", "Succeeded"]
    for name, at, phase in zip(names, ticks, outcomes, strict=True):
        data = f"dump of {name}".encode()
        done = outputs_of(bucket, f"backups/{name}.sql", data) if phase == "Succeeded" else None
        finish(
            kube_api,
            argo,
            name,
            phase,
            outputs=done,
            started=at,
            finished=at + timedelta(minutes=1),
        )
        kube_api.wait_for(run_in(kube_api, name, phase))

    kube_api.wait_for(gone(kube_api, RUNS, second))
    schedule = kube_api.wait_for(
        lambda: (
            (s := kube_api.get(SCHEDULES, SCHEDULE, NAMESPACE))
            and (s["status"].get("successfulRuns"), s["status"].get("failedRuns")) == (3, 1)
            and s
        ),
        message="the schedule counts 3 successful runs and 1 failed",
    )
    remaining = {run["metadata"]["name"] for run in kube_api.list(RUNS, NAMESPACE)}
    assert remaining == {first, third, fourth, fifth}
    assert schedule["status"]["lastSuccessfulTime"]
    rotated = kube_api.wait_for(lambda: events(kube_api, SCHEDULE, "Rotated"))
    assert [e["message"] for e in rotated] == [
        f"deleted 1 finished run beyond the schedule's history rules: {second}"
    ]
    # Argo's Workflows are Argo's to collect (its own history limits); the runs are ours.
    assert {wf["metadata"]["name"] for wf in workflows(kube_api)} == set(names)
    no_event_twice(kube_api)


# -- retainPolicy ----------------------------------------------------------------------------


def test_deleting_runs_deletes_their_stored_objects_by_policy(
    kube_api: KubeApi,
    s3_endpoint: str,
    bucket: str,
    s3_client: Any,
    controller: Controller,
    argo: ArgoPlayer,
) -> None:
    cron = ready_schedule(kube_api, s3_endpoint, bucket)  # its runs: retainPolicy Delete
    spawned = cron_run(kube_api, argo, cron)
    kube_api.create(RUNS, users_run("retained", "Retain"))
    kube_api.create(RUNS, users_run("already-gone", "Delete"))
    # (run, its object is in the bucket, it is left there once the run is deleted)
    cases = [(spawned, True, False), ("retained", True, True), ("already-gone", False, False)]
    for name, stored, _ in cases:
        kube_api.wait_for(lambda n=name: kube_api.get(WORKFLOWS, n, NAMESPACE), message=name)
        key, data = f"backups/{name}.sql", f"dump of {name}".encode()
        if stored:
            s3_client.put_object(Bucket=bucket, Key=key, Body=data)
        finish(kube_api, argo, name, outputs=outputs_of(bucket, key, data))
    for name, _, left in cases:
        run = kube_api.wait_for(run_in(kube_api, name, "Succeeded"))
        assert run["status"]["path"] == f"backups/{name}.sql"
        # Delete: held by the finalizer (a user's run gets it first thing), Retain: never.
        assert (FINALIZER_STORED_OBJECT in (run["metadata"].get("finalizers") or [])) != left

    def stored_keys() -> set[str]:
        contents = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"] for o in contents}

    for name, _, left in cases:
        key = f"backups/{name}.sql"
        seen_with_object: list[bool] = []

        def run_gone(name: str = name, key: str = key, seen: list[bool] = seen_with_object) -> bool:
            # The run first, then the bucket: a run gone while its object is still there had
            # its finalizer let go too early.
            if kube_api.get(RUNS, name, NAMESPACE) is not None:
                return False
            seen.append(key in stored_keys())
            return True

        kube_api.delete(RUNS, name, NAMESPACE)
        kube_api.wait_for(run_gone, message=f"BackupRun {name} gone")
        assert seen_with_object == [left], name
    assert stored_keys() == {"backups/retained.sql"}
    no_event_twice(kube_api)


def test_a_deleted_run_waits_while_its_storage_is_unreachable(
    kube_api: KubeApi,
    s3_endpoint: str,
    bucket: str,
    s3_client: Any,
    controller: Controller,
    argo: ArgoPlayer,
) -> None:
    cron = ready_schedule(kube_api, s3_endpoint, bucket)
    name = cron_run(kube_api, argo, cron)
    key, data = f"backups/{name}.sql", b"INSERT INTO t VALUES (1);\n"
    s3_client.put_object(Bucket=bucket, Key=key, Body=data)
    finish(kube_api, argo, name, outputs=outputs_of(bucket, key, data))
    kube_api.wait_for(run_in(kube_api, name, "Succeeded"))
    nowhere = f"http://127.0.0.1:{free_port()}"
    kube_api.patch(STORAGES, "minio", {"spec": {"parameters": {"endpoint": nowhere}}})
    kube_api.wait_for(
        lambda: ready(kube_api.get(STORAGES, "minio")) == "False", message="storage not Ready"
    )

    kube_api.delete(RUNS, name, NAMESPACE)
    cond = kube_api.wait_for(
        lambda: condition(kube_api.get(RUNS, name, NAMESPACE), CONDITION_STORED_OBJECT_DELETED),
        message="a StoredObjectDeleted condition",
    )
    assert (cond["status"], cond["reason"]) == ("False", "DeleteFailed")
    assert f"could not delete the stored object {key} of BackupStorage minio" in cond["message"]
    assert "check spec.parameters.endpoint and the network" in cond["message"]
    run = kube_api.get(RUNS, name, NAMESPACE)
    assert run is not None
    assert run["metadata"]["finalizers"] == [FINALIZER_STORED_OBJECT]
    warning = kube_api.wait_for(lambda: events(kube_api, name, "DeleteFailed"))
    assert warning[0]["type"] == "Warning"
    s3_client.head_object(Bucket=bucket, Key=key)  # still there

    # The storage reachable again: the object goes, then the run.
    kube_api.patch(STORAGES, "minio", {"spec": {"parameters": {"endpoint": s3_endpoint}}})
    kube_api.wait_for(gone(kube_api, RUNS, name))
    assert s3_client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    no_event_twice(kube_api)


# -- annotations -----------------------------------------------------------------------------


def test_a_trigger_runs_the_schedule_once_across_a_restart(
    kube_api: KubeApi,
    s3_endpoint: str,
    bucket: str,
    controllers: Controllers,
    argo: ArgoPlayer,
) -> None:
    first = controllers.start()
    ready_schedule(kube_api, s3_endpoint, bucket)
    # The annotation cannot be cleared: the controller dies between submitting and clearing.
    clearing = kube_api.fail_next("patch", SCHEDULES, code=503, times=10_000)
    kube_api.patch(
        SCHEDULES, SCHEDULE, {"metadata": {"annotations": {ANNOTATION_TRIGGER: "1"}}}, NAMESPACE
    )
    submitted = kube_api.wait_for(
        lambda: workflows(kube_api, f"{LABEL_CRON_WORKFLOW}={SCHEDULE}"), message="a Workflow"
    )
    kube_api.wait_for(lambda: len(clearing.hits) >= 1, message="the clearing refused")
    controllers.restart(first)
    disarm(kube_api, clearing)
    kube_api.wait_for(
        lambda: (
            ANNOTATION_TRIGGER
            not in (kube_api.get(SCHEDULES, SCHEDULE, NAMESPACE) or {})["metadata"].get(
                "annotations", {}
            )
        ),
        message="the trigger annotation cleared",
    )
    name = submitted[0]["metadata"]["name"]
    run = kube_api.wait_for(lambda: kube_api.get(RUNS, name, NAMESPACE), message="the run")
    assert run["metadata"]["annotations"][ANNOTATION_RECORDS] == name
    triggered = kube_api.wait_for(lambda: events(kube_api, SCHEDULE, "Triggered"))
    assert [e["message"] for e in triggered] == [f"started Workflow {name} for trigger '1'"]
    again = workflows(kube_api, f"{LABEL_CRON_WORKFLOW}={SCHEDULE}")
    assert [(w["metadata"]["name"], w["metadata"]["uid"]) for w in again] == [
        (name, submitted[0]["metadata"]["uid"])
    ]

    # What argo submit --from cronwf/mysql-daily builds.
    workflow = again[0]
    stored_cron = kube_api.get(CRONS, SCHEDULE, NAMESPACE)
    assert stored_cron is not None
    assert name.startswith(f"{SCHEDULE}-manual-")
    assert workflow["spec"] == stored_cron["spec"]["workflowSpec"]
    assert workflow["metadata"]["finalizers"] == [CATALOGUE]
    assert workflow["metadata"]["ownerReferences"][0]["kind"] == "BackupSchedule"

    key, data = f"backups/{name}.sql", b"-- manual\n"
    finish(kube_api, argo, name, outputs=outputs_of(bucket, key, data))
    kube_api.wait_for(run_in(kube_api, name, "Succeeded"))
    no_event_twice(kube_api)


def test_a_restore_request_runs_once_and_records_when(
    kube_api: KubeApi,
    s3_endpoint: str,
    bucket: str,
    controllers: Controllers,
    argo: ArgoPlayer,
) -> None:
    first = controllers.start()
    cron = ready_schedule(kube_api, s3_endpoint, bucket)
    name = cron_run(kube_api, argo, cron)
    key, data = f"backups/{name}.sql", b"CREATE TABLE t (id INT);\n"
    finish(kube_api, argo, name, outputs=outputs_of(bucket, key, data))
    run = kube_api.wait_for(run_in(kube_api, name, "Succeeded"))
    assert condition(run, "Restorable")["status"] == "True"

    kube_api.patch(
        RUNS, name, {"metadata": {"annotations": {ANNOTATION_RESTORE: "now"}}}, NAMESPACE
    )
    restores = kube_api.wait_for(
        lambda: workflows(kube_api, f"{LABEL_RESTORE_OF}={name}"), message="a restore Workflow"
    )
    restore = restores[0]
    assert restore["metadata"]["name"].startswith(f"{name}-restore-")
    assert restore["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
    assert key in str(restore["spec"])
    in_progress = kube_api.wait_for(
        lambda: condition(kube_api.get(RUNS, name, NAMESPACE), "Restored"), message="Restored"
    )
    assert (in_progress["status"], in_progress["reason"]) == ("Unknown", "RestoreInProgress")

    controllers.restart(first)  # mid-restore
    finished = datetime.now(UTC).replace(microsecond=0)
    finish(kube_api, argo, restore["metadata"]["name"], finished=finished)
    done = kube_api.wait_for(
        lambda: (
            (r := kube_api.get(RUNS, name, NAMESPACE))
            and ANNOTATION_RESTORED_AT in r["metadata"].get("annotations", {})
            and r
        ),
        message="restored-at set",
    )
    annotations = done["metadata"]["annotations"]
    stamp = finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert annotations[ANNOTATION_RESTORED_AT] == stamp
    assert ANNOTATION_RESTORE not in annotations
    assert annotations[ANNOTATION_LAST_RESTORE] == restore["metadata"]["name"]
    restored = kube_api.wait_for(
        lambda: (
            (c := condition(kube_api.get(RUNS, name, NAMESPACE), "Restored"))
            and c["status"] == "True"
            and c
        )
    )
    assert restored["reason"] == "Restored"
    assert kube_api.wait_for(lambda: events(kube_api, name, "Restored"))
    assert [w["metadata"]["uid"] for w in workflows(kube_api, f"{LABEL_RESTORE_OF}={name}")] == [
        restore["metadata"]["uid"]
    ]
    assert len(events(kube_api, name, "Restored")) == 1
    no_event_twice(kube_api)


# -- a user's run ----------------------------------------------------------------------------


def test_a_users_run_gets_its_workflow_and_reports_what_was_stored(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller, argo: ArgoPlayer
) -> None:
    ready_schedule(kube_api, s3_endpoint, bucket)
    created = kube_api.create(RUNS, users_run("adhoc"))
    workflow = kube_api.wait_for(
        lambda: kube_api.get(WORKFLOWS, "adhoc", NAMESPACE), message="its Workflow"
    )
    owner = workflow["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("BackupRun", created["metadata"]["uid"])
    pending = kube_api.wait_for(run_in(kube_api, "adhoc", "Pending"))
    assert condition(pending, "InProgress")["reason"] == "WorkflowCreated"

    argo.start_workflow(workflow)
    kube_api.wait_for(run_in(kube_api, "adhoc", "Running"))
    key, data = "backups/adhoc.sql", b"x" * 2048
    finish(kube_api, argo, "adhoc", outputs=outputs_of(bucket, key, data))
    run = kube_api.wait_for(run_in(kube_api, "adhoc", "Succeeded"))
    status = run["status"]
    assert (status["path"], status["url"]) == (key, f"s3://{bucket}/{key}")
    assert (status["size"], status["sizeInBytes"]) == ("2048 B", 2048)
    assert status["sha256"] == hashlib.sha256(data).hexdigest()
    assert status["workflow"] == "adhoc"
    assert condition(run, "Successful")["status"] == "True"
    assert condition(run, "InProgress")["status"] == "False"
    reasons = kube_api.wait_for(
        lambda: (
            (seen := [e["reason"] for e in events(kube_api, "adhoc")])
            and "Succeeded" in seen
            and seen
        )
    )
    assert sorted(reasons) == ["Started", "Succeeded"]
    assert [w["metadata"]["name"] for w in workflows(kube_api)] == ["adhoc"]
    no_event_twice(kube_api)


# -- restarts --------------------------------------------------------------------------------


def test_a_controller_killed_mid_run_submits_nothing_twice_and_loses_no_status(
    kube_api: KubeApi,
    s3_endpoint: str,
    bucket: str,
    controllers: Controllers,
    argo: ArgoPlayer,
) -> None:
    first = controllers.start()
    ready_schedule(kube_api, s3_endpoint, bucket)
    # "unseen": its Workflow is submitted, and the status that says so never written.
    unseen = kube_api.fail_next(
        "patch", RUNS, subresource="status", name="unseen", code=503, times=10_000
    )
    for name in ("running", "unseen", "vanished"):
        kube_api.create(RUNS, users_run(name))
    submitted = {
        name: kube_api.wait_for(lambda n=name: kube_api.get(WORKFLOWS, n, NAMESPACE))
        for name in ("running", "unseen", "vanished")
    }
    for name in ("running", "vanished"):
        argo.start_workflow(submitted[name])
        kube_api.wait_for(run_in(kube_api, name, "Running"))
    kube_api.wait_for(lambda: len(unseen.hits) >= 1, message="a status write of unseen refused")
    first.kill()
    disarm(kube_api, unseen)

    # Argo goes on while the controller is down: two backups end, one Workflow is deleted.
    data = b"y" * 100
    for name in ("running", "unseen"):
        finish(kube_api, argo, name, outputs=outputs_of(bucket, f"backups/{name}.sql", data))
    kube_api.delete(WORKFLOWS, "vanished", NAMESPACE)
    assert kube_api.get(WORKFLOWS, "vanished", NAMESPACE) is None

    controllers.start()
    for name in ("running", "unseen"):
        run = kube_api.wait_for(run_in(kube_api, name, "Succeeded"))
        assert run["status"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert run["status"]["workflow"] == name
        assert len(kube_api.wait_for(lambda n=name: events(kube_api, n, "Succeeded"))) == 1
    run = kube_api.wait_for(run_in(kube_api, "vanished", "Failed"))
    failed = condition(run, "Failed")
    assert failed is not None
    assert failed["reason"] == "WorkflowMissing"
    assert failed["message"] == (
        "Workflow vanished is gone, and it had not finished: its result is unknown"
    )
    assert condition(run, "InProgress")["status"] == "False"
    warning = kube_api.wait_for(lambda: events(kube_api, "vanished", "Failed"))
    assert warning[0]["type"] == "Warning"
    # Nothing submitted again: the same two Workflows, and the vanished one not brought back.
    assert {w["metadata"]["name"]: w["metadata"]["uid"] for w in workflows(kube_api)} == {
        name: submitted[name]["metadata"]["uid"] for name in ("running", "unseen")
    }
    no_event_twice(kube_api)


# -- conflicts -------------------------------------------------------------------------------


def test_conflicts_on_writes_are_recovered(
    kube_api: KubeApi, s3_endpoint: str, bucket: str, controller: Controller, argo: ArgoPlayer
) -> None:
    cron = ready_schedule(kube_api, s3_endpoint, bucket)
    # More conflicts than one reconcile tries: the key goes back on the queue as well. The
    # status of the run, and the finalizer of its Workflow (the catalogue releasing it).
    conflicts = [
        kube_api.fail_next("patch", RUNS, subresource="status", code=409, times=6),
        kube_api.fail_next("patch", WORKFLOWS, code=409, times=6),
    ]
    name = str(argo.spawn_cron_workflow(cron, scheduled_time=TICK)["metadata"]["name"])
    kube_api.wait_for(lambda: kube_api.get(RUNS, name, NAMESPACE), message="the run")
    key, data = f"backups/{name}.sql", b"z"
    finish(kube_api, argo, name, outputs=outputs_of(bucket, key, data))
    run = kube_api.wait_for(run_in(kube_api, name, "Succeeded"))
    assert run["status"]["path"] == key
    kube_api.wait_for(
        lambda: not (kube_api.get(WORKFLOWS, name, NAMESPACE) or {})["metadata"].get("finalizers"),
        message="the Workflow released",
    )
    assert [len(c.hits) for c in conflicts] == [6, 6]
    no_event_twice(kube_api)
