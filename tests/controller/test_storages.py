"""The decisions about a BackupStorage, by tables of named cases: Ready from the bucket check,
counts and size, the in-use finalizer, the credentials copies per namespace (allowedNamespaces),
a restart after any prefix of each plan, and a recognisable fake secret that never appears
anywhere but in the data of the copies.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest

from generator.controller.credentials import REDACTED, Concealed, scrub
from generator.controller.names import (
    FINALIZER_IN_USE,
    LABEL_CREDENTIALS_OF,
    LABEL_MANAGED_BY,
    copied_secret_name,
)
from generator.controller.plan import (
    AddFinalizer,
    Apply,
    ApplyStatus,
    Delete,
    EmitEvent,
    ObjectRef,
    Plan,
    RemoveFinalizer,
)
from generator.controller.storages import (
    MAX_NAMED_USERS,
    BucketCheck,
    reconcile_storage,
    storage_verdict,
)
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET
from tests.controller.bodies import NOW, Body, b64, run, schedule, secret, stamp, storage
from tests.controller.world import World, check_restart_safe, settle

STORAGE_REF = ObjectRef("backup-operator.io/v1", "BackupStorage", "minio", None, "uid-minio")
COPY = "minio-backup-credentials"
OK = BucketCheck(True, "bucket backups is reachable", NOW - timedelta(seconds=5))
OWNER = {
    "apiVersion": "backup-operator.io/v1",
    "kind": "BackupStorage",
    "name": "minio",
    "uid": "uid-minio",
    "controller": True,
    "blockOwnerDeletion": True,
}


def plan_for(
    store: Body,
    *,
    check: BucketCheck | None = OK,
    source: Body | None = None,
    users: list[Body] | None = None,
    runs: list[Body] | None = None,
    missing_secret: bool = False,
) -> Plan:
    return reconcile_storage(
        store,
        check=check,
        secret=None if missing_secret else (source or secret()),
        users=users or [],
        runs=runs or [],
        now=NOW,
    )


def of(plan: Plan, kind: type) -> list[Any]:
    return [a for a in plan.actions if isinstance(a, kind)]


def final_status(plan: Plan) -> Body:
    return of(plan, ApplyStatus)[-1].status


def cond(status: Body, type_: str) -> Body:
    (found,) = [c for c in status["conditions"] if c["type"] == type_]
    return found


def copies(plan: Plan) -> dict[str, Body]:
    return {
        a.body["metadata"]["namespace"]: a.body
        for a in of(plan, Apply)
        if a.body["kind"] == "Secret"
    }


def reconcile_world(world: World, check: BucketCheck | None = OK) -> Plan:
    source = world.get("Secret", "minio-credentials", "minio")
    store = world.get("BackupStorage", "minio", None)
    if store is None:  # deleted: nothing is reconciled any more
        return Plan()
    return reconcile_storage(
        store,
        check=check,
        secret=source,
        users=world.of_kind("BackupSchedule"),
        runs=world.of_kind("BackupRun"),
        now=NOW,
    )


# --- Ready -----------------------------------------------------------------------------------


READY_CASES = [
    pytest.param(
        storage(ready=None),
        OK,
        False,
        ("True", "BucketReachable", "bucket backups is reachable"),
        ("Ready", "Normal"),
        id="check-ok",
    ),
    pytest.param(
        storage(ready=None),
        BucketCheck(False, "the bucket 'backups' does not exist", NOW),
        False,
        ("False", "BucketUnreachable", "the bucket 'backups' does not exist"),
        ("BucketUnreachable", "Warning"),
        id="check-failed",
    ),
    pytest.param(
        storage(ready=None),
        BucketCheck(False, f"rejected key {FAKE_SECRET} (as {b64(FAKE_SECRET)})", NOW),
        False,
        ("False", "BucketUnreachable", f"rejected key {REDACTED} (as {REDACTED})"),
        ("BucketUnreachable", "Warning"),
        id="check-message-with-the-secret-is-scrubbed",
    ),
    pytest.param(
        storage(ready=None),
        OK,
        True,
        (
            "False",
            "CredentialsNotFound",
            "the Secret minio/minio-credentials named in spec.credentials does not exist",
        ),
        ("CredentialsNotFound", "Warning"),
        id="no-secret",
    ),
    pytest.param(
        storage(ready=None),
        None,
        False,
        ("Unknown", "NotChecked", "not been checked yet"),
        None,
        id="not-checked-yet",
    ),
    pytest.param(
        storage(ready="False", message="no such bucket"),
        None,
        False,
        ("False", "BucketUnreachable", "no such bucket"),
        None,
        id="no-new-check-keeps-the-last",
    ),
    pytest.param(
        storage(ready="False", message="no such bucket"),
        OK,
        False,
        ("True", "BucketReachable", "bucket backups is reachable"),
        ("Ready", "Normal"),
        id="recovered",
    ),
]


@pytest.mark.parametrize(("store", "check", "missing_secret", "ready", "event"), READY_CASES)
def test_ready(
    store: Body,
    check: BucketCheck | None,
    missing_secret: bool,
    ready: tuple[str, str, str],
    event: tuple[str, str] | None,
) -> None:
    plan = plan_for(store, check=check, missing_secret=missing_secret)
    status = final_status(plan)
    found = cond(status, "Ready")
    assert (found["status"], found["reason"]) == ready[:2]
    assert ready[2] in found["message"]
    if check is not None:
        assert status["lastValidationTime"] == (
            NOW - timedelta(seconds=5) if check is OK else NOW
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [(e.reason, e.type) for e in of(plan, EmitEvent)]
    assert events == ([event] if event else [])


def test_last_validation_time_is_kept_between_checks() -> None:
    store = storage(status={"lastValidationTime": stamp(3)})
    assert final_status(plan_for(store, check=None))["lastValidationTime"] == stamp(3)


# --- counts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runs", "count", "size", "human"),
    [
        pytest.param([], 0, 0, "0 B", id="no-runs"),
        pytest.param(
            [
                run("a", "Succeeded", 1, size=1024),
                run("b", "Succeeded", 2, size=512, namespace="prod"),
            ],
            2,
            1536,
            "1.5 KiB",
            id="successful-runs-in-any-namespace",
        ),
        pytest.param(
            [
                run("a", "Succeeded", 1, size=100),
                run("f", "Failed", 2, size=50),
                run("p", "Running", 3),
            ],
            1,
            100,
            "100 B",
            id="failed-and-running-runs-stored-nothing",
        ),
        pytest.param(
            [
                run("a", "Succeeded", 1, size=100),
                run("x", "Succeeded", 2, size=7, storage_name="other"),
            ],
            1,
            100,
            "100 B",
            id="runs-of-another-storage",
        ),
        pytest.param([run("a", "Succeeded", 1)], 1, 0, "0 B", id="size-not-reported"),
    ],
)
def test_counts_and_size(runs: list[Body], count: int, size: int, human: str) -> None:
    status = final_status(plan_for(storage(), runs=runs))
    assert (status["runs"], status["sizeInBytes"], status["size"]) == (count, size, human)


# --- the in-use finalizer --------------------------------------------------------------------


def test_the_in_use_finalizer_is_added_first_and_only_once() -> None:
    plan = plan_for(storage())
    assert plan.actions[0] == AddFinalizer(STORAGE_REF, FINALIZER_IN_USE)
    assert of(plan_for(storage(finalizers=[FINALIZER_IN_USE])), AddFinalizer) == []


def test_deletion_is_held_while_schedules_or_runs_use_the_storage() -> None:
    users = [schedule(f"s{i}", namespace=f"ns{i}") for i in range(MAX_NAMED_USERS + 2)]
    store = storage(finalizers=[FINALIZER_IN_USE], deleting=True)
    plan = plan_for(store, users=users, runs=[run("r", "Succeeded", 1)])
    assert of(plan, RemoveFinalizer) == []
    assert of(plan, AddFinalizer) == []
    held = cond(final_status(plan), "InUse")
    assert (held["status"], held["reason"]) == ("True", "DeletionHeld")
    assert "7 schedules and 1 run" in held["message"]
    assert "and 3 more" in held["message"]
    (event,) = of(plan, EmitEvent)[-1:]
    assert (event.reason, event.type, event.regarding) == ("DeletionHeld", "Warning", STORAGE_REF)
    assert "BackupRun db/r" in event.message
    assert len(copies(plan)) == 8  # runs keep working while the deletion waits


def test_deletion_goes_on_once_unused_copies_first_then_the_finalizer() -> None:
    store = storage(
        finalizers=[FINALIZER_IN_USE],
        deleting=True,
        status={"credentialsNamespaces": ["db", "prod"]},
    )
    plan = plan_for(store)
    kinds = [type(a).__name__ for a in plan.actions]
    assert kinds[-1] == "RemoveFinalizer"
    assert [(d.ref.kind, d.ref.namespace, d.ref.name) for d in of(plan, Delete)] == [
        ("Secret", "db", COPY),
        ("Secret", "prod", COPY),
    ]
    assert kinds.index("Delete") < kinds.index("RemoveFinalizer")
    assert "credentialsNamespaces" not in final_status(plan)


def test_in_use_names_the_users() -> None:
    plan = plan_for(storage(), users=[schedule()], runs=[run("r", "Running", 1)])
    in_use = cond(final_status(plan), "InUse")
    assert (in_use["status"], in_use["reason"]) == ("True", "Used")
    assert (
        in_use["message"]
        == "used by 1 schedule and 1 run: BackupRun db/r, BackupSchedule db/nightly"
    )
    unused = cond(final_status(plan_for(storage())), "InUse")
    assert (unused["status"], unused["reason"]) == ("False", "Unused")


# --- credentials copies ----------------------------------------------------------------------


def test_a_copy_in_each_namespace_of_a_user_with_only_type_and_data() -> None:
    users = [schedule(), schedule("weekly"), schedule("nightly", namespace="prod")]
    plan = plan_for(
        storage(),
        users=users,
        runs=[run("r", "Succeeded", 1, namespace="adhoc", schedule_name=None)],
    )
    made = copies(plan)
    assert sorted(made) == ["adhoc", "db", "prod"]
    source = secret()
    for namespace, body in made.items():
        assert body == {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": COPY,
                "namespace": namespace,
                "labels": {LABEL_CREDENTIALS_OF: "minio", LABEL_MANAGED_BY: "backup-operator"},
                "ownerReferences": [OWNER],
            },
            "type": "Opaque",
            "data": source["data"],
        }
    assert final_status(plan)["credentialsNamespaces"] == ["adhoc", "db", "prod"]


def test_the_copy_follows_the_source() -> None:
    changed = secret()
    changed["type"] = "kubernetes.io/basic-auth"
    changed["data"]["AWS_SECRET_ACCESS_KEY"] = b64("rotated")
    (body,) = copies(plan_for(storage(), source=changed, users=[schedule()])).values()
    assert body["type"] == "kubernetes.io/basic-auth"
    assert body["data"]["AWS_SECRET_ACCESS_KEY"] == b64("rotated")


COPY_CASES = [
    pytest.param(None, ["db", "prod"], [], ["db", "prod"], "True", id="all-namespaces-by-default"),
    pytest.param(["prod"], ["prod"], [], ["prod"], "False", id="a-disallowed-user-gets-no-copy"),
    pytest.param([], [], [], [], "False", id="empty-allows-none"),
    pytest.param(
        None,
        ["db", "prod"],
        ["old", "db"],
        ["db", "prod"],
        "True",
        id="copies-no-longer-used-are-deleted",
    ),
    pytest.param(None, ["db", "prod"], ["db", "prod"], ["db", "prod"], "True", id="nothing-new"),
]


@pytest.mark.parametrize(("allowed", "made", "recorded", "after", "all_allowed"), COPY_CASES)
def test_copies_per_allowed_namespace(
    allowed: list[str] | None,
    made: list[str],
    recorded: list[str],
    after: list[str],
    all_allowed: str,
) -> None:
    store = storage(
        allowed=allowed, status={"credentialsNamespaces": recorded} if recorded else None
    )
    users = [schedule(), schedule(namespace="prod")]
    plan = plan_for(store, users=users)
    assert sorted(copies(plan)) == made
    deleted = sorted(d.ref.namespace for d in of(plan, Delete))
    assert deleted == sorted(set(recorded) - set(after))
    status = final_status(plan)
    assert status.get("credentialsNamespaces", []) == after
    users_allowed = cond(status, "UsersAllowed")
    assert users_allowed["status"] == all_allowed
    if all_allowed == "False":
        assert "BackupSchedule db/nightly" in users_allowed["message"]
        assert "StorageNotAllowed" in users_allowed["message"]
        assert [e.reason for e in of(plan, EmitEvent)].count("UsersNotAllowed") == 1


def test_new_copies_are_recorded_before_they_are_made_and_forgotten_after_deletion() -> None:
    store = storage(finalizers=[FINALIZER_IN_USE], status={"credentialsNamespaces": ["old"]})
    plan = plan_for(store, users=[schedule()])
    kinds = [(type(a).__name__, getattr(a, "ref", None) and a.ref.kind) for a in plan.actions]
    first, last = of(plan, ApplyStatus)
    assert first.status["credentialsNamespaces"] == ["db", "old"]
    assert last.status["credentialsNamespaces"] == ["db"]
    assert kinds.index(("ApplyStatus", "BackupStorage")) < [k for k, _ in kinds].index("Apply")
    assert plan.actions.index(last) > plan.actions.index(of(plan, Delete)[0])


def test_a_missing_source_keeps_the_copies_in_use_and_makes_none() -> None:
    store = storage(status={"credentialsNamespaces": ["db", "old"]})
    plan = plan_for(store, users=[schedule(), schedule(namespace="prod")], missing_secret=True)
    assert copies(plan) == {}
    assert [d.ref.namespace for d in of(plan, Delete)] == ["old"]
    assert final_status(plan)["credentialsNamespaces"] == ["db"]


def test_the_source_itself_is_never_overwritten_or_deleted() -> None:
    store = storage()
    store["spec"]["credentials"] = {"name": COPY, "namespace": "db"}
    store["status"] = {"credentialsNamespaces": ["db"]}
    plan = plan_for(
        store, source=secret("db", COPY), users=[schedule(), schedule(namespace="prod")]
    )
    assert sorted(copies(plan)) == ["prod"]
    assert of(plan, Delete) == []


def test_copied_secret_name_fits_and_differs_for_long_names() -> None:
    long_a, long_b = "a" * 250, "a" * 249 + "b"
    assert copied_secret_name("minio") == COPY
    assert len(copied_secret_name(long_a)) == 253
    assert copied_secret_name(long_a) != copied_secret_name(long_b)


# --- what the users of a storage are told ----------------------------------------------------


@pytest.mark.parametrize(
    ("store", "namespace", "expected"),
    [
        pytest.param(storage(), "db", ("True", "StorageReady"), id="ready"),
        pytest.param(None, "db", ("False", "StorageNotFound"), id="not-found"),
        pytest.param(
            storage(allowed=["prod"]), "db", ("False", "StorageNotAllowed"), id="not-allowed"
        ),
        pytest.param(storage(allowed=["prod", "db"]), "db", ("True", "StorageReady"), id="allowed"),
        pytest.param(storage(ready="False"), "db", ("False", "StorageNotReady"), id="not-ready"),
        pytest.param(storage(ready=None), "db", ("Unknown", "StorageNotReady"), id="not-checked"),
    ],
)
def test_storage_verdict(store: Body | None, namespace: str, expected: tuple[str, str]) -> None:
    verdict = storage_verdict(store, name="minio", namespace=namespace)
    assert (verdict.status, verdict.reason) == expected
    assert verdict.ok is (expected[0] == "True")
    assert "minio" in verdict.message


# --- restarts --------------------------------------------------------------------------------


def _world(
    *,
    allowed: list[str] | None = None,
    recorded: list[str] | None = None,
    deleting: bool = False,
    users: bool = True,
) -> World:
    status = {"credentialsNamespaces": recorded} if recorded else None
    store = storage(
        ready=None,
        allowed=allowed,
        status=status,
        deleting=deleting,
        finalizers=[FINALIZER_IN_USE] if deleting else None,
    )
    objects: list[Body] = [store, secret()]
    if users:
        objects += [
            schedule(),
            schedule(namespace="prod"),
            run("r", "Succeeded", 1, namespace="adhoc", size=10),
        ]
    return World.of(*objects)


RESTART_CASES = [
    pytest.param(lambda: _world(), id="first-reconcile"),
    pytest.param(lambda: _world(recorded=["old", "db"]), id="copies-moved"),
    pytest.param(lambda: _world(allowed=["prod"], recorded=["db"]), id="namespace-disallowed"),
    pytest.param(lambda: _world(deleting=True, recorded=["db", "prod"]), id="deletion-held"),
    pytest.param(lambda: _world(deleting=True, recorded=["db", "prod"], users=False), id="deleted"),
]


@pytest.mark.parametrize("make", RESTART_CASES)
def test_a_restart_after_any_prefix_of_the_plan_finishes_it_without_duplicates(make: Any) -> None:
    check_restart_safe(make(), reconcile_world)


def test_a_settled_storage_only_reapplies_its_copies() -> None:
    world = _world()
    world.carry_out(reconcile_world(world))
    plan = settle(world, lambda w: reconcile_world(w, check=None))
    assert sorted(a.body["metadata"]["namespace"] for a in plan.actions) == ["adhoc", "db", "prod"]


def test_the_deleted_storage_goes_with_its_copies() -> None:
    world = _world(deleting=True, recorded=["db", "prod"], users=False)
    for ns in ("db", "prod"):
        world.put(secret(ns, COPY))
    world.carry_out(reconcile_world(world))
    assert world.get("BackupStorage", "minio", None) is None
    assert sorted(k for k in world.objects if k[0] == "Secret") == [
        ("Secret", "minio", "minio-credentials")
    ]


# --- the fake secret -------------------------------------------------------------------------


def _leaks(value: Any, path: str = "") -> list[str]:
    """Where a value of the fake Secret appears in ``value`` (plain or base64)."""
    needles = [FAKE_SECRET, FAKE_ACCESS_KEY, b64(FAKE_SECRET), b64(FAKE_ACCESS_KEY)]
    if isinstance(value, str):
        return [path] if any(n in value for n in needles) else []
    if isinstance(value, dict):
        return [
            hit
            for k, v in value.items()
            for hit in _leaks(v, f"{path}.{k}") + _leaks(str(k), f"{path}[key]")
        ]
    if isinstance(value, list | tuple):
        return [hit for i, v in enumerate(value) for hit in _leaks(v, f"{path}[{i}]")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            hit
            for f in dataclasses.fields(value)
            for hit in _leaks(getattr(value, f.name), f"{path}.{f.name}")
        ]
    return []


LEAKY_CHECK = BucketCheck(
    False,
    f"InvalidAccessKeyId {FAKE_ACCESS_KEY}: signature of {FAKE_SECRET} / {b64(FAKE_SECRET)}",
    NOW,
)
SCENARIOS = [
    pytest.param({"check": LEAKY_CHECK}, id="leaky-check-message"),
    pytest.param({"check": OK}, id="ok"),
    pytest.param({"check": None, "deleting": True}, id="deletion-held"),
    pytest.param({"check": LEAKY_CHECK, "allowed": ["prod"]}, id="disallowed-users"),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_secret_appears_only_in_the_data_of_the_copies(scenario: dict[str, Any]) -> None:
    store = storage(
        allowed=scenario.get("allowed"),
        deleting=scenario.get("deleting", False),
        finalizers=[FINALIZER_IN_USE],
        status={"credentialsNamespaces": ["old"]},
    )
    plan = plan_for(
        store,
        check=scenario["check"],
        users=[schedule(), schedule(namespace="prod")],
        runs=[run("r", "Failed", 1)],
    )
    assert copies(plan)
    for action in plan.actions:
        if isinstance(action, Apply) and action.body["kind"] == "Secret":
            leaks = _leaks({k: v for k, v in action.body.items() if k != "data"})
            assert all(isinstance(v, Concealed) for v in action.body["data"].values())
        else:
            leaks = _leaks(action)
        assert leaks == [], f"{type(action).__name__} carries a secret at {leaks}"
    shown = repr(plan) + str(plan)
    for needle in (FAKE_SECRET, b64(FAKE_SECRET), b64(FAKE_ACCESS_KEY)):
        assert needle not in shown
    assert "<concealed>" in shown


def test_a_concealed_value_serializes_as_itself() -> None:
    value = Concealed(b64(FAKE_SECRET))
    assert json.dumps({"v": value}) == json.dumps({"v": b64(FAKE_SECRET)})
    assert value == b64(FAKE_SECRET)
    assert FAKE_SECRET not in repr(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"key {FAKE_SECRET}.", f"key {REDACTED}.", id="plain"),
        pytest.param(f"key={b64(FAKE_SECRET)}", f"key={REDACTED}", id="base64"),
        pytest.param("nothing to hide", "nothing to hide", id="clean"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text, secret()) == expected
    assert scrub(text, None) == text
