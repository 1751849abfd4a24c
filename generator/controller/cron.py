"""When a schedule fires: the longest gap between its fire times, and the fire times around now.

The alert on missing backups compares the age of a schedule's last successful run with its
period; for a schedule that fires unevenly (``0 2 * * 1-5``: weekdays) the period that matters
is the longest gap (Friday to Monday), or the alert would fire every weekend. The schedule
grammar is the one :func:`generator.checks.check_cron` accepts: five numeric fields of ``*``,
``?``, ``N``, ``N-M`` and ``/STEP`` items, or ``@hourly``, ``@daily``, ``@weekly``,
``@monthly``, ``@yearly``/``@annually``, ``@every <duration>``.

Fire times are walked day by day over eight years (a leap day recurs within eight), in
wall-clock time: a daylight-saving shift moves a gap by an hour, which the alert's 1.5x factor
absorbs.

:func:`fires_around` gives the last fire time at or before a moment and the next one after it,
in a time zone (an IANA name; UTC without one), as the controller schedules restore drills by
it. ``@every`` fires at whole multiples of its duration since the Unix epoch.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["fires_around", "longest_gap"]

_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_ITEM = re.compile(r"^(\*|\?|(\d+)(?:-(\d+))?)(?:/(\d+))?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
#: A Monday, so walks are reproducible; eight years hold two leap days.
_START = date(2024, 1, 1)
_DAYS = 8 * 366
_DAY = 86400.0
#: Distinct schedules whose gap is remembered.
CACHED = 4096


@functools.lru_cache(maxsize=CACHED)
def longest_gap(schedule: str) -> float | None:
    """Seconds of the longest gap between consecutive fire times; None if it never fires
    (``0 0 31 2 *``) or the text is not a schedule. Remembered: a walk takes ~10 ms, and
    every scrape of the metrics asks it of every schedule (most share their schedule)."""
    text = schedule.strip()
    if text.startswith("@every "):
        return _duration(text.removeprefix("@every ").strip())
    fields = _parse(_MACROS.get(text, text))
    if fields is None:
        return None
    times = _times_of_day(fields)
    if not times:
        return None
    inside = max((b - a for a, b in pairwise(times)), default=0.0)
    longest, last_day = 0.0, None
    for offset in range(_DAYS):
        if not _fires_on(fields, _START + timedelta(days=offset)):
            continue
        if last_day is not None:  # the last fire of the previous day to the first of this one
            longest = max(longest, (offset - last_day) * _DAY - times[-1] + times[0])
        last_day = offset
    if last_day is None:
        return None
    if longest == 0.0:  # fires on one day in eight years: not a schedule to alert on by period
        return None
    return max(longest, inside)


def fires_around(
    schedule: str, now: datetime, time_zone: str | None = None
) -> tuple[datetime | None, datetime | None]:
    """The last fire time at or before ``now`` and the next one after it (UTC), each None if
    there is none within eight years; both None if the text is not a schedule."""
    text = schedule.strip()
    if text.startswith("@every "):
        every = _duration(text.removeprefix("@every ").strip())
        if every is None:
            return None, None
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        slots = (now - epoch).total_seconds() // every
        return epoch + timedelta(seconds=slots * every), epoch + timedelta(
            seconds=(slots + 1) * every
        )
    fields = _parse(_MACROS.get(text, text))
    try:
        zone: tzinfo = ZoneInfo(time_zone) if time_zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return None, None
    if fields is None:
        return None, None
    times = _times_of_day(fields)
    local = now.astimezone(zone)
    today = local.date()
    last = following = None
    for offset in range(_DAYS):  # back from today
        day = today - timedelta(days=offset)
        if _fires_on(fields, day):
            fired = [t for t in _moments(day, times, zone) if t <= now]
            if fired:
                last = fired[-1]
                break
    for offset in range(_DAYS):  # on from today
        day = today + timedelta(days=offset)
        if _fires_on(fields, day):
            coming = [t for t in _moments(day, times, zone) if t > now]
            if coming:
                following = coming[0]
                break
    return last, following


def _moments(day: date, times: list[float], zone: tzinfo) -> list[datetime]:
    moments = []
    for seconds in times:
        wall = datetime.combine(day, time(int(seconds // 3600), int(seconds % 3600 // 60)))
        moments.append(wall.replace(tzinfo=zone).astimezone(UTC))
    return sorted(moments)


def _times_of_day(fields: tuple[set[int], ...]) -> list[float]:
    minutes, hours = fields[0], fields[1]
    return sorted(h * 3600.0 + m * 60.0 for h in hours for m in minutes)


def _fires_on(fields: tuple[set[int], ...], day: date) -> bool:
    """Whether the schedule fires on ``day``. Both day fields restricted: a day matches
    either (cron's rule); one of them ``*``: the other decides."""
    _, _, days, months, weekdays = fields
    both = days != set(range(1, 32)) and weekdays != set(range(7))
    in_month, in_week = day.day in days, (day.isoweekday() % 7) in weekdays
    return day.month in months and (in_month or in_week if both else in_month and in_week)


def _parse(text: str) -> tuple[set[int], ...] | None:
    parts = text.split()
    if len(parts) != len(_FIELDS):
        return None
    fields = []
    for value, (low, high) in zip(parts, _FIELDS, strict=True):
        allowed: set[int] = set()
        for item in value.split(","):
            match = _ITEM.match(item)
            if match is None:
                return None
            whole, first, last, step = match.groups()
            if whole in ("*", "?"):
                start, end = low, high
            else:
                start = int(first)
                end = int(last) if last is not None else (high if step else start)
            if not low <= start <= end <= high or (step is not None and int(step) < 1):
                return None  # out of range, or a step of 0: no schedule (and no huge set)
            allowed.update(range(start, end + 1, int(step) if step else 1))
        if not allowed or min(allowed) < low or max(allowed) > high:
            return None
        fields.append(allowed)
    return tuple(fields)


def _duration(text: str) -> float | None:
    """A Go duration (``1h30m``, ``90s``) in seconds."""
    matches = list(_DURATION.finditer(text))
    if not matches or "".join(m.group(0) for m in matches) != text:
        return None
    seconds = sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in matches)
    return seconds or None
