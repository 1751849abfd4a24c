"""The controller's cache of what it watches, and its start: nothing is reconciled before every
object listed at start has been delivered (or is gone)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from generator.controller.cache import (
    RUN,
    SCHEDULE,
    STARTUP_STALL,
    STORAGE,
    WORKFLOW,
    Cache,
    is_our_workflow,
    slim,
    summary,
)
from generator.controller.kube import Kube
from generator.controller.metrics import snapshot_of
from generator.controller.reconciler import Controller
from generator.controller.settings import Settings
from generator.controller.storages import BucketCheck, reconcile_storage
from generator.controller.workflow_status import run_status_from_workflow
from generator.models import LABEL_SCHEDULE
from tests.controller.argo import workflow_status
from tests.controller.bodies import NOW, run, schedule, secret, storage
from tests.controller.kubeapi import KubeApi
from tests.controller.test_metrics import scrape
from tests.controller.test_operator import in_fake_time

RUNS = "backup-operator.io/v1/backupruns"
SCHEDULES = "backup-operator.io/v1/backupschedules"
STORAGES = "backup-operator.io/v1/backupstorages"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
OUTPUTS = {
    "path": "s3://backups/a.sql.gz",
    "url": "http://minio/backups/a.sql.gz",
    "size": "1.0 KiB",
    "sizeInBytes": "1024",
    "sha256": "ab" * 32,
}


def workflow(name: str = "nightly-1", phase: str = "Succeeded", **labels: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": "db",
            "labels": {"workflows.argoproj.io/cron-workflow": "nightly", **labels},
            "managedFields": [{"manager": "argo", "operation": "Update"}],
        },
        "spec": {
            "entrypoint": "backup",
            "templates": [
                {
                    "name": "backup",
                    "container": {"image": "streamer", "command": ["streamer", "backup"]},
                    "outputs": {
                        "parameters": [
                            {"name": k, "globalName": k, "valueFrom": {"path": f"/out/{k}"}}
                            for k in OUTPUTS
                        ]
                    },
                }
            ],
        },
    }
    body["status"] = workflow_status(body, phase=phase, outputs=OUTPUTS, started=NOW, finished=NOW)
    return body


# -- what is kept -----------------------------------------------------------------------------


def test_a_workflow_keeps_its_status_and_entrypoint_only() -> None:
    full = workflow()
    kept = slim(WORKFLOW, full)
    assert kept["spec"] == {"entrypoint": "backup"}
    assert "managedFields" not in kept["metadata"]
    assert kept["status"] == full["status"]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Running"])
def test_a_slim_workflow_gives_its_run_the_same_status(phase: str) -> None:
    record = run("nightly-1", None, 0)
    full = workflow(phase=phase)
    full["status"].pop("outputs", None)  # then the outputs are read from the entrypoint's node
    decided = [
        run_status_from_workflow(body, record, settings=Settings(), now=NOW)
        for body in (full, slim(WORKFLOW, full))
    ]
    assert decided[0] == decided[1]
    if phase == "Succeeded":
        assert decided[0][0]["sha256"] == "ab" * 32


def test_a_storage_decides_the_same_from_the_summaries_of_its_users() -> None:
    users = [schedule(), schedule("weekly", storage_name="other")]
    runs = [
        run("a", "Succeeded", 0, size=100),
        run("b", "Failed", 1),
        run("c", "Succeeded", 2, size=50, namespace="web"),
        run("d", "Running", 3, storage_name="other"),
    ]
    check = BucketCheck(True, "bucket backups is reachable", NOW)
    decided = [
        reconcile_storage(storage(), check=check, secret=secret(), users=[*u, *r], runs=r, now=NOW)
        for u, r in ((users, runs), ([summary(b) for b in users], [summary(b) for b in runs]))
    ]
    assert decided[0] == decided[1]
    assert decided[0].actions, "the case must decide something"


def test_the_metrics_read_the_same_from_the_cache() -> None:
    bodies = {
        SCHEDULE: [schedule(), schedule("weekly", schedule="0 2 * * 1-5")],
        RUN: [
            run("a", "Succeeded", 0, size=100, finished=1),
            run("b", "Failed", 24),
            run("c", "Succeeded", 10, schedule_name="weekly", size=7),
        ],
        STORAGE: [storage(status={"sizeInBytes": 107})],
    }
    cache = Cache()
    for kind, group in bodies.items():
        for body in group:
            cache.put(kind, body)
    indices = {
        name: {i: (body,) for i, body in enumerate(bodies[kind])}
        for name, kind in (("schedules", SCHEDULE), ("runs", RUN), ("storages", STORAGE))
    }
    assert scrape(snapshot_of(cache.indices())) == scrape(snapshot_of(indices))
    assert scrape(snapshot_of(indices)), "the case must give figures"


# -- who names whom ---------------------------------------------------------------------------


def test_runs_and_users_follow_their_labels_and_storage() -> None:
    cache = Cache()
    cache.put(SCHEDULE, schedule())
    first = run("a", "Succeeded", 0)
    cache.put(RUN, first)
    assert [r["metadata"]["name"] for r in cache.runs_of("db", "nightly")] == ["a"]
    assert cache.users_of("minio") == [(RUN, "db", "a"), (SCHEDULE, "db", "nightly")]
    moved = copy.deepcopy(first)
    moved["metadata"]["labels"][LABEL_SCHEDULE] = "weekly"
    moved["spec"]["storage"]["name"] = "other"
    cache.put(RUN, moved)
    assert cache.runs_of("db", "nightly") == []
    assert [r["metadata"]["name"] for r in cache.runs_of("db", "weekly")] == ["a"]
    assert cache.users_of("minio") == [(SCHEDULE, "db", "nightly")]
    assert cache.users_of("other", RUN) == [(RUN, "db", "a")]
    cache.remove(RUN, moved)
    assert cache.get((RUN, "db", "a")) is None
    assert cache.runs_of("db", "weekly") == []
    assert cache.users_of("other") == []


def test_a_read_is_a_copy_of_its_own() -> None:
    cache = Cache()
    cache.put(RUN, run("a", "Succeeded", 0))
    read = cache.get((RUN, "db", "a"))
    assert read is not None
    read["status"]["phase"] = "Failed"
    assert (cache.get((RUN, "db", "a")) or {})["status"]["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("labels", "owners", "ours"),
    [
        pytest.param({"workflows.argoproj.io/cron-workflow": "x"}, [], True, id="cron"),
        pytest.param({"backup-operator.io/run": "x"}, [], True, id="run-label"),
        pytest.param({}, [{"kind": "BackupRun", "name": "x"}], True, id="owned-by-a-run"),
        pytest.param({"app": "x"}, [{"kind": "Job", "name": "x"}], False, id="someone-elses"),
    ],
)
def test_our_workflows(labels: dict[str, str], owners: list[dict[str, str]], ours: bool) -> None:
    body = {"metadata": {"name": "w", "labels": labels, "ownerReferences": owners}}
    assert is_our_workflow(body) is ours


# -- the start --------------------------------------------------------------------------------


@pytest.fixture
def controller(kube_api: KubeApi) -> Iterator[Controller]:
    client = kube_api.api_client()
    made = Controller(Kube(client, first_delay=0.001), Settings(), namespaces=("db",))
    yield made
    made._threads.shutdown(wait=True)
    client.close()


def _arrange(kube_api: KubeApi) -> dict[str, Any]:
    kube_api.create(STORAGES, storage())
    kube_api.create(SCHEDULES, schedule())
    kube_api.create(RUNS, run("nightly-1", None, 0))
    kube_api.create(WORKFLOWS, workflow())
    kube_api.create(WORKFLOWS, {**workflow("theirs"), "metadata": {"name": "theirs"}}, "db")
    other = run("elsewhere", None, 0, namespace="web")
    kube_api.create(RUNS, other)
    return {
        (STORAGE, "", "minio"),
        (SCHEDULE, "db", "nightly"),
        (RUN, "db", "nightly-1"),
        (WORKFLOW, "db", "nightly-1"),
    }


def test_the_start_lists_every_watched_object_of_its_namespaces(
    kube_api: KubeApi, controller: Controller
) -> None:
    expected = _arrange(kube_api)
    in_fake_time(lambda loop: controller.prime())
    assert controller.startup.missing == expected  # not "theirs", nor the run in "web"


def test_the_objects_gone_since_the_listing_are_dropped(
    kube_api: KubeApi, controller: Controller
) -> None:
    expected = _arrange(kube_api)
    in_fake_time(lambda loop: controller.prime())
    kube_api.delete(RUNS, "nightly-1", "db")
    controller._read_missing()
    assert controller.startup.missing == expected - {(RUN, "db", "nightly-1")}
    assert not controller.startup.complete


def test_reconciling_waits_until_every_listed_object_is_delivered(
    kube_api: KubeApi, controller: Controller
) -> None:
    _arrange(kube_api)
    bodies = {
        "storage": kube_api.get(STORAGES, "minio"),
        "schedule": kube_api.get(SCHEDULES, "nightly", "db"),
        "run": kube_api.get(RUNS, "nightly-1", "db"),
        "workflow": kube_api.get(WORKFLOWS, "nightly-1", "db"),
    }

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        await controller.prime()
        controller.checks._generation["minio"] = 1  # checked: no bucket check is started
        controller.on_storage(bodies["storage"] or {})
        controller.on_schedule(bodies["schedule"] or {})
        controller.on_run(bodies["run"] or {})
        begun = asyncio.create_task(controller._begin())
        await asyncio.sleep(10 * STARTUP_STALL)  # stalled: what is missing was read, and is there
        assert not begun.done()
        assert controller.startup.missing == {(WORKFLOW, "db", "nightly-1")}
        controller.on_workflow(bodies["workflow"] or {})
        await asyncio.wait_for(begun, 5)
        assert controller.startup.complete
        await controller.stop()

    in_fake_time(test)


def _running_run(kube_api: KubeApi) -> dict[str, Any]:
    """A user's run in progress whose Workflow the controller has seen (status.workflow)."""
    recorded = run("nightly-1", "Running", 0, schedule_name=None)
    kube_api.create(RUNS, recorded)
    status = {**recorded["status"], "workflow": "nightly-1"}
    return kube_api.patch(RUNS, "nightly-1", {"status": status}, "db", status=True)


def _reconcile_run_seen_without_its_workflow(
    kube_api: KubeApi, controller: Controller, times: int
) -> dict[str, Any]:
    stored_run = _running_run(kube_api)
    controller.clock = lambda: NOW  # the bodies' time: no deadline has passed

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        controller.cache.put(STORAGE, storage())  # Ready: no bucket check is started
        controller.on_run(stored_run)  # the run is seen; its Workflow, if any, not yet
        for _ in range(times):
            await controller.reconcile((RUN, "db", "nightly-1"))

    in_fake_time(test)
    now = kube_api.get(RUNS, "nightly-1", "db")
    assert now is not None
    return now


def test_a_run_is_not_failed_for_a_workflow_the_watch_has_not_delivered_yet(
    kube_api: KubeApi, controller: Controller
) -> None:
    """WorkflowMissing is decided on the cache; the API server has the last word."""
    kube_api.create(WORKFLOWS, workflow(phase="Running"))
    now = _reconcile_run_seen_without_its_workflow(kube_api, controller, times=2)
    assert controller.cache.get((WORKFLOW, "db", "nightly-1")) is not None
    assert now["status"]["phase"] == "Running"


def test_a_run_whose_workflow_is_really_gone_is_failed(
    kube_api: KubeApi, controller: Controller
) -> None:
    now = _reconcile_run_seen_without_its_workflow(kube_api, controller, times=1)
    assert now["status"]["phase"] == "Failed"
    reasons = {c["reason"] for c in now["status"]["conditions"] if c["type"] == "Failed"}
    assert reasons == {"WorkflowMissing"}
