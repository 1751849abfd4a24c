"""The loopback API's extensions of kmock, through the official client and plain HTTP.

Metadata a server owns, server-side apply, patches, the status subresource, resourceVersion
conflicts, lists with selectors and pages. Deletion, garbage collection and namespaces are in
``test_emulator_lifecycle.py``; watches and faults in ``test_emulator_watch.py``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.controller import rawhttp
from tests.controller.kubeapi import KubeApi

RUNS = "backup-operator.io/v1/backupruns"
RUNS_PATH = "/apis/backup-operator.io/v1/namespaces/team/backupruns"
GROUP, VERSION = "backup-operator.io", "v1"


def run(
    name: str, namespace: str = "team", labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    body = {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": meta,
        "spec": {"storage": "s3"},
    }
    return {**body, **extra}


@pytest.fixture
def custom(kube_api: KubeApi) -> Iterator[kubernetes.client.CustomObjectsApi]:
    with kube_api.api_client() as client:
        yield kubernetes.client.CustomObjectsApi(client)


@pytest.fixture
def dynamic(kube_api: KubeApi) -> Iterator[kubernetes.dynamic.DynamicClient]:
    with kube_api.api_client() as client:
        yield kubernetes.dynamic.DynamicClient(client)


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


# -- 1. metadata -------------------------------------------------------------------------------


def test_create_stamps_what_a_server_owns(custom: kubernetes.client.CustomObjectsApi) -> None:
    sent = run("r1")
    sent["metadata"] |= {"uid": "mine", "resourceVersion": "999", "generation": 7}
    first = custom.create_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", sent)
    second = custom.create_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", run("r2"))
    meta = first["metadata"]
    assert uuid.UUID(meta["uid"])
    assert meta["uid"] != second["metadata"]["uid"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert meta["resourceVersion"] != "999"


def test_generate_name(kube_api: KubeApi) -> None:
    with kube_api.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        body = {
            "metadata": {"generateName": "kopf-event-"},
            "involvedObject": {"kind": "BackupRun"},
        }
        names = {core.create_namespaced_event("team", body).metadata.name for _ in range(3)}
    assert len(names) == 3
    assert all(re.fullmatch(r"kopf-event-[a-z0-9]{5}", name) for name in names)


def test_generation_counts_spec_changes_only(custom: kubernetes.client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", run("r1")
    )
    spec = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", "r1", {"spec": {"storage": "b"}}
    )
    labels = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", "r1", {"metadata": {"labels": {"a": "b"}}}
    )
    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "team", "backupruns", "r1", {"status": {"phase": "Running"}}
    )
    assert [o["metadata"]["generation"] for o in (created, spec, labels, status)] == [1, 2, 2, 2]
    versions = [int(o["metadata"]["resourceVersion"]) for o in (created, spec, labels, status)]
    assert versions == sorted(set(versions)), "every change takes a new, higher resourceVersion"


def test_kmocks_objects_view_keeps_the_versions(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run("r1"))
    kube_api.patch(RUNS, "r1", {"spec": {"storage": "b"}}, "team")
    kube_api.delete(RUNS, "r1", "team")

    def history() -> list[Any]:
        versions = kube_api.emulator.objects[RUNS, "team", "r1"].history
        return [None if v is None else dict(v)["spec"] for v in versions]

    assert kube_api.call(history) == [{"storage": "s3"}, {"storage": "b"}, None]


def test_a_write_that_changes_nothing_commits_nothing(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", run("r1"))
    patch = {"metadata": {"labels": {"a": "b"}}}
    first = custom.patch_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", "r1", patch)
    again = custom.patch_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", "r1", patch)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


# -- 2. server-side apply and patches --------------------------------------------------------


def test_apply_creates_a_missing_object(
    dynamic: kubernetes.dynamic.DynamicClient, kube_api: KubeApi
) -> None:
    workflows = dynamic.resources.get(api_version="argoproj.io/v1alpha1", kind="CronWorkflow")
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly", "namespace": "team", "labels": {"a": "1"}},
        "spec": {"schedules": ["0 3 * * *"]},
    }
    created = dynamic.server_side_apply(
        workflows, body=body, field_manager="backup-operator", force_conflicts=True
    )
    assert created.metadata.uid
    stored = kube_api.get("cronworkflows", "nightly", "team")
    assert stored is not None
    assert stored["spec"] == {"schedules": ["0 3 * * *"]}


def test_apply_merges_into_an_existing_object(
    dynamic: kubernetes.dynamic.DynamicClient, kube_api: KubeApi
) -> None:
    kube_api.create(
        "cronworkflows",
        {
            "metadata": {"name": "c", "namespace": "team", "labels": {"user": "1"}},
            "spec": {"suspend": True, "schedules": ["a", "b"]},
        },
    )
    crons = dynamic.resources.get(api_version="argoproj.io/v1alpha1", kind="CronWorkflow")
    mine = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "c", "namespace": "team"},
    }
    first = {
        **mine,
        "metadata": {**mine["metadata"], "labels": {"mine": "1", "old": "1"}},
        "spec": {"schedules": ["c"]},
    }
    dynamic.server_side_apply(crons, body=first, field_manager="m", force_conflicts=True)
    second = {
        **mine,
        "metadata": {**mine["metadata"], "labels": {"mine": "2"}},
        "spec": {"schedules": ["d"]},
    }
    result = dynamic.server_side_apply(
        crons, body=second, field_manager="m", force_conflicts=True
    ).to_dict()
    assert result["metadata"]["labels"] == {"user": "1", "mine": "2"}, (
        "maps merge, dropped fields go"
    )
    assert result["spec"] == {"suspend": True, "schedules": ["d"]}, "lists are replaced"


def test_apply_needs_a_field_manager(kube_api: KubeApi) -> None:
    code, body = rawhttp.request(
        kube_api.url,
        "PATCH",
        f"{RUNS_PATH}/r1",
        run("r1"),
        content_type="application/apply-patch+yaml",
    )
    assert (code, body["reason"]) == (422, "Invalid")


def test_apply_reads_yaml(kube_api: KubeApi) -> None:
    text = "apiVersion: backup-operator.io/v1\nkind: BackupRun\nmetadata:\n  name: r1\nspec:\n  storage: y\n"
    code, body = rawhttp.request(
        kube_api.url,
        "PATCH",
        f"{RUNS_PATH}/r1",
        text,
        content_type="application/apply-patch+yaml",
        fieldManager="m",
    )
    assert (code, body["spec"]) == (201, {"storage": "y"})


def test_merge_patch_null_removes(custom: kubernetes.client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", run("r1", spec={"storage": "s", "x": 1})
    )
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", "r1", {"spec": {"x": None}}
    )
    assert patched["spec"] == {"storage": "s"}


def test_json_patch(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run("r1"))
    ops = [{"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]
    code, body = rawhttp.request(
        kube_api.url, "PATCH", f"{RUNS_PATH}/r1", ops, content_type="application/json-patch+json"
    )
    assert (code, body["metadata"]["finalizers"]) == (200, ["f"])
    failing = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}, *ops]
    code, body = rawhttp.request(
        kube_api.url,
        "PATCH",
        f"{RUNS_PATH}/r1",
        failing,
        content_type="application/json-patch+json",
    )
    assert (code, body["reason"]) == (422, "Invalid")


def test_an_unknown_patch_type_is_refused(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run("r1"))
    code, body = rawhttp.request(
        kube_api.url, "PATCH", f"{RUNS_PATH}/r1", {}, content_type="text/plain"
    )
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")


# -- 3. the status subresource ---------------------------------------------------------------


def test_status_writes_change_only_status(
    custom: kubernetes.client.CustomObjectsApi, kube_api: KubeApi
) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", run("r1", status={"phase": "Forged"})
    )
    assert "status" not in created, "a create drops the status"
    both = {"spec": {"storage": "other"}, "status": {"phase": "Running"}}
    via_status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "team", "backupruns", "r1", both
    )
    assert (via_status["spec"], via_status["status"]) == ({"storage": "s3"}, {"phase": "Running"})
    via_main = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "team",
        "backupruns",
        "r1",
        {"spec": {"storage": "b"}, "status": {"phase": "Lost"}},
    )
    assert (via_main["spec"], via_main["status"]) == ({"storage": "b"}, {"phase": "Running"})
    applied = {**run("r1"), "status": {"phase": "Succeeded", "path": "p"}}
    code, body = rawhttp.request(
        kube_api.url,
        "PATCH",
        f"{RUNS_PATH}/r1/status",
        applied,
        content_type="application/apply-patch+yaml",
        fieldManager="backup-operator",
        force="true",
    )
    assert (code, body["status"], body["spec"]) == (
        200,
        {"phase": "Succeeded", "path": "p"},
        {"storage": "b"},
    )


def test_status_apply_to_a_missing_object_is_not_found(kube_api: KubeApi) -> None:
    code, body = rawhttp.request(
        kube_api.url,
        "PATCH",
        f"{RUNS_PATH}/r1/status",
        run("r1"),
        content_type="application/apply-patch+yaml",
        fieldManager="m",
    )
    assert (code, body["reason"]) == (404, "NotFound")


def test_a_resource_without_status_subresource_keeps_status_in_main_writes(
    kube_api: KubeApi,
) -> None:
    wf = kube_api.create(
        "workflows",
        {
            "metadata": {"name": "w", "namespace": "team"},
            "spec": {},
            "status": {"phase": "Running"},
        },
    )
    assert wf["status"] == {"phase": "Running"}
    code, _ = rawhttp.request(
        kube_api.url, "GET", "/apis/argoproj.io/v1alpha1/namespaces/team/workflows/w/status"
    )
    assert code == 404


# -- 4. conflicts ----------------------------------------------------------------------------


def test_a_stale_resource_version_conflicts(custom: kubernetes.client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", run("r1")
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", "r1", {"spec": {"storage": "b"}}
    )
    stale = {**created, "spec": {"storage": "c"}}
    with pytest.raises(ApiException) as replaced:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", "r1", stale)
    stale_patch = {
        "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
        "spec": {"storage": "d"},
    }
    with pytest.raises(ApiException) as patched:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "team", "backupruns", "r1", stale_patch
        )
    for exc in (replaced.value, patched.value):
        assert (exc.status, status_of(exc)["reason"], status_of(exc)["kind"]) == (
            409,
            "Conflict",
            "Status",
        )
    current = custom.get_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", "r1")
    assert current["spec"] == {"storage": "b"}
    fresh = {**current, "spec": {"storage": "e"}}
    assert custom.replace_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", "r1", fresh
    )["spec"] == {"storage": "e"}


def test_creating_an_existing_name_is_already_exists(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", run("r1"))
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", run("r1"))
    assert (caught.value.status, status_of(caught.value)["reason"]) == (409, "AlreadyExists")
    assert status_of(caught.value)["message"] == 'backupruns.backup-operator.io "r1" already exists'


# -- 5. lists --------------------------------------------------------------------------------


def test_list_selectors(custom: kubernetes.client.CustomObjectsApi, kube_api: KubeApi) -> None:
    labels = {
        "match": {"a": "b", "e": "x", "g": "1"},
        "c-is-d": {"a": "b", "c": "d", "e": "x", "g": "1"},
        "e-is-z": {"a": "b", "e": "z", "g": "1"},
        "has-f": {"a": "b", "e": "y", "f": "1", "g": "1"},
        "no-g": {"a": "b", "e": "x"},
        "also": {"a": "b", "e": "y", "g": "", "c": "other"},
    }
    for name, value in labels.items():
        kube_api.create(RUNS, run(name, labels=value))
    kube_api.create(RUNS, run("elsewhere", "other", labels=labels["match"]))
    selected = custom.list_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", label_selector="a=b,c!=d,e in (x,y),!f,g"
    )
    assert [item["metadata"]["name"] for item in selected["items"]] == ["also", "match"]
    everywhere = custom.list_cluster_custom_object(
        GROUP, VERSION, "backupruns", label_selector="a=b,c!=d,e in (x,y),!f,g"
    )
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("other", "elsewhere"),
        ("team", "also"),
        ("team", "match"),
    ]
    by_field = custom.list_cluster_custom_object(
        GROUP, VERSION, "backupruns", field_selector="metadata.namespace=team,metadata.name!=match"
    )
    assert len(by_field["items"]) == len(labels) - 1
    assert (selected["kind"], selected["apiVersion"]) == ("BackupRunList", "backup-operator.io/v1")
    assert selected["metadata"]["resourceVersion"] == str(kube_api.emulator.store.resource_version)


def test_list_pages(kube_api: KubeApi) -> None:
    for index in range(5):
        kube_api.create(RUNS, run(f"r{index}"))
    names: list[str] = []
    token = None
    while True:
        params = {"limit": 2} | ({"continue": token} if token else {})
        code, page = rawhttp.request(kube_api.url, "GET", RUNS_PATH, **params)
        assert code == 200
        assert len(page["items"]) <= 2
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"r{index}" for index in range(5)]


def test_a_bad_selector_is_a_bad_request(kube_api: KubeApi) -> None:
    code, body = rawhttp.request(kube_api.url, "GET", RUNS_PATH, labelSelector="a in (b")
    assert (code, body["reason"]) == (400, "BadRequest")


def test_an_undeclared_resource_is_not_found(kube_api: KubeApi) -> None:
    code, body = rawhttp.request(
        kube_api.url, "GET", "/apis/backup-operator.io/v1/namespaces/team/backupthings"
    )
    assert (code, body["reason"]) == (404, "NotFound")
