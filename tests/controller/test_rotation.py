"""Rotation of a schedule's runs, by tables of named cases: history limits, pins, runs in
progress, restic-style retention in a time zone (DST, ISO weeks), and a seeded random search for
the guarantees (the newest success, pinned runs and runs in progress are never deleted; the
decision does not depend on input order; a second rotation deletes nothing more).
"""

from __future__ import annotations

import copy
import random
import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.controller.rotation import (
    Kept,
    Outcome,
    Reason,
    Rotation,
    RotationPolicy,
    RunRecord,
    rotate,
)
from generator.errors import ValidationFailed
from generator.models import ANNOTATION_KEEP, BackupRun, BackupSchedule, Retention

S, F, P = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.IN_PROGRESS
NEWEST, PINNED, IN_PROGRESS = Reason.NEWEST_SUCCESSFUL, Reason.PINNED, Reason.IN_PROGRESS
SL, FL = Reason.SUCCESSFUL_LIMIT, Reason.FAILED_LIMIT
LAST, HOURLY, DAILY = Reason.KEEP_LAST, Reason.KEEP_HOURLY, Reason.KEEP_DAILY
WEEKLY, MONTHLY, YEARLY = Reason.KEEP_WEEKLY, Reason.KEEP_MONTHLY, Reason.KEEP_YEARLY
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
BASE = datetime(2024, 5, 1, tzinfo=UTC)


def run(name: str, outcome: Outcome, at: int | str, keep: bool = False) -> RunRecord:
    """A run at ``at``: hours after BASE, or an ISO 8601 time with its offset."""
    time = BASE + timedelta(hours=at) if isinstance(at, int) else datetime.fromisoformat(at)
    return RunRecord(name=name, outcome=outcome, started_at=time, keep=keep)


def expect(delete: list[str], keep: dict[str, tuple[Reason, ...]]) -> Rotation:
    """The expected rotation; both lists newest first, as :func:`rotate` orders them."""
    return Rotation(tuple(delete), tuple(Kept(n, r) for n, r in keep.items()))


def limits(successful: int, failed: int) -> RotationPolicy:
    return RotationPolicy(successful_limit=successful, failed_limit=failed)


def retention(zone: tzinfo = UTC, failed: int = 1, **keep: int) -> RotationPolicy:
    # A successful limit of 1 that retention must ignore.
    return RotationPolicy(1, failed, Retention.model_validate(keep), zone)


HISTORY_LIMITS = [
    pytest.param(
        [run("s1", S, 1), run("f1", F, 2), run("s2", S, 3, keep=True), run("f2", F, 4),
         run("s3", S, 5)],
        limits(2, 1),
        expect(["f1"], {"s3": (NEWEST, SL), "f2": (FL,), "s2": (PINNED,), "s1": (SL,)}),
        id="limits-2-1-five-runs-the-pinned-one-takes-no-slot",
    ),
    pytest.param(
        [run(f"s{i}", S, i) for i in range(1, 6)] + [run("f1", F, 0), run("f2", F, 9)],
        limits(2, 1),
        expect(["s3", "s2", "s1", "f1"], {"f2": (FL,), "s5": (NEWEST, SL), "s4": (SL,)}),
        id="limits-2-1-delete-the-oldest",
    ),
    pytest.param(
        [run("s1", S, 1), run("s2", S, 2), run("s3", S, 3), run("f1", F, 4)],
        limits(0, 0),
        expect(["f1", "s2", "s1"], {"s3": (NEWEST,)}),
        id="limit-0-keeps-only-the-newest-success",
    ),
    pytest.param(
        [run("s1", S, 1), run("s2", S, 2, keep=True)],
        limits(0, 0),
        expect(["s1"], {"s2": (PINNED, NEWEST)}),
        id="limit-0-newest-success-pinned",
    ),
    pytest.param(
        [run("f1", F, 1), run("f2", F, 2), run("f3", F, 3)],
        limits(3, 2),
        expect(["f1"], {"f3": (FL,), "f2": (FL,)}),
        id="failed-runs-only",
    ),
    pytest.param(
        [run("f1", F, 1), run("f2", F, 2)],
        limits(3, 0),
        expect(["f2", "f1"], {}),
        id="failed-limit-0-deletes-every-failure",
    ),
    pytest.param(
        [run("p0", P, 0), run("s1", S, 1), run("s2", S, 2), run("p3", P, 3)],
        limits(1, 1),
        expect(["s1"], {"p3": (IN_PROGRESS,), "s2": (NEWEST, SL), "p0": (IN_PROGRESS,)}),
        id="runs-in-progress-are-kept-and-take-no-slot",
    ),
    pytest.param(
        [run("p1", P, 1, keep=True)],
        limits(0, 0),
        expect([], {"p1": (IN_PROGRESS, PINNED)}),
        id="in-progress-and-pinned",
    ),
    pytest.param(
        [run("f1", F, 1), run("f2", F, 2), run("f3", F, 3, keep=True)],
        limits(0, 1),
        expect(["f1"], {"f3": (PINNED,), "f2": (FL,)}),
        id="pinned-failure-takes-no-slot",
    ),
    pytest.param([], limits(3, 1), expect([], {}), id="no-runs"),
    pytest.param(
        [run("s1", S, 1), run("s2", S, 2)],
        limits(5, 5),
        expect([], {"s2": (NEWEST, SL), "s1": (SL,)}),
        id="fewer-runs-than-the-limit",
    ),
    pytest.param(
        [run("run-b", S, 1), run("run-c", S, 1), run("run-a", S, 1)],
        limits(1, 1),
        expect(["run-b", "run-a"], {"run-c": (NEWEST, SL)}),
        id="equal-times-the-greater-name-is-newer",
    ),
    pytest.param(
        [run("s1", S, 1), run("f1", F, 2, keep=True)],
        limits(0, 0),
        expect([], {"f1": (PINNED,), "s1": (NEWEST,)}),
        id="a-pinned-failure-is-not-the-newest-success",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("runs", "policy", "expected"), HISTORY_LIMITS)
def test_history_limits(runs: list[RunRecord], policy: RotationPolicy, expected: Rotation) -> None:
    assert rotate(runs, policy) == expected


RETENTION = [
    pytest.param(
        [run(f"s{i}", S, i) for i in range(1, 6)],
        retention(keepLast=2),
        expect(["s3", "s2", "s1"], {"s5": (NEWEST, LAST), "s4": (LAST,)}),
        id="keepLast-replaces-the-successful-limit",
    ),
    pytest.param(
        [run("a", S, 1), run("b", S, 1), run("c", S, 1)],
        retention(keepLast=2),
        expect(["a"], {"c": (NEWEST, LAST), "b": (LAST,)}),
        id="keepLast-counts-runs-not-times",
    ),
    pytest.param(
        [run("s1", S, 1), run("s2", S, 2)],
        retention(keepLast=0),
        expect(["s1"], {"s2": (NEWEST,)}),
        id="keepLast-0-keeps-the-newest-success",
    ),
    pytest.param(
        [run("d1a", S, "2024-05-01T01:00Z"), run("d1b", S, "2024-05-01T20:00Z"),
         run("d2", S, "2024-05-02T03:00Z"), run("d3a", S, "2024-05-03T00:00Z"),
         run("d3b", S, "2024-05-03T23:59Z")],
        retention(keepDaily=2),
        expect(["d3a", "d1b", "d1a"], {"d3b": (NEWEST, DAILY), "d2": (DAILY,)}),
        id="keepDaily-newest-of-each-day",
    ),
    pytest.param(
        [run("d1", S, "2024-05-01T12:00Z"), run("d5", S, "2024-05-05T12:00Z"),
         run("d9", S, "2024-05-09T12:00Z")],
        retention(keepDaily=3),
        expect([], {"d9": (NEWEST, DAILY), "d5": (DAILY,), "d1": (DAILY,)}),
        id="keepDaily-counts-days-that-have-runs",
    ),
    # 27 October 2024 in Berlin is 25 hours long: 00:30 CEST is 22:30Z the day before.
    pytest.param(
        [run("a", S, "2024-10-25T22:30Z"), run("b", S, "2024-10-26T22:30Z"),
         run("c", S, "2024-10-27T22:30Z"), run("d", S, "2024-10-27T23:30Z")],
        retention(BERLIN, keepDaily=3),
        expect(["b"], {"d": (NEWEST, DAILY), "c": (DAILY,), "a": (DAILY,)}),
        id="keepDaily-Berlin-day-with-25-hours",
    ),
    pytest.param(
        [run("a", S, "2024-10-25T22:30Z"), run("b", S, "2024-10-26T22:30Z"),
         run("c", S, "2024-10-27T22:30Z"), run("d", S, "2024-10-27T23:30Z")],
        retention(UTC, keepDaily=3),
        expect(["c"], {"d": (NEWEST, DAILY), "b": (DAILY,), "a": (DAILY,)}),
        id="keepDaily-the-same-runs-in-UTC",
    ),
    # 31 March 2024 in Berlin is 23 hours long: 00:30 CEST on 1 April is 22:30Z on 31 March.
    pytest.param(
        [run("a", S, "2024-03-30T23:30Z"), run("b", S, "2024-03-31T21:30Z"),
         run("c", S, "2024-03-31T22:30Z")],
        retention(BERLIN, keepDaily=2),
        expect(["a"], {"c": (NEWEST, DAILY), "b": (DAILY,)}),
        id="keepDaily-Berlin-day-with-23-hours",
    ),
    # When the clocks go back, 02:30 CEST (00:30Z) and 02:30 CET (01:30Z) are two hours.
    pytest.param(
        [run("a", S, "2024-10-26T23:30Z"), run("b", S, "2024-10-27T00:10Z"),
         run("c", S, "2024-10-27T00:30Z"), run("d", S, "2024-10-27T01:30Z")],
        retention(BERLIN, keepHourly=2),
        expect(["b", "a"], {"d": (NEWEST, HOURLY), "c": (HOURLY,)}),
        id="keepHourly-the-repeated-hour-counts-twice",
    ),
    # Kolkata is UTC+05:30: its hours start at :30 UTC.
    pytest.param(
        [run("a", S, "2024-05-01T00:10Z"), run("b", S, "2024-05-01T00:40Z"),
         run("c", S, "2024-05-01T01:10Z")],
        retention(zoneinfo.ZoneInfo("Asia/Kolkata"), keepHourly=2),
        expect(["b"], {"c": (NEWEST, HOURLY), "a": (HOURLY,)}),
        id="keepHourly-half-hour-zone",
    ),
    # 31 December 2020 to 3 January 2021 is ISO week 53 of 2020.
    pytest.param(
        [run("a", S, "2020-12-27T12:00Z"), run("b", S, "2020-12-31T12:00Z"),
         run("c", S, "2021-01-01T12:00Z"), run("d", S, "2021-01-03T12:00Z"),
         run("e", S, "2021-01-04T12:00Z")],
        retention(keepWeekly=3),
        expect(["c", "b"], {"e": (NEWEST, WEEKLY), "d": (WEEKLY,), "a": (WEEKLY,)}),
        id="keepWeekly-week-53-spans-new-year",
    ),
    # 30 December 2024 (a Monday) starts ISO week 1 of 2025.
    pytest.param(
        [run("a", S, "2024-12-29T12:00Z"), run("b", S, "2024-12-30T12:00Z"),
         run("c", S, "2025-01-02T12:00Z")],
        retention(keepWeekly=2),
        expect(["b"], {"c": (NEWEST, WEEKLY), "a": (WEEKLY,)}),
        id="keepWeekly-week-1-starts-in-december",
    ),
    pytest.param(
        [run("y22a", S, "2022-06-10T00:00Z"), run("y22b", S, "2022-12-20T00:00Z"),
         run("y23a", S, "2023-03-10T00:00Z"), run("y23b", S, "2023-11-10T00:00Z"),
         run("y23c", S, "2023-11-20T00:00Z"), run("y24a", S, "2024-01-10T00:00Z"),
         run("y24b", S, "2024-01-20T00:00Z"), run("y24c", S, "2024-02-10T00:00Z")],
        retention(keepMonthly=3, keepYearly=3),
        expect(["y24a", "y23b", "y23a", "y22a"],
               {"y24c": (NEWEST, MONTHLY, YEARLY), "y24b": (MONTHLY,),
                "y23c": (MONTHLY, YEARLY), "y22b": (YEARLY,)}),
        id="keepMonthly-and-keepYearly-a-run-kept-by-two-rules-counts-once",
    ),
    # 03:00Z on 1 March 2024 is 22:00 on 29 February in New York.
    pytest.param(
        [run("a", S, "2024-03-01T03:00Z"), run("b", S, "2024-03-01T06:00Z")],
        retention(zoneinfo.ZoneInfo("America/New_York"), keepMonthly=2),
        expect([], {"b": (NEWEST, MONTHLY), "a": (MONTHLY,)}),
        id="keepMonthly-in-the-schedule-zone",
    ),
    pytest.param(
        [run("a", S, "2025-01-01T03:00Z"), run("b", S, "2025-01-01T06:00Z")],
        retention(zoneinfo.ZoneInfo("America/New_York"), keepYearly=2),
        expect([], {"b": (NEWEST, YEARLY), "a": (YEARLY,)}),
        id="keepYearly-in-the-schedule-zone",
    ),
    pytest.param(
        [run("a", S, "2025-01-01T03:00Z"), run("b", S, "2025-01-01T06:00Z")],
        retention(UTC, keepYearly=2),
        expect(["a"], {"b": (NEWEST, YEARLY)}),
        id="keepYearly-the-same-runs-in-UTC",
    ),
    pytest.param(
        [run("a", S, "2024-05-01T10:00Z"), run("b", S, "2024-05-02T10:00Z"),
         run("c", S, "2024-05-02T12:00Z")],
        retention(keepLast=1, keepDaily=2),
        expect(["b"], {"c": (NEWEST, LAST, DAILY), "a": (DAILY,)}),
        id="rules-are-ORed",
    ),
    pytest.param(
        [run("a", S, "2024-05-01T01:00Z"), run("b", S, "2024-05-01T02:00Z", keep=True)],
        retention(keepDaily=1),
        expect([], {"b": (PINNED, NEWEST), "a": (DAILY,)}),
        id="a-pinned-run-takes-no-period",
    ),
    pytest.param(
        [run("s1", S, "2024-05-01T00:00Z"), run("f1", F, "2024-05-02T00:00Z"),
         run("f2", F, "2024-05-03T00:00Z"), run("s2", S, "2024-05-04T00:00Z"),
         run("p1", P, "2024-05-05T00:00Z")],
        retention(failed=1, keepDaily=5),
        expect(["f1"], {"p1": (IN_PROGRESS,), "s2": (NEWEST, DAILY), "f2": (FL,),
                        "s1": (DAILY,)}),
        id="failed-runs-still-follow-the-failed-limit",
    ),
    # restic's own example (doc/060_forget.rst): 12 Sundays, --keep-daily 4.
    pytest.param(
        [run(f"sun{i:02}", S, (datetime(2019, 9, 1, 11, tzinfo=UTC) + timedelta(weeks=i))
             .isoformat()) for i in range(12)],
        retention(keepDaily=4),
        expect([f"sun{i:02}" for i in range(7, -1, -1)],
               {"sun11": (NEWEST, DAILY), "sun10": (DAILY,), "sun09": (DAILY,),
                "sun08": (DAILY,)}),
        id="restic-example-sundays",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("runs", "policy", "expected"), RETENTION)
def test_retention(runs: list[RunRecord], policy: RotationPolicy, expected: Rotation) -> None:
    assert rotate(runs, policy) == expected


def test_daily_and_weekly_overlap_as_in_restics_example() -> None:
    # "--keep-daily 7 --keep-weekly 5 would keep the most recent 7 daily snapshots and 4
    # last-day-of-the-week ones (since the 7 dailies already include 1 weekly)".
    start = datetime(2023, 12, 30, 3, tzinfo=UTC)  # 99 days before Sunday 7 April 2024
    runs = [run(f"d{i:03}", S, (start + timedelta(days=i)).isoformat()) for i in range(100)]
    rotation = rotate(runs, retention(keepDaily=7, keepWeekly=5))
    kept = {k.name: k.reasons for k in rotation.keep}
    assert [n for n, r in kept.items() if DAILY in r] == [f"d{i:03}" for i in range(99, 92, -1)]
    weekly = [n for n, r in kept.items() if WEEKLY in r]
    assert weekly == ["d099", "d092", "d085", "d078", "d071"]
    assert len(kept) == 11
    assert len(rotation.delete) == 89


# --- records and policies from API objects ---------------------------------------------------

SEED = list(yaml.safe_load_all((Path(__file__).parents[1] / "golden" / "seed.in.yaml").read_text()))
SCHEDULE: dict[str, Any] = SEED[1]


def backup_run(
    phase: str | None = None,
    annotations: dict[str, str] | None = None,
    start: str | None = None,
    created: str | None = None,
) -> BackupRun:
    doc: dict[str, Any] = {
        "metadata": {"name": "mysql-daily-1714521600"},
        "spec": copy.deepcopy(SCHEDULE["spec"]["template"]["spec"]),
    }
    if annotations is not None:
        doc["metadata"]["annotations"] = annotations
    if created is not None:
        doc["metadata"]["creationTimestamp"] = created
    if phase is not None or start is not None:
        doc["status"] = {"phase": phase, "startTime": start}
    return BackupRun.model_validate(doc)


@pytest.mark.parametrize(
    ("phase", "outcome"),
    [
        pytest.param(None, P, id="no-status"),
        pytest.param("Pending", P, id="pending"),
        pytest.param("Running", P, id="running"),
        pytest.param("Succeeded", S, id="succeeded"),
        pytest.param("Failed", F, id="failed"),
        pytest.param("Error", F, id="error-is-a-failure"),
    ],
)
def test_record_outcome_from_phase(phase: str | None, outcome: Outcome) -> None:
    assert RunRecord.of(backup_run(phase=phase)).outcome is outcome


@pytest.mark.parametrize(
    ("annotations", "keep"),
    [
        pytest.param(None, False, id="no-annotations"),
        pytest.param({"other": "true"}, False, id="other-annotation"),
        pytest.param({ANNOTATION_KEEP: "true"}, True, id="true"),
        pytest.param({ANNOTATION_KEEP: "yes"}, True, id="yes"),
        pytest.param({ANNOTATION_KEEP: ""}, True, id="empty"),
        pytest.param({ANNOTATION_KEEP: "false"}, False, id="false"),
        pytest.param({ANNOTATION_KEEP: " False "}, False, id="false-any-case"),
    ],
)
def test_record_keep_annotation(annotations: dict[str, str] | None, keep: bool) -> None:
    assert RunRecord.of(backup_run(annotations=annotations)).keep is keep


@pytest.mark.parametrize(
    ("start", "created", "expected"),
    [
        pytest.param("2024-05-01T10:00:00Z", "2024-05-01T09:59:00Z",
                     datetime(2024, 5, 1, 10, tzinfo=UTC), id="start-time-first"),
        pytest.param(None, "2024-05-01T09:59:00Z",
                     datetime(2024, 5, 1, 9, 59, tzinfo=UTC), id="else-creation-time"),
        pytest.param("2024-05-01T10:00:00", None,
                     datetime(2024, 5, 1, 10, tzinfo=UTC), id="no-offset-is-utc"),
        pytest.param(None, None, datetime(1970, 1, 1, tzinfo=UTC), id="no-time-is-the-oldest"),
    ],
)  # fmt: skip
def test_record_time(start: str | None, created: str | None, expected: datetime) -> None:
    record = RunRecord.of(backup_run(phase="Succeeded", start=start, created=created))
    assert record.started_at == expected
    assert record.name == "mysql-daily-1714521600"


def schedule(**spec: Any) -> BackupSchedule:
    doc = copy.deepcopy(SCHEDULE)
    doc["spec"].update(spec)
    doc.pop("kind")
    return BackupSchedule.model_validate(doc)


def test_policy_of_a_schedule() -> None:
    policy = RotationPolicy.of(
        schedule(timeZone="Europe/Berlin", retention={"keepDaily": 7, "keepWeekly": 4})
    )
    assert policy == RotationPolicy(14, 2, Retention(keep_daily=7, keep_weekly=4), BERLIN)
    assert RotationPolicy.of(schedule()) == RotationPolicy(14, 2, None, UTC)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "America", ""])
def test_policy_of_a_schedule_with_an_unknown_zone_names_the_field(zone: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        RotationPolicy.of(schedule(timeZone=zone))
    (problem,) = failed.value.problems
    assert (problem.obj, problem.path) == ("BackupSchedule/mysql-daily", "spec.timeZone")
    assert f"{zone!r} is not an IANA time zone" in problem.message


def test_caller_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="'a': started_at must be timezone-aware"):
        RunRecord("a", S, datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="'a' is listed twice"):
        rotate([run("a", S, 1), run("a", F, 2)], limits(1, 1))
    with pytest.raises(ValueError, match="failed runs history limit must be 0 or more, not -1"):
        limits(1, -1)


def test_kept_reads_as_a_log_line() -> None:
    assert str(Kept("r1", (NEWEST, DAILY))) == "r1: newest successful run, retention.keepDaily"


# --- the guarantees, over random histories ------------------------------------------------

ZONES = [UTC, BERLIN, zoneinfo.ZoneInfo("America/New_York"), zoneinfo.ZoneInfo("Asia/Kolkata")]


def _random_policy(rng: random.Random) -> RotationPolicy:
    zone = rng.choice(ZONES)
    if rng.random() < 0.4:
        return RotationPolicy(rng.randint(0, 4), rng.randint(0, 3), None, zone)
    fields = ["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly", "keepYearly"]
    chosen = rng.sample(fields, rng.randint(1, 3))
    return RotationPolicy(
        rng.randint(0, 4),
        rng.randint(0, 3),
        Retention.model_validate({f: rng.randint(0, 4) for f in chosen}),
        zone,
    )


def _random_runs(rng: random.Random) -> list[RunRecord]:
    # Times on a coarse grid so that equal times (ties) and shared periods are common.
    step = rng.choice([timedelta(minutes=20), timedelta(hours=7), timedelta(days=3)])
    return [
        RunRecord(
            name=f"run-{i:02}",
            outcome=rng.choice([S, S, S, F, F, P]),
            started_at=datetime(2020, 12, 25, tzinfo=UTC) + step * rng.randint(0, 40),
            keep=rng.random() < 0.15,
        )
        for i in range(rng.randint(0, 14))
    ]


def test_guarantees_hold_over_random_histories() -> None:
    rng = random.Random(20240501)
    for _ in range(2000):
        runs, policy = _random_runs(rng), _random_policy(rng)
        rotation = rotate(runs, policy)
        deleted = set(rotation.delete)
        kept = [k.name for k in rotation.keep]
        assert sorted([*deleted, *kept]) == sorted(r.name for r in runs)
        assert len(deleted) == len(rotation.delete)
        assert not deleted & set(kept)
        assert all(k.reasons for k in rotation.keep)
        for r in runs:
            if r.name in deleted:
                assert r.outcome is not P, (r, policy)
                assert not r.keep, (r, policy)
        successes = [r for r in runs if r.outcome is S]
        if successes:
            newest = max(successes, key=lambda r: (r.started_at, r.name))
            assert newest.name not in deleted, (runs, policy)
        shuffled = runs[:]
        rng.shuffle(shuffled)
        assert rotate(shuffled, policy) == rotation
        survivors = [r for r in runs if r.name not in deleted]
        assert rotate(survivors, policy).delete == (), (runs, policy)


# --- S3 Object Lock ----------------------------------------------------------------------------

LOCKED = Reason.LOCKED
NOW = BASE + timedelta(hours=10)


def locked(
    name: str, outcome: Outcome, at: int, until: int | None = None, hold: bool = False
) -> RunRecord:
    """A run at ``at`` hours after BASE whose object is locked until ``until`` hours after it."""
    retain = BASE + timedelta(hours=until) if until is not None else None
    time = BASE + timedelta(hours=at)
    return RunRecord(name, outcome, time, retain_until=retain, legal_hold=hold)


def at(hours: int) -> datetime:
    return BASE + timedelta(hours=hours)


LOCK_CASES = [
    pytest.param(
        [locked("s1", S, 1, until=100), run("s2", S, 2), run("s3", S, 3)],
        limits(1, 0),
        expect(["s2"], {"s3": (NEWEST, SL), "s1": (LOCKED,)}),
        at(100),
        id="an-old-locked-run-is-kept-beyond-the-limit-until-its-lock-ends",
    ),
    pytest.param(
        [locked("s1", S, 1, until=9), run("s2", S, 2), run("s3", S, 3)],
        limits(1, 0),
        expect(["s2", "s1"], {"s3": (NEWEST, SL)}),
        None,
        id="a-lock-that-ended-keeps-nothing",
    ),
    pytest.param(
        [locked("s1", S, 1, until=10), run("s2", S, 2)],
        limits(0, 0),
        expect(["s1"], {"s2": (NEWEST,)}),
        None,
        id="boundary-retain-until-now-has-ended",
    ),
    pytest.param(
        [locked("s1", S, 1, until=11), run("s2", S, 2)],
        limits(0, 0),
        expect([], {"s2": (NEWEST,), "s1": (LOCKED,)}),
        at(11),
        id="an-hour-before-the-end-it-holds",
    ),
    pytest.param(
        [locked("s1", S, 1, hold=True), run("s2", S, 2)],
        limits(0, 0),
        expect([], {"s2": (NEWEST,), "s1": (LOCKED,)}),
        None,
        id="legal-hold-kept-with-no-date-to-wait-for",
    ),
    pytest.param(
        [locked("s1", S, 1, until=5, hold=True), run("s2", S, 2)],
        limits(0, 0),
        expect([], {"s2": (NEWEST,), "s1": (LOCKED,)}),
        None,
        id="legal-hold-outlasts-an-ended-retention",
    ),
    pytest.param(
        [locked(f"s{i}", S, i, until=100) for i in range(1, 5)],
        limits(2, 0),
        expect([], {"s4": (NEWEST, SL, LOCKED), "s3": (SL, LOCKED), "s2": (LOCKED,),
                    "s1": (LOCKED,)}),
        at(100),
        id="locked-runs-take-their-slots",
    ),
    pytest.param(
        [run("s1", S, 1), run("s2", S, 2), locked("s3", S, 3, until=100), run("s4", S, 4)],
        limits(2, 0),
        expect(["s2", "s1"], {"s4": (NEWEST, SL), "s3": (SL, LOCKED)}),
        None,
        id="a-lock-never-pushes-a-newer-run-out",
    ),
    pytest.param(
        [locked("s1", S, 1, until=300), locked("s2", S, 2, until=200), run("s3", S, 3),
         locked("s4", S, 4, until=50)],
        limits(1, 0),
        expect(["s3"], {"s4": (NEWEST, SL, LOCKED), "s2": (LOCKED,), "s1": (LOCKED,)}),
        at(200),
        id="recheck-at-the-earliest-end-of-a-run-kept-only-for-its-lock",
    ),
    pytest.param(
        [locked("f1", F, 1, until=100), run("f2", F, 2), run("s1", S, 3)],
        limits(1, 0),
        expect(["f2"], {"s1": (NEWEST, SL), "f1": (LOCKED,)}),
        at(100),
        id="a-failed-run-whose-object-is-locked-is-kept",
    ),
    pytest.param(
        [locked("s1", S, 1, until=100), run("s2", S, 2, keep=True), run("s3", S, 3)],
        limits(0, 0),
        expect([], {"s3": (NEWEST,), "s2": (PINNED,), "s1": (LOCKED,)}),
        at(100),
        id="pinned-and-locked-side-by-side",
    ),
    pytest.param(
        [locked("s1", S, 1, until=100), run("s2", S, 30), run("s3", S, 60)],
        retention(keepDaily=1),
        expect(["s2"], {"s3": (NEWEST, DAILY), "s1": (LOCKED,)}),
        at(100),
        id="with-calendar-retention",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("runs", "policy", "expected", "recheck"), LOCK_CASES)
def test_locked_runs(
    runs: list[RunRecord], policy: RotationPolicy, expected: Rotation, recheck: datetime | None
) -> None:
    rotation = rotate(runs, policy, now=NOW)
    assert (rotation.delete, rotation.keep) == (expected.delete, expected.keep)
    assert rotation.recheck_at == recheck


def test_once_the_lock_ends_the_run_goes() -> None:
    runs = [locked("s1", S, 1, until=100), run("s2", S, 2)]
    assert rotate(runs, limits(0, 0), now=at(99)).delete == ()
    later = rotate(runs, limits(0, 0), now=at(100))
    assert later.delete == ("s1",)
    assert later.recheck_at is None


def test_without_a_clock_every_recorded_lock_holds() -> None:
    runs = [locked("s1", S, 1, until=1), run("s2", S, 2)]
    rotation = rotate(runs, limits(0, 0))
    assert rotation.delete == ()
    assert rotation.recheck_at == at(1)


def test_a_run_without_a_lock_is_rotated_as_before() -> None:
    runs = [run("s1", S, 1), run("s2", S, 2)]
    assert rotate(runs, limits(0, 0), now=NOW) == expect(["s1"], {"s2": (NEWEST,)})


def test_a_naive_retain_until_is_refused() -> None:
    with pytest.raises(ValueError, match="'a': retain_until must be timezone-aware"):
        RunRecord("a", S, BASE, retain_until=datetime(2024, 6, 1))


@pytest.mark.parametrize(
    ("status", "until", "hold"),
    [
        pytest.param({}, None, False, id="no-lock"),
        pytest.param({"retainUntil": "2024-05-31T12:00:00Z"},
                     datetime(2024, 5, 31, 12, tzinfo=UTC), False, id="retention"),
        pytest.param({"retainUntil": "2024-05-31T12:00:00"},
                     datetime(2024, 5, 31, 12, tzinfo=UTC), False, id="no-offset-is-utc"),
        pytest.param({"legalHold": True}, None, True, id="legal-hold"),
        pytest.param({"legalHold": False}, None, False, id="legal-hold-false"),
    ],
)  # fmt: skip
def test_record_lock(status: dict[str, Any], until: datetime | None, hold: bool) -> None:
    doc = backup_run(phase="Succeeded").model_dump(by_alias=True, exclude_none=True)
    doc["status"].update(status)
    record = RunRecord.of(BackupRun.model_validate(doc))
    assert (record.retain_until, record.legal_hold) == (until, hold)


def test_locked_runs_are_never_deleted_over_random_histories() -> None:
    rng = random.Random(20240531)
    for _ in range(1000):
        runs = [
            replace(
                r,
                retain_until=r.started_at + timedelta(hours=rng.randint(-48, 96))
                if rng.random() < 0.4
                else None,
                legal_hold=rng.random() < 0.1,
            )
            for r in _random_runs(rng)
        ]
        now = datetime(2020, 12, 25, tzinfo=UTC) + timedelta(hours=rng.randint(0, 24 * 60))
        policy = _random_policy(rng)
        rotation = rotate(runs, policy, now=now)
        deleted = set(rotation.delete)
        for r in runs:
            if r.legal_hold or (r.retain_until is not None and now < r.retain_until):
                assert r.name not in deleted, (r, now)
        # Without locks the same runs rotate the same, but never keep fewer.
        plain = rotate([replace(r, retain_until=None, legal_hold=False) for r in runs], policy)
        assert deleted <= set(plain.delete)
        if rotation.recheck_at is not None:
            assert rotation.recheck_at > now
            later = rotate(runs, policy, now=rotation.recheck_at)
            assert set(later.delete) > deleted
