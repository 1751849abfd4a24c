"""Bucket checks, one at a time per storage, and the Synced condition's two decisions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from generator.controller import objectstore, synced
from generator.controller.bucket_checks import BucketChecks
from generator.controller.plan import ApplyStatus, ObjectRef, Plan
from generator.controller.settings import Settings
from tests.controller.test_operator import in_fake_time

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _storage(bucket: str) -> dict[str, Any]:
    return {"metadata": {"name": "minio"}, "spec": {"parameters": {"bucket": bucket}}}


def _checks(
    storages: dict[str, dict[str, Any]], checked: list[str], read_secret: Callable[..., Any]
) -> BucketChecks:
    async def in_thread(call: Callable[[], Any]) -> Any:
        await asyncio.sleep(1)  # a check takes a while: events arrive meanwhile
        return call()

    return BucketChecks(
        Settings(),
        storage=storages.get,
        read_secret=read_secret,
        in_thread=in_thread,
        checked=checked.append,
        clock=lambda: NOW,
    )


def test_a_change_during_a_check_is_checked_again_with_the_newest_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buckets: list[str] = []

    def check_bucket(storage: Mapping[str, Any], secret: object, *, timeout: float) -> None:
        buckets.append(storage["spec"]["parameters"]["bucket"])
        if storage["spec"]["parameters"]["bucket"] == "missing":
            raise objectstore.ObjectStoreError("the bucket 'missing' does not exist")

    monkeypatch.setattr(objectstore, "check_bucket", check_bucket)
    storages = {"minio": _storage("missing")}
    checked: list[str] = []
    checks = _checks(storages, checked, lambda storage: None)

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        checks.seen("minio", 1)
        await asyncio.sleep(0.5)
        storages["minio"] = _storage("backups")  # fixed while the first check runs
        checks.seen("minio", 2)
        checks.seen("minio", 2)  # the same generation again: no third check
        await asyncio.sleep(5)
        await checks.stop()

    in_fake_time(test)
    assert buckets == ["missing", "backups"]
    assert checked == ["minio", "minio"]
    assert checks.results["minio"].ok
    assert checks.results["minio"].message == "the bucket 'backups' is reachable"


def test_a_secret_that_cannot_be_read_makes_the_storage_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreadable(storage: Mapping[str, Any]) -> None:
        raise objectstore.ObjectStoreError("the Secret minio/credentials does not exist")

    checks = _checks({"minio": _storage("backups")}, [], unreadable)
    in_fake_time(lambda loop: checks.check("minio"))
    assert not checks.results["minio"].ok
    assert "minio/credentials does not exist" in checks.results["minio"].message


def test_a_storage_gone_before_its_check_is_not_checked() -> None:
    checked: list[str] = []
    checks = _checks({}, checked, lambda storage: None)
    in_fake_time(lambda loop: checks.check("minio"))
    assert checks.results == {}
    assert checked == []


def _body(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "nightly"}, "status": {"conditions": list(conditions)}}


READY = {"type": "Ready", "status": "True"}


def test_a_refusal_is_reported_once_beside_the_other_conditions() -> None:
    wanted = synced.reported(_body(READY), "spec.x: forbidden", NOW)
    assert wanted is not None
    assert wanted[0] == READY
    assert wanted[1] == {
        "type": "Synced",
        "status": "False",
        "reason": "ReconcileError",
        "message": "spec.x: forbidden",
        "lastTransitionTime": "2026-06-01T12:00:00Z",
    }
    assert synced.reported(_body(*wanted), "spec.x: forbidden", NOW + timedelta(1)) is None
    other = synced.reported(_body(*wanted), "spec.y: forbidden", NOW)
    assert other is not None
    assert [c.get("message") for c in other] == [None, "spec.y: forbidden"]


def test_success_clears_the_report_unless_the_plan_writes_the_status() -> None:
    reported = synced.reported(_body(READY), "refused", NOW)
    assert reported is not None
    body = _body(*reported)
    assert synced.cleared(body, Plan(())) == [READY]
    ref = ObjectRef("backup-operator.io/v1", "BackupSchedule", "nightly", "db")
    assert synced.cleared(body, Plan((ApplyStatus(ref, {"phase": "x"}),))) is None
    assert synced.cleared(_body(READY), Plan(())) is None


def test_a_failed_check_is_tried_again_sooner_than_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bucket created after its storage: Ready within seconds, each retry twice as late."""
    checked_at: list[float] = []
    created_at = 25.0

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        start = loop.time()

        def check_bucket(storage: Mapping[str, Any], secret: object, *, timeout: float) -> None:
            now = loop.time() - start
            checked_at.append(now)
            if now < created_at:
                raise objectstore.ObjectStoreError("the bucket 'backups' does not exist")

        monkeypatch.setattr(objectstore, "check_bucket", check_bucket)
        checks.spawn("minio")
        await asyncio.sleep(120)
        await checks.stop()

    async def in_thread(call: Callable[[], Any]) -> Any:
        return call()

    checks = BucketChecks(
        Settings(),
        storage={"minio": _storage("backups")}.get,
        read_secret=lambda storage: None,
        in_thread=in_thread,
        checked=lambda name: None,
        clock=lambda: NOW,
    )
    in_fake_time(test)
    assert checked_at == [0.0, 10.0, 30.0]  # failed, failed (20 s next), then Ready: no more
    assert checks.results["minio"].ok
