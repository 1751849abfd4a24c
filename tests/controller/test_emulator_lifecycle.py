"""The loopback API's lifecycle rules: deletion with finalizers, garbage collection, namespaces."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.controller import rawhttp
from tests.controller.apierrors import ApiError
from tests.controller.kubeapi import KubeApi

RUNS = "backup-operator.io/v1/backupruns"
SCHEDULES = "backup-operator.io/v1/backupschedules"
CRONS = "argoproj.io/v1alpha1/cronworkflows"
WORKFLOWS = "argoproj.io/v1alpha1/workflows"
RUNS_PATH = "/apis/backup-operator.io/v1/namespaces/team/backupruns"


def obj(
    name: str, *, finalizers: list[str] | None = None, owners: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team"}
    if finalizers:
        meta["finalizers"] = finalizers
    if owners:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "spec": {}}


def owner(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ref = {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": body["metadata"]["name"]}
    return {**ref, "uid": body["metadata"]["uid"], **extra}


# -- 6. deletion -----------------------------------------------------------------------------


def test_finalizers_hold_a_deletion(kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, obj("r1", finalizers=["backup-operator.io/stored-object"]))
    with rawhttp.WatchStream(
        kube_api.url, RUNS_PATH, resourceVersion=created["metadata"]["resourceVersion"]
    ) as watch:
        code, marked = rawhttp.request(kube_api.url, "DELETE", f"{RUNS_PATH}/r1")
        assert code == 200
        assert marked["metadata"]["deletionTimestamp"]
        event = watch.next()
        assert event is not None
        assert (event["type"], event["object"]["metadata"]["deletionTimestamp"]) == (
            "MODIFIED",
            marked["metadata"]["deletionTimestamp"],
        )
        assert kube_api.get(RUNS, "r1", "team") is not None, "held by its finalizer"
        again, _ = rawhttp.request(kube_api.url, "DELETE", f"{RUNS_PATH}/r1")
        assert again == 200, "deleting an object marked for deletion changes nothing"
        kube_api.patch(RUNS, "r1", {"metadata": {"finalizers": None}}, "team")
        gone = watch.next()
        assert gone is not None
        assert gone["type"] == "DELETED", "the last finalizer's removal deletes it"
        assert "finalizers" not in gone["object"]["metadata"]
        assert int(gone["object"]["metadata"]["resourceVersion"]) > int(
            event["object"]["metadata"]["resourceVersion"]
        )
    assert kube_api.get(RUNS, "r1", "team") is None


def test_without_finalizers_a_deletion_is_immediate(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, obj("r1"))
    code, body = rawhttp.request(kube_api.url, "DELETE", f"{RUNS_PATH}/r1")
    assert (code, body["kind"], body["status"]) == (200, "Status", "Success")
    assert kube_api.get(RUNS, "r1", "team") is None
    code, body = rawhttp.request(kube_api.url, "DELETE", f"{RUNS_PATH}/r1")
    assert (code, body["reason"]) == (404, "NotFound")


def test_no_new_finalizer_on_an_object_being_deleted(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, obj("r1", finalizers=["a"]))
    kube_api.delete(RUNS, "r1", "team")
    with pytest.raises(ApiError) as caught:
        kube_api.patch(RUNS, "r1", {"metadata": {"finalizers": ["a", "b"]}}, "team")
    assert caught.value.code == 422


def test_delete_preconditions(kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, obj("r1"))
    stale = {"preconditions": {"uid": "not-this-one"}}
    code, body = rawhttp.request(kube_api.url, "DELETE", f"{RUNS_PATH}/r1", stale)
    assert (code, body["reason"]) == (409, "Conflict")
    right = {"preconditions": {"uid": created["metadata"]["uid"]}}
    code, _ = rawhttp.request(kube_api.url, "DELETE", f"{RUNS_PATH}/r1", right)
    assert code == 200
    assert kube_api.get(RUNS, "r1", "team") is None


# -- 7. garbage collection -------------------------------------------------------------------


def test_dependents_go_with_their_owner_recursively(kube_api: KubeApi) -> None:
    schedule = kube_api.create(SCHEDULES, obj("nightly"))
    cron = kube_api.create(CRONS, obj("nightly", owners=[owner(schedule, controller=True)]))
    held = kube_api.create(
        WORKFLOWS,
        obj("nightly-1", finalizers=["backup-operator.io/catalogue"], owners=[owner(cron)]),
    )
    free = kube_api.create(WORKFLOWS, obj("nightly-2", owners=[owner(cron)]))
    run = kube_api.create(RUNS, obj("nightly-2", owners=[owner(free)]))
    kube_api.delete(SCHEDULES, "nightly", "team")
    assert kube_api.get(CRONS, "nightly", "team") is None
    assert kube_api.get(WORKFLOWS, "nightly-2", "team") is None
    assert kube_api.get(RUNS, run["metadata"]["name"], "team") is None
    marked = kube_api.get(WORKFLOWS, "nightly-1", "team")
    assert marked is not None
    assert marked["metadata"]["deletionTimestamp"], "its finalizer holds it"
    kube_api.patch(WORKFLOWS, held["metadata"]["name"], {"metadata": {"finalizers": []}}, "team")
    assert kube_api.get(WORKFLOWS, "nightly-1", "team") is None


def test_a_dependent_stays_while_another_owner_lives(kube_api: KubeApi) -> None:
    first = kube_api.create(SCHEDULES, obj("a"))
    second = kube_api.create(SCHEDULES, obj("b"))
    kube_api.create(RUNS, obj("r", owners=[owner(first), owner(second)]))
    kube_api.delete(SCHEDULES, "a", "team")
    assert kube_api.get(RUNS, "r", "team") is not None
    kube_api.delete(SCHEDULES, "b", "team")
    assert kube_api.get(RUNS, "r", "team") is None


def test_an_object_whose_owners_do_not_exist_is_collected(kube_api: KubeApi) -> None:
    ghost = {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupSchedule",
        "name": "ghost",
        "uid": "no-such-uid",
    }
    created = kube_api.create(RUNS, obj("r", owners=[ghost]))
    assert created["metadata"]["uid"]
    assert kube_api.get(RUNS, "r", "team") is None


# -- 8. namespaces and events ----------------------------------------------------------------


def test_namespaces_exist_once_used_or_created(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, obj("r"))
    with kube_api.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespace({"metadata": {"name": "empty"}})
        assert sorted(ns.metadata.name for ns in core.list_namespace().items) == ["empty", "team"]
        team = core.read_namespace("team")
        assert (team.status.phase, bool(team.metadata.uid)) == ("Active", True)
        with pytest.raises(ApiException) as caught:
            core.read_namespace("nowhere")
    assert caught.value.status == 404
    code, watched = rawhttp.request(kube_api.url, "GET", "/api/v1/namespaces", labelSelector="!x")
    assert (code, watched["kind"], len(watched["items"])) == (200, "NamespaceList", 2)


def test_deleting_a_namespace_deletes_its_content(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, obj("plain"))
    kube_api.create(RUNS, obj("held", finalizers=["f"]))
    code, _ = rawhttp.request(kube_api.url, "DELETE", "/api/v1/namespaces/team")
    assert code == 200
    assert kube_api.get(RUNS, "plain", "team") is None
    terminating = kube_api.get("v1/namespaces", "team")
    assert terminating is not None
    assert terminating["status"] == {"phase": "Terminating"}
    with pytest.raises(ApiError) as caught:
        kube_api.create(RUNS, obj("late"))
    assert caught.value.code == 403
    kube_api.patch(RUNS, "held", {"metadata": {"finalizers": None}}, "team")
    assert kube_api.get("v1/namespaces", "team") is None


def test_events_can_be_posted_both_ways(kube_api: KubeApi) -> None:
    with kube_api.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_event(
            "team",
            {
                "metadata": {"generateName": "r-"},
                "reason": "Started",
                "involvedObject": {"name": "r"},
            },
        )
        new = kubernetes.client.EventsV1Api(client)
        new.create_namespaced_event(
            "team",
            {
                "metadata": {"name": "e"},
                "eventTime": "2024-01-01T00:00:00.000000Z",
                "reason": "Rotated",
                "regarding": {"name": "s"},
                "action": "Delete",
                "reportingController": "c",
                "reportingInstance": "i",
                "type": "Normal",
            },
        )
    assert [e["reason"] for e in kube_api.list("v1/events", "team")] == ["Started"]
    assert [e["reason"] for e in kube_api.list("events.k8s.io/v1/events", "team")] == ["Rotated"]


def test_crds_are_served_as_objects(kube_api: KubeApi) -> None:
    code, crds = rawhttp.request(
        kube_api.url, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    )
    assert code == 200
    names = sorted(crd["metadata"]["name"] for crd in crds["items"])
    assert names == [
        "backupruns.backup-operator.io",
        "backupschedules.backup-operator.io",
        "backupstorages.backup-operator.io",
    ]
    code, group = rawhttp.request(kube_api.url, "GET", "/apis/backup-operator.io/v1")
    by_name = {r["name"]: r for r in group["resources"]}
    assert by_name["backupstorages"]["namespaced"] is False
    assert {"backupruns", "backupruns/status"} <= set(by_name)
    assert {"list", "watch", "patch"} <= set(by_name["backupruns"]["verbs"])
    assert json.dumps(by_name["backupruns"]["shortNames"]) == '["brun"]'
