"""The Kubernetes I/O module against the loopback API: plans carried out, errors translated."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import kmock
import pytest

from generator.controller.kube import (
    Kube,
    KubeConfigError,
    KubeError,
    PermanentKubeError,
    TemporaryKubeError,
    load_configuration,
)
from generator.controller.names import FIELD_MANAGER
from generator.controller.plan import (
    AddFinalizer,
    Apply,
    ApplyStatus,
    Create,
    Delete,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Patch,
    Plan,
    RemoveFinalizer,
)
from tests.conftest import FAKE_SECRET, free_port
from tests.controller.kubeapi import KubeApi

RUNS = "backup-operator.io/v1/backupruns"
CRONS = "argoproj.io/v1alpha1/cronworkflows"
SECRETS = "v1/secrets"
FINALIZER = "backup-operator.io/stored-object"


@pytest.fixture
def kube(kube_api: KubeApi) -> Iterator[Kube]:
    client = kube_api.api_client()
    yield Kube(client, first_delay=0.001)
    client.close()


def cron(schedule: str = "0 0 * * *", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "mysql-daily", "namespace": "db", "labels": labels},
        "spec": {"schedules": [schedule], "workflowSpec": {"entrypoint": "backup"}},
    }


def run_body(name: str = "run-1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "metadata": {"name": name, "namespace": "db", **meta},
        "spec": {
            "storage": {"name": "minio", "path": "a.sql"},
            "backup": {"container": "mysql", "command": ["true"]},
        },
    }


def ref(name: str = "run-1", uid: str | None = None) -> ObjectRef:
    return ObjectRef("backup-operator.io/v1", "BackupRun", name, "db", uid)


def secret_body(value: str = FAKE_SECRET) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "minio-backup-credentials", "namespace": "db"},
        "type": "Opaque",
        "data": {"AWS_SECRET_ACCESS_KEY": base64.b64encode(value.encode()).decode()},
    }


def requests(kube_api: KubeApi, method: str) -> list[dict[str, Any]]:
    """The requests of ``method`` the server got, as plain data."""

    def summary() -> list[dict[str, Any]]:
        return [
            {
                "path": r.url.path,
                "params": dict(r.params),
                "content_type": r.headers.get("Content-Type"),
                "data": r.data,
            }
            for r in kube_api.emulator._requests
            if str(r.method.value).upper() == method
        ]

    return kube_api.call(summary)


class Injected:
    """Failures injected on the server; ``hits`` counts the requests that got one."""

    def __init__(self, kube_api: KubeApi, fault: Any) -> None:
        self._kube_api = kube_api
        self._fault = fault

    @property
    def hits(self) -> int:
        return self._kube_api.call(lambda: len(self._fault.hits))


def fail_next(
    kube_api: KubeApi,
    method: str,
    resource: str,
    *,
    subresource: str | None = None,
    code: int = 409,
    times: int = 1,
    message: str | None = None,
) -> Injected:
    """The next ``times`` matching requests answer ``code`` (and change nothing)."""
    criteria = kmock.K8sCriteria(
        method=kmock.method(method.upper()),
        resource=kube_api.resource(resource),
        subresource=subresource,
    )
    box: list[Any] = []

    def inject() -> None:
        box.append(kube_api.emulator.fail_next(criteria, code=code, times=times, message=message))

    kube_api.call(inject)
    return Injected(kube_api, box[0])


# -- apply and status -------------------------------------------------------------------------


def test_apply_creates_then_updates_the_object(kube: Kube, kube_api: KubeApi) -> None:
    kube.execute(Plan((Apply(cron(team="a")),)))
    created = kube_api.get(CRONS, "mysql-daily", "db")
    assert created is not None
    assert created["spec"]["schedules"] == ["0 0 * * *"]
    kube.execute(Plan((Apply(cron("0 3 * * *")),)))
    updated = kube_api.get(CRONS, "mysql-daily", "db")
    assert updated is not None
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["spec"]["schedules"] == ["0 3 * * *"]
    # A field we applied before and no longer apply is ours no more: it goes.
    assert "team" not in (updated["metadata"].get("labels") or {})
    patches = requests(kube_api, "PATCH")
    assert [r["params"] for r in patches] == [{"fieldManager": FIELD_MANAGER, "force": "true"}] * 2
    assert {r["content_type"] for r in patches} == {"application/apply-patch+yaml"}


def test_apply_status_writes_only_the_status(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body())
    kube.execute(Plan((ApplyStatus(ref(), {"phase": "Running"}),)))
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["status"] == {"phase": "Running"}
    assert stored["spec"]["storage"]["path"] == "a.sql"


def test_a_conflict_on_the_first_status_patch_is_retried(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body())
    fault = fail_next(kube_api, "patch", RUNS, subresource="status", code=409)
    kube.execute(Plan((ApplyStatus(ref(), {"phase": "Succeeded"}),)))
    assert fault.hits == 1
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["status"] == {"phase": "Succeeded"}


@pytest.mark.parametrize("code", [409, 429, 500, 503])
def test_temporary_failures_retry_a_bounded_number_of_times(
    kube: Kube, kube_api: KubeApi, code: int
) -> None:
    kube_api.create(RUNS, run_body())
    fault = fail_next(kube_api, "patch", RUNS, subresource="status", code=code, times=10)
    with pytest.raises(TemporaryKubeError) as caught:
        kube.apply_status(ref(), {"phase": "Running"})
    assert fault.hits == kube.attempts
    assert caught.value.status == code
    assert str(caught.value).startswith(
        f"cannot apply the status of BackupRun/db/run-1: HTTP {code} "
    )


@pytest.mark.parametrize("code", [400, 403, 422])
def test_refused_requests_are_permanent_and_not_retried(
    kube: Kube, kube_api: KubeApi, code: int
) -> None:
    kube_api.create(RUNS, run_body())
    fault = fail_next(kube_api, "patch", RUNS, subresource="status", code=code, times=10)
    with pytest.raises(PermanentKubeError) as caught:
        kube.apply_status(ref(), {"phase": "Running"})
    assert fault.hits == 1
    assert caught.value.status == code
    assert str(caught.value).endswith(f": injected failure {code}")  # the API's own message


def test_the_status_of_an_object_gone_is_not_written(kube: Kube) -> None:
    assert kube.apply_status(ref("never-created"), {"phase": "Running"}) is False


# -- create, patch, delete --------------------------------------------------------------------


def test_create_is_create_if_absent(kube: Kube, kube_api: KubeApi) -> None:
    assert kube.create(run_body()) is True
    first = kube_api.get(RUNS, "run-1", "db")
    assert first is not None
    changed = run_body()
    changed["spec"]["storage"]["path"] = "b.sql"
    kube.execute(Plan((Create(changed),)))  # AlreadyExists: done, nothing changed
    assert kube_api.get(RUNS, "run-1", "db") == first


def test_patch_sets_and_removes_annotations(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body(annotations={"backup-operator.io/restore": "now", "x": "1"}))
    patch = Patch(ref(), annotations={"backup-operator.io/restore": None, "done": "yes"})
    kube.execute(Plan((patch,)))
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {"x": "1", "done": "yes"}
    assert kube.patch_metadata(ref("gone"), labels={"a": "b"}) is False


def test_delete_of_an_object_already_gone_is_done(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body())
    kube.execute(Plan((Delete(ref()), Delete(ref()))))
    assert kube_api.get(RUNS, "run-1", "db") is None
    assert len(requests(kube_api, "DELETE")) == 2


def test_delete_spares_another_incarnation(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body())
    kube.delete(ref(uid="uid-of-an-earlier-run"))
    assert kube_api.get(RUNS, "run-1", "db") is not None


# -- finalizers -------------------------------------------------------------------------------


def test_finalizers_are_added_and_removed_once(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body(finalizers=["other/finalizer"]))
    kube.execute(Plan((AddFinalizer(ref(), FINALIZER), AddFinalizer(ref(), FINALIZER))))
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == ["other/finalizer", FINALIZER]
    kube.execute(Plan((RemoveFinalizer(ref(), FINALIZER), RemoveFinalizer(ref(), FINALIZER))))
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == ["other/finalizer"]


def test_a_finalizer_edit_carries_the_version_it_read(kube: Kube, kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, run_body())
    kube.add_finalizer(ref(), FINALIZER)
    (patch,) = requests(kube_api, "PATCH")
    assert patch["data"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert patch["content_type"] == "application/merge-patch+json"


def test_a_conflicting_finalizer_edit_reads_again(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body())
    fault = fail_next(kube_api, "patch", RUNS, code=409)
    kube.add_finalizer(ref(), FINALIZER)
    assert fault.hits == 1
    assert len(requests(kube_api, "GET")) == 2
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == [FINALIZER]


def test_a_finalizer_of_an_object_seen_at_its_version_is_patched_without_a_read(
    kube: Kube, kube_api: KubeApi
) -> None:
    seen = kube_api.create(RUNS, run_body(finalizers=["other/finalizer", FINALIZER]))
    kube.execute(Plan((RemoveFinalizer(ref(), FINALIZER),)), seen=[seen])
    assert requests(kube_api, "GET") == []
    (patch,) = requests(kube_api, "PATCH")
    assert patch["data"]["metadata"]["resourceVersion"] == seen["metadata"]["resourceVersion"]
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == ["other/finalizer"]


def test_a_finalizer_of_an_object_seen_out_of_date_is_read_again(
    kube: Kube, kube_api: KubeApi
) -> None:
    seen = kube_api.create(RUNS, run_body(finalizers=[FINALIZER]))
    # someone adds a finalizer after the controller saw the run
    kube_api.patch(RUNS, "run-1", {"metadata": {"finalizers": [FINALIZER, "other/x"]}}, "db")
    kube.execute(Plan((RemoveFinalizer(ref(), FINALIZER),)), seen=[seen])
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == ["other/x"]  # theirs kept, ours removed
    assert len(requests(kube_api, "GET")) >= 1


def test_a_finalizer_after_a_write_to_the_same_object_is_not_patched_blind(
    kube: Kube, kube_api: KubeApi
) -> None:
    seen = kube_api.create(RUNS, run_body(finalizers=[FINALIZER]))
    plan = Plan((ApplyStatus(ref(), {"phase": "Failed"}), RemoveFinalizer(ref(), FINALIZER)))
    kube.execute(plan, seen=[seen])
    assert len(requests(kube_api, "GET")) == 1  # the status moved the version on: read it
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"].get("finalizers") in (None, [])


def test_removing_the_last_finalizer_lets_a_deleted_object_go(
    kube: Kube, kube_api: KubeApi
) -> None:
    kube_api.create(RUNS, run_body(finalizers=[FINALIZER]))
    kube_api.delete(RUNS, "run-1", "db")
    kube.add_finalizer(ref(), "late/finalizer")  # being deleted: none can be added
    kube.remove_finalizer(ref(), FINALIZER)
    assert kube_api.get(RUNS, "run-1", "db") is None
    kube.remove_finalizer(ref(), FINALIZER)  # gone: nothing to do


# -- reads, Events ----------------------------------------------------------------------------


def test_get_and_list(kube: Kube, kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, run_body("a", labels={"s": "x"}))
    kube_api.create(RUNS, run_body("b", labels={"s": "y"}))
    assert kube.get(ref("a")) == created
    assert kube.get(ref("missing")) is None
    assert kube.get(ref("a", uid="another-uid")) is None
    listed = kube.list_objects("backup-operator.io/v1", "BackupRun", labels={"s": "y"})
    assert [item["metadata"]["name"] for item in listed] == ["b"]
    assert listed[0]["kind"] == "BackupRun"
    assert len(kube.list_objects("backup-operator.io/v1", "BackupRun", namespace="db")) == 2


def test_events_are_posted_on_the_object(kube: Kube, kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, run_body())
    regarding = ref(uid=created["metadata"]["uid"])
    storage = ObjectRef("backup-operator.io/v1", "BackupStorage", "minio")
    kube.execute(
        Plan(
            (
                EmitEvent(regarding, "Succeeded", "stored a.sql"),
                EmitEvent(storage, "NotReady", "no bucket", "Warning"),
            )
        )
    )
    (on_run,) = kube_api.list("v1/events", "db")
    assert on_run["involvedObject"] == {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupRun",
        "name": "run-1",
        "namespace": "db",
        "uid": created["metadata"]["uid"],
    }
    assert (on_run["reason"], on_run["message"], on_run["type"]) == (
        "Succeeded",
        "stored a.sql",
        "Normal",
    )
    (on_storage,) = kube_api.list("v1/events", "default")
    assert on_storage["involvedObject"]["kind"] == "BackupStorage"
    assert on_storage["type"] == "Warning"


def test_an_event_decided_twice_is_posted_once(kube: Kube, kube_api: KubeApi) -> None:
    created = kube_api.create(RUNS, run_body())
    regarding = ref(uid=created["metadata"]["uid"])
    succeeded = EmitEvent(regarding, "Succeeded", "stored a.sql")
    kube.execute(Plan((succeeded, EmitEvent(regarding, "Restored", "restored a.sql"))))
    kube.execute(Plan((succeeded,)))  # a second reconcile that read the run before the first
    events = kube_api.list("v1/events", "db")
    assert sorted(e["reason"] for e in events) == ["Restored", "Succeeded"]
    assert succeeded.name in {e["metadata"]["name"] for e in events}


def test_an_event_that_cannot_be_posted_never_fails_the_plan(kube: Kube, kube_api: KubeApi) -> None:
    kube_api.create(RUNS, run_body())
    fail_next(kube_api, "post", "v1/events", code=500, times=10)
    kube.execute(Plan((EmitEvent(ref(), "Started", "x"), Patch(ref(), labels={"a": "b"}))))
    stored = kube_api.get(RUNS, "run-1", "db")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"a": "b"}


# -- plans ------------------------------------------------------------------------------------


def test_a_plan_stops_at_the_first_failure(kube: Kube, kube_api: KubeApi) -> None:
    fail_next(kube_api, "post", RUNS, code=422)
    plan = Plan((Apply(cron()), Create(run_body()), Apply(secret_body())))
    with pytest.raises(PermanentKubeError, match="cannot create BackupRun/db/run-1: HTTP 422"):
        kube.execute(plan)
    assert kube_api.get(CRONS, "mysql-daily", "db") is not None
    assert kube_api.get(SECRETS, "minio-backup-credentials", "db") is None


def test_stored_objects_are_deleted_by_the_given_function(kube: Kube) -> None:
    deleted: list[DeleteStoredObject] = []
    action = DeleteStoredObject("minio", "backups/a.sql")
    kube.execute(Plan((action,)), delete_stored_object=deleted.append)
    assert deleted == [action]
    with pytest.raises(PermanentKubeError):
        kube.execute(Plan((action,)))


# -- secrets never shown ----------------------------------------------------------------------


def test_no_body_is_logged(kube: Kube, kube_api: KubeApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kube.execute(Plan((Apply(secret_body()),)))
    kube.get(ObjectRef("v1", "Secret", "minio-backup-credentials", "db"))
    encoded = secret_body()["data"]["AWS_SECRET_ACCESS_KEY"]
    assert "minio-backup-credentials" in caplog.text
    assert FAKE_SECRET not in caplog.text
    assert encoded not in caplog.text


def test_a_refused_secret_is_reported_without_the_api_message(
    kube: Kube, kube_api: KubeApi
) -> None:
    quoting = f"Secret is invalid: data[AWS_SECRET_ACCESS_KEY]: {FAKE_SECRET}"
    fail_next(kube_api, "patch", SECRETS, code=422, message=quoting)
    with pytest.raises(PermanentKubeError) as caught:
        kube.apply(secret_body())
    assert str(caught.value) == (
        "cannot apply Secret/db/minio-backup-credentials: HTTP 422 Unprocessable Entity"
    )


# -- configuration and the network ------------------------------------------------------------


def test_an_unreachable_server_is_temporary_and_names_it() -> None:
    port = free_port()
    configuration = load_configuration_for(f"http://127.0.0.1:{port}")
    from kubernetes.client import ApiClient

    kube = Kube(ApiClient(configuration), first_delay=0.001)
    with pytest.raises(TemporaryKubeError) as caught:
        kube.get(ref())
    assert str(caught.value) == (
        f"cannot read BackupRun/db/run-1 at http://127.0.0.1:{port}: MaxRetryError"
    )
    assert caught.value.__cause__ is None  # the client's exceptions stay inside


def load_configuration_for(url: str) -> Any:
    from kubernetes.client import Configuration

    configuration = Configuration()
    configuration.host = url
    configuration.retries = 0
    return configuration


def test_a_missing_kubeconfig_is_one_clear_error(tmp_path: Any) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    with pytest.raises(KubeConfigError) as caught:
        load_configuration(str(missing))
    assert str(caught.value) == (
        f"no Kubernetes configuration: not in a cluster, and no usable kubeconfig at {missing} "
        "(Invalid kube-config file. No configuration found.); set KUBECONFIG or run in a Pod"
    )
    assert isinstance(caught.value, KubeError)


def test_the_kubeconfig_is_read(kube_api: KubeApi) -> None:
    configuration = load_configuration(str(kube_api.kubeconfig))
    assert configuration.host == kube_api.url
