"""The restore drills' metrics: what BackupRestoreDrillMissing in argo/monitoring/ is written against.

A schedule whose drills are due exports the time of its newest successful drill
(``status.lastVerifiedTime``) and the longest gap of ``spec.verify.schedule``; one never verified
exports the gap alone (the alert counts from the schedule's creation time then). Drills not due
export neither, and no schedule text stops a scrape.
"""

from __future__ import annotations

from typing import Any

import pytest

from generator.controller.cache import summary
from generator.controller.metrics import Snapshot
from tests.controller.bodies import BASE, schedule, stamp
from tests.controller.test_metrics import of, scrape

T0 = BASE.timestamp()
HOUR = 3600.0
DAY = 24 * HOUR
LAST = "schedule_last_verified_timestamp_seconds"
PERIOD = "schedule_verify_interval_seconds"
WEEKLY = {"schedule": "0 3 * * 0", "timeZone": "Europe/Berlin", "level": "restore"}


def drilled(name: str = "nightly", verified: float | None = 3, **spec: Any) -> dict[str, Any]:
    """A schedule with weekly drills, verified ``verified`` hours after BASE (None: never)."""
    status = None
    if verified is not None:
        status = {"lastVerifiedTime": stamp(verified), "lastVerifiedRun": f"{name}-1"}
    return schedule(name, status=status, **{"verify": WEEKLY, **spec})


def test_a_verified_schedule_has_its_last_drill_and_drill_period() -> None:
    weekdays = {"schedule": "0 4 * * 1-5", "level": "integrity"}
    samples = scrape(
        Snapshot(schedules=[drilled(), drilled("weekdays", verified=28, verify=weekdays)])
    )
    assert of(samples, LAST) == {"nightly": T0 + 3 * HOUR, "weekdays": T0 + 28 * HOUR}
    # Weekly: seven days; weekdays: Friday to Monday, the longest gap.
    assert of(samples, PERIOD) == {"nightly": 7 * DAY, "weekdays": 3 * DAY}
    # The backup series stay what they were.
    assert of(samples, "schedule_interval_seconds") == {"nightly": DAY, "weekdays": DAY}


def test_a_schedule_never_verified_has_the_period_and_its_creation_time_only() -> None:
    samples = scrape(Snapshot(schedules=[drilled(verified=None)]))
    assert of(samples, LAST) == {}
    assert of(samples, PERIOD) == {"nightly": 7 * DAY}
    assert of(samples, "schedule_created_timestamp_seconds") == {"nightly": T0 - DAY}


def test_a_last_verified_time_that_is_no_time_counts_as_never_verified() -> None:
    body = drilled(verified=None)
    body["status"] = {"lastVerifiedTime": "last Tuesday"}
    samples = scrape(Snapshot(schedules=[body]))
    assert of(samples, LAST) == {}
    assert of(samples, PERIOD) == {"nightly": 7 * DAY}


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"verify": {**WEEKLY, "suspend": True}}, id="drills-suspended"),
        pytest.param({"suspend": True}, id="schedule-suspended"),
        pytest.param({"verify": None}, id="verify-null"),
        pytest.param({"verify": "weekly"}, id="verify-not-an-object"),
    ],
)
def test_drills_not_due_export_no_series(spec: dict[str, Any]) -> None:
    samples = scrape(Snapshot(schedules=[drilled(**spec)]))
    assert of(samples, LAST) == {}, f"{spec}: no drill is due, so none can be late"
    assert of(samples, PERIOD) == {}, f"{spec}: no drill is due, so none can be late"
    assert of(samples, "schedule_interval_seconds") == {"nightly": DAY}


def test_a_schedule_without_verify_exports_no_drill_series() -> None:
    samples = scrape(Snapshot(schedules=[schedule(status={"lastVerifiedTime": stamp(3)})]))
    assert of(samples, LAST) == {}
    assert of(samples, PERIOD) == {}
    assert of(samples, "schedule_interval_seconds") == {"nightly": DAY}


def test_drills_with_suspend_false_are_due() -> None:
    samples = scrape(
        Snapshot(schedules=[drilled(suspend=False, verify={**WEEKLY, "suspend": False})])
    )
    assert of(samples, PERIOD) == {"nightly": 7 * DAY}


@pytest.mark.parametrize(
    "cron",
    [
        pytest.param("*/0 * * * *", id="step-zero"),
        pytest.param("1-5/0 3 * * *", id="range-step-zero"),
        pytest.param("every Sunday", id="not-cron"),
        pytest.param("0 0 31 2 *", id="never-fires"),
        pytest.param("", id="empty"),
        pytest.param(42, id="not-a-string"),
        pytest.param(None, id="null"),
    ],
)
def test_a_drill_schedule_without_a_period_costs_its_period_only(cron: object) -> None:
    bad = drilled("bad", verify={**WEEKLY, "schedule": cron})
    samples = scrape(Snapshot(schedules=[bad, drilled()]))
    assert of(samples, PERIOD) == {"nightly": 7 * DAY}, f"verify.schedule {cron!r}"
    # Its last drill is still reported, and the other schedule's series are all there.
    assert of(samples, LAST) == {"bad": T0 + 3 * HOUR, "nightly": T0 + 3 * HOUR}
    assert of(samples, "schedule_interval_seconds") == {"bad": DAY, "nightly": DAY}


def test_a_backup_schedule_that_makes_the_walk_raise_does_not_stop_the_scrape() -> None:
    bad = drilled("bad", schedule="*/0 * * * *")
    samples = scrape(Snapshot(schedules=[bad, drilled()]))
    assert of(samples, "schedule_interval_seconds") == {"nightly": DAY}
    assert of(samples, PERIOD) == {"bad": 7 * DAY, "nightly": 7 * DAY}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(drilled(), id="verified"),
        pytest.param(drilled(verified=None), id="never-verified"),
        pytest.param(drilled(verify={**WEEKLY, "suspend": True}), id="drills-suspended"),
        pytest.param(drilled(suspend=True), id="schedule-suspended"),
    ],
)
def test_the_controllers_summary_of_a_schedule_keeps_what_the_drill_series_read(
    body: dict[str, Any],
) -> None:
    # The controller scrapes its cache's summaries of the schedules, not their full bodies.
    from_body = scrape(Snapshot(schedules=[body]))
    from_summary = scrape(Snapshot(schedules=[summary(body)]))
    for name in (LAST, PERIOD, "schedule_created_timestamp_seconds"):
        assert of(from_summary, name) == of(from_body, name), f"{name}: lost in the summary"
