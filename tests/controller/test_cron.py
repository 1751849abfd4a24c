"""The longest gap between a schedule's fire times: what the missing-backup alert allows 1.5x of."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from generator.checks import check_cron
from generator.controller.cron import fires_around, longest_gap

HOUR, DAY = 3600.0, 86400.0


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        pytest.param("0 0 * * *", DAY, id="daily"),
        pytest.param("30 2 * * *", DAY, id="daily-at-half-past-two"),
        pytest.param("*/15 * * * *", 900.0, id="every-quarter-hour"),
        pytest.param("0 * * * *", HOUR, id="hourly"),
        pytest.param("0 0,12 * * *", 12 * HOUR, id="twice-a-day"),
        pytest.param("0 1,23 * * *", 22 * HOUR, id="uneven-within-a-day"),
        pytest.param("0 22 * * *", DAY, id="late-in-the-day"),
        pytest.param("0 2 * * 1-5", 3 * DAY, id="weekdays: friday to monday"),
        pytest.param("0 0 * * 0", 7 * DAY, id="sundays"),
        pytest.param("0 0 1 * *", 31 * DAY, id="monthly: the longest month"),
        pytest.param("0 0 1 */3 *", 92 * DAY, id="quarterly"),
        pytest.param("0 0 1 1 *", 366 * DAY, id="yearly: over a leap year"),
        pytest.param("0 3 1 * 1", 7 * DAY, id="day-of-month or day-of-week"),
        pytest.param("0 0 5/10 * *", 11 * DAY, id="5th-15th-25th: 25th to 5th"),
        pytest.param("0 0 29 2 *", 4 * 365 * DAY + DAY, id="leap-days"),
        pytest.param("@hourly", HOUR, id="@hourly"),
        pytest.param("@daily", DAY, id="@daily"),
        pytest.param("@weekly", 7 * DAY, id="@weekly"),
        pytest.param("@monthly", 31 * DAY, id="@monthly"),
        pytest.param("@yearly", 366 * DAY, id="@yearly"),
        pytest.param("@every 90m", 5400.0, id="@every-minutes"),
        pytest.param("@every 1h30m", 5400.0, id="@every-hours-and-minutes"),
        pytest.param("@every 45s", 45.0, id="@every-seconds"),
    ],
)
def test_longest_gap(schedule: str, gap: float) -> None:
    assert check_cron(schedule) is None, "the case must be a schedule users can write"
    assert longest_gap(schedule) == gap


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param("0 0 31 2 *", id="never: february 31st"),
        pytest.param("0 0 30 2 *", id="never: february 30th"),
        pytest.param("", id="empty"),
        pytest.param("0 0 * *", id="four fields"),
        pytest.param("61 * * * *", id="minute out of range"),
        pytest.param("@every", id="@every without a duration"),
        pytest.param("@every 1d", id="@every in days (Go has no unit d)"),
        pytest.param("@every 0s", id="@every zero"),
        pytest.param("@fortnightly", id="unknown macro"),
    ],
)
def test_no_gap_for_what_never_fires_or_is_no_schedule(schedule: str) -> None:
    assert longest_gap(schedule) is None


@pytest.mark.parametrize(
    "text", ["0-9999999999 * * * *", "*/0 * * * *", "0 24 * * *", "5-2 * * * *"]
)
def test_out_of_range_items_are_no_schedule(text: str) -> None:
    assert longest_gap(text) is None
    assert fires_around(text, datetime(2026, 12, 2, tzinfo=UTC)) == (None, None)


@pytest.mark.parametrize(
    ("text", "zone", "last", "following"),
    [
        ("0 4 * * 0", None, "2026-11-29T04:00", "2026-12-06T04:00"),  # a Wednesday: last Sunday
        ("0 4 * * 0", "Europe/Paris", "2026-11-29T03:00", "2026-12-06T03:00"),
        ("*/15 * * * *", None, "2026-12-02T10:00", "2026-12-02T10:15"),
        ("0 10 * * *", None, "2026-12-02T10:00", "2026-12-03T10:00"),  # at the moment: fired
        ("@every 1h", None, "2026-12-02T10:00", "2026-12-02T11:00"),
        ("@weekly", None, "2026-11-29T00:00", "2026-12-06T00:00"),
    ],
)
def test_fires_around(text: str, zone: str | None, last: str, following: str) -> None:
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    if text == "*/15 * * * *" or text == "@every 1h":
        now = now.replace(minute=13)
    got = fires_around(text, now, zone)
    assert [t.strftime("%Y-%m-%dT%H:%M") if t else None for t in got] == [last, following]


def test_a_schedule_that_never_fires_or_an_unknown_zone_has_no_fire_times() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert fires_around("0 0 31 2 *", now) == (None, None)
    assert fires_around("0 4 * * *", now, "Nowhere/Atlantis") == (None, None)
