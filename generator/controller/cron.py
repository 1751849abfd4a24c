"""How long a schedule may go between two backups: the longest gap between its fire times.

The alert on missing backups compares the age of a schedule's last successful run with its
period; for a schedule that fires unevenly (``0 2 * * 1-5``: weekdays) the period that matters
is the longest gap (Friday to Monday), or the alert would fire every weekend. The schedule
grammar is the one :func:`generator.checks.check_cron` accepts: five numeric fields of ``*``,
``?``, ``N``, ``N-M`` and ``/STEP`` items, or ``@hourly``, ``@daily``, ``@weekly``,
``@monthly``, ``@yearly``/``@annually``, ``@every <duration>``.

Fire times are walked day by day over eight years (a leap day recurs within eight), in
wall-clock time: a daylight-saving shift moves a gap by an hour, which the alert's 1.5x factor
absorbs.
"""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta
from itertools import pairwise

__all__ = ["longest_gap"]

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
    minutes, hours, days, months, weekdays = fields
    # Both day fields restricted: a day matches either (cron's rule); one "*": the other decides.
    both = days != set(range(1, 32)) and weekdays != set(range(7))
    times = sorted(h * 3600.0 + m * 60.0 for h in hours for m in minutes)
    if not times:
        return None
    inside = max((b - a for a, b in pairwise(times)), default=0.0)
    longest, last_day = 0.0, None
    for offset in range(_DAYS):
        day = _START + timedelta(days=offset)
        in_month, in_week = day.day in days, (day.isoweekday() % 7) in weekdays
        if day.month not in months or not (in_month or in_week if both else in_month and in_week):
            continue
        if last_day is not None:  # the last fire of the previous day to the first of this one
            longest = max(longest, (offset - last_day) * _DAY - times[-1] + times[0])
        last_day = offset
    if last_day is None:
        return None
    if longest == 0.0:  # fires on one day in eight years: not a schedule to alert on by period
        return None
    return max(longest, inside)


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
