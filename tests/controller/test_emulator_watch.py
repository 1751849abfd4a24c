"""The loopback API's watches and injected faults, and the real kopf running against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.controller.kubeapi import KubeApi, running_kube_api
from tests.controller.rawhttp import WatchStream

RUNS = "backup-operator.io/v1/backupruns"
RUNS_PATH = "/apis/backup-operator.io/v1/namespaces/team/backupruns"
GROUP, VERSION = "backup-operator.io", "v1"


def run(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team", "labels": labels}, "spec": {}}


def rv(body: dict[str, Any]) -> int:
    return int(body["metadata"]["resourceVersion"])


def events(watch: WatchStream, count: int) -> list[tuple[str, str, int]]:
    seen = []
    for _ in range(count):
        event = watch.next()
        assert event is not None, f"the watch ended after {seen}"
        seen.append((event["type"], event["object"]["metadata"]["name"], rv(event["object"])))
    return seen


# -- 9. watches ------------------------------------------------------------------------------


def test_a_watch_resumes_from_a_resource_version(kube_api: KubeApi) -> None:
    first = kube_api.create(RUNS, run("r1"))
    modified = kube_api.patch(RUNS, "r1", {"spec": {"a": 1}}, "team")
    second = kube_api.create(RUNS, run("r2"))
    kube_api.delete(RUNS, "r1", "team")
    kube_api.create(RUNS, run("elsewhere") | {"metadata": {"name": "x", "namespace": "other"}})
    with WatchStream(kube_api.url, RUNS_PATH, resourceVersion=rv(first)) as watch:
        replayed = events(watch, 3)
        assert replayed[:2] == [("MODIFIED", "r1", rv(modified)), ("ADDED", "r2", rv(second))]
        assert replayed[2][:2] == ("DELETED", "r1")
        assert replayed[2][2] > rv(second)
        live = kube_api.create(RUNS, run("r3"))
        assert events(watch, 1) == [("ADDED", "r3", rv(live))]


def test_a_watch_without_a_version_starts_with_what_exists(kube_api: KubeApi) -> None:
    one, two = kube_api.create(RUNS, run("b")), kube_api.create(RUNS, run("a"))
    with WatchStream(kube_api.url, RUNS_PATH) as watch:
        assert events(watch, 2) == [("ADDED", "a", rv(two)), ("ADDED", "b", rv(one))]
        changed = kube_api.patch(RUNS, "a", {"spec": {"x": 1}}, "team")
        assert events(watch, 1) == [("MODIFIED", "a", rv(changed))]


def test_a_watch_with_a_selector_sees_objects_come_and_go(kube_api: KubeApi) -> None:
    start = kube_api.emulator.store.resource_version
    with WatchStream(
        kube_api.url, RUNS_PATH, resourceVersion=start, labelSelector="app=x"
    ) as watch:
        kube_api.create(RUNS, run("r", app="y"))
        moved_in = kube_api.patch(RUNS, "r", {"metadata": {"labels": {"app": "x"}}}, "team")
        moved_out = kube_api.patch(RUNS, "r", {"metadata": {"labels": {"app": "z"}}}, "team")
        other = kube_api.create(RUNS, run("s", app="x"))
        assert events(watch, 3) == [
            ("ADDED", "r", rv(moved_in)),
            ("DELETED", "r", rv(moved_out)),
            ("ADDED", "s", rv(other)),
        ]


def test_a_watch_too_far_behind_is_gone(tmp_path: Path) -> None:
    with running_kube_api(tmp_path / "kubeconfig", log_limit=4) as api:
        first = api.create(RUNS, run("r"))
        for index in range(10):
            api.patch(RUNS, "r", {"spec": {"n": index}}, "team")
        with WatchStream(api.url, RUNS_PATH, resourceVersion=rv(first)) as watch:
            error = watch.next()
            assert error is not None
            assert error["type"] == "ERROR"
            assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")
            assert watch.next() is None


def test_a_server_timeout_ends_the_watch_with_a_bookmark(kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, run("r"))
    params = {"resourceVersion": rv(created), "timeoutSeconds": 1, "allowWatchBookmarks": "true"}
    with WatchStream(kube_api.url, RUNS_PATH, **params) as watch:
        bookmark = watch.next()
        assert bookmark is not None
        assert bookmark["type"] == "BOOKMARK"
        assert rv(bookmark["object"]) == kube_api.emulator.store.resource_version
        assert watch.next() is None


def test_initial_events_end_with_a_bookmark(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run("r"))
    with WatchStream(
        kube_api.url, RUNS_PATH, sendInitialEvents="true", resourceVersionMatch="NotOlderThan"
    ) as watch:
        added, bookmark = watch.next(), watch.next()
        assert added is not None
        assert added["type"] == "ADDED"
        assert bookmark is not None
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["annotations"] == {
            "k8s.io/initial-events-end": "true"
        }


def test_dropped_watches_are_cut_and_a_new_one_catches_up(kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, run("r"))
    with (
        WatchStream(kube_api.url, RUNS_PATH, resourceVersion=rv(created)) as runs,
        WatchStream(kube_api.url, "/apis/argoproj.io/v1alpha1/workflows"),
    ):
        assert kube_api.watches() == 2
        assert kube_api.drop_watches() == 2
        assert runs.next() is None, "the connection is cut"
        assert kube_api.watches() == 0
    missed = kube_api.patch(RUNS, "r", {"spec": {"while": "away"}}, "team")
    with WatchStream(kube_api.url, RUNS_PATH, resourceVersion=rv(created)) as again:
        assert events(again, 1) == [("MODIFIED", "r", rv(missed))]


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def custom(kube_api: KubeApi) -> Iterator[kubernetes.client.CustomObjectsApi]:
    with kube_api.api_client() as client:
        yield kubernetes.client.CustomObjectsApi(client)


def test_an_injected_conflict_answers_instead_of_the_api(
    kube_api: KubeApi, custom: kubernetes.client.CustomObjectsApi
) -> None:
    kube_api.create(RUNS, run("r"))
    fault = kube_api.fail_next("PATCH", RUNS, subresource="status", code=409)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "team", "backupruns", "r", {"spec": {"x": 1}}
    )
    before = kube_api.get(RUNS, "r", "team")
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "team", "backupruns", "r", {"status": {"phase": "Running"}}
        )
    assert caught.value.status == 409
    assert kube_api.get(RUNS, "r", "team") == before, "the failed request changed nothing"
    patched = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "team", "backupruns", "r", {"status": {"phase": "Running"}}
    )
    assert patched["status"] == {"phase": "Running"}
    assert len(fault.hits) == 1


def test_faults_through_kmocks_dsl(
    kube_api: KubeApi, custom: kubernetes.client.CustomObjectsApi
) -> None:
    kube_api.create(RUNS, run("r"))
    runs = kmock.resource(RUNS)
    kube_api.call(
        lambda: kube_api.emulator.fail_next(
            kmock.method.GET, runs, kmock.name("r"), code=503, times=2
        )
    )
    codes = []
    for _ in range(3):
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, "team", "backupruns", "r")
            codes.append(200)
        except ApiException as exc:
            codes.append(exc.status)
    assert codes == [503, 503, 200]


def test_wait_for(kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run("r"))
    assert (
        kube_api.wait_for(lambda: kube_api.get(RUNS, "r", "team"), timeout=5)["metadata"]["name"]
        == "r"
    )
    with pytest.raises(AssertionError, match="no such run"):
        kube_api.wait_for(
            lambda: kube_api.get(RUNS, "nope", "team"), timeout=0.2, message="no such run"
        )


# -- the real kopf ---------------------------------------------------------------------------

OPERATOR = """
import kopf

@kopf.on.startup()
def configure(settings, **_):
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 40

@kopf.on.event("backup-operator.io", "v1", "backupruns")
def seen(body, patch, **_):
    generation = body["metadata"].get("generation")
    if (body.get("status") or {}).get("seen") != generation:
        patch.status["seen"] = generation
"""


def test_kopf_runs_against_the_loopback_api(kube_api: KubeApi, tmp_path: Path) -> None:
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR)
    env = {**os.environ, "KUBECONFIG": str(kube_api.kubeconfig)}
    command = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        str(operator),
    ]
    with (tmp_path / "kopf.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        kube_api.wait_for(
            lambda: kube_api.watches(RUNS), timeout=60, message="kopf watches backupruns"
        )

        def seen() -> Any:
            return (kube_api.get(RUNS, "r", "team") or {}).get("status", {}).get("seen")

        kube_api.create(RUNS, run("r"))
        kube_api.wait_for(lambda: seen() == 1, message="kopf handled the new run")
        kube_api.drop_watches()
        kube_api.patch(RUNS, "r", {"spec": {"x": 1}}, "team")
        kube_api.wait_for(lambda: seen() == 2, message="kopf recovered from the dropped watch")
    finally:
        process.terminate()
        process.wait(60)
    assert "Traceback" not in (tmp_path / "kopf.log").read_text()
