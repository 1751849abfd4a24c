"""The longest gap between a schedule's fire times: what the missing-backup alert allows 1.5x of."""

from __future__ import annotations

import pytest

from generator.checks import check_cron
from generator.controller.cron import longest_gap

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
