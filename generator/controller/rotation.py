"""Which finished runs of one schedule to delete: history limits, calendar retention and pins.

Rotation runs per schedule (never per namespace) after each finished run. It is a pure function,
:func:`rotate`: the :class:`RunRecord` of every run of one schedule and the schedule's
:class:`RotationPolicy` in, a :class:`Rotation` out: the names to delete, and why each other run
is kept, for Events and logs. Deleting is the Kubernetes module's job.

The rules:

- A run still in progress is never deleted and takes no slot.
- A run annotated ``backup-operator.io/keep`` (any value but ``"false"``) is never deleted and
  takes no slot, in any rule: pinning a run for an audit or a restore does not push another
  run out of the history.
- The newest successful run is never deleted, in every mode, even with a limit of 0 (a limit of
  0 keeps no other): a rotation never leaves a schedule without its last good backup.
- Without ``retention``, the ``successfulRunsHistoryLimit`` newest successful runs are kept.
- With ``retention``, its rules decide alone which successful runs are kept, and
  ``successfulRunsHistoryLimit`` does not apply to them. ``keepLast`` is the count rule there;
  applying the limit as well would either cap the calendar (the default limit of 3 would quietly
  undo ``keepDaily: 7``) or pad it with runs that no rule asked for.
- Failed runs follow ``failedRunsHistoryLimit`` in both modes: a failed run stored nothing to
  restore (its upload was aborted), so a calendar history of them means nothing; they are kept
  to be diagnosed, and for that the newest few are what count.
- A run whose stored object is under S3 Object Lock is never deleted while the lock holds: before
  its ``status.retainUntil`` (at that time S3 lets the object go, and so does rotation), and
  while ``status.legalHold`` is true. It still takes its slot in every rule, so a lock keeps an
  old run longer and never pushes a newer one out. :attr:`Rotation.recheck_at` is the earliest
  retain-until date that keeps a run only for its lock: rotating again then deletes it. A legal
  hold has no end date and the controller cannot see it lifted in S3, so a run kept for one
  stays until a user, having lifted the hold, deletes the run.

``retention`` has the semantics of restic's ``forget --keep-*`` (which K8up uses): ``keepLast``
N keeps the N newest successful runs; ``keepHourly`` N keeps the newest run of each of the N
most recent hours that have a run, and so do ``keepDaily``, ``keepWeekly`` (ISO weeks, Monday to
Sunday: 30 December may be in week 1 of the next year), ``keepMonthly`` and ``keepYearly`` for
theirs. A run kept by several rules is kept once, with every reason. Periods are calendar
periods of the schedule's time zone (UTC when it has none): a day runs from midnight to
midnight there, 23 or 25 hours long when the clocks change, and the hour repeated when they go
back counts as two hours. Unlike restic since 0.16, the oldest run is not kept in addition when
a rule has slots left over.

A run's time is when its backup started, the time restic files a snapshot under: a run started
at 23:50 and finished after midnight belongs to the day it started. Runs with equal times are
ordered by name, the greater name the newer (Argo names a cron run ``<schedule>-<unix time>``),
so the result never depends on the order of the input.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

from generator.errors import Problem, ValidationFailed
from generator.models import ANNOTATION_KEEP, BackupRun, BackupSchedule, Retention

__all__ = ["Kept", "Outcome", "Reason", "Rotation", "RotationPolicy", "RunRecord", "rotate"]

#: The time of a run that has none recorded (an object the API server made always has a
#: creationTimestamp): it sorts as the oldest.
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class Outcome(StrEnum):
    """What became of a run, as far as rotation cares."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    IN_PROGRESS = "InProgress"

    @classmethod
    def of_phase(cls, phase: str | None) -> Outcome:
        """The outcome of a BackupRun ``status.phase`` (Argo's phases: Error is a failure)."""
        if phase == "Succeeded":
            return cls.SUCCEEDED
        if phase in ("Failed", "Error"):
            return cls.FAILED
        return cls.IN_PROGRESS


class Reason(StrEnum):
    """Why a run is kept, named after what the user set; a run lists them in this order."""

    IN_PROGRESS = "in progress"
    PINNED = ANNOTATION_KEEP
    NEWEST_SUCCESSFUL = "newest successful run"
    SUCCESSFUL_LIMIT = "successfulRunsHistoryLimit"
    FAILED_LIMIT = "failedRunsHistoryLimit"
    KEEP_LAST = "retention.keepLast"
    KEEP_HOURLY = "retention.keepHourly"
    KEEP_DAILY = "retention.keepDaily"
    KEEP_WEEKLY = "retention.keepWeekly"
    KEEP_MONTHLY = "retention.keepMonthly"
    KEEP_YEARLY = "retention.keepYearly"
    #: The stored object is under S3 Object Lock (a retention not ended, or a legal hold).
    LOCKED = "locked"


@dataclass(frozen=True)
class RunRecord:
    """The facts about one run that rotation reads."""

    name: str
    outcome: Outcome
    #: When the backup started (else when the run was created); timezone-aware.
    started_at: datetime
    #: Annotated ``backup-operator.io/keep``.
    keep: bool = False
    #: Object Lock: the stored object cannot be deleted before this time (timezone-aware).
    retain_until: datetime | None = None
    #: Object Lock: the stored object is under a legal hold.
    legal_hold: bool = False

    def __post_init__(self) -> None:
        for field, value in (("started_at", self.started_at), ("retain_until", self.retain_until)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"run {self.name!r}: {field} must be timezone-aware")

    def locked(self, now: datetime | None) -> bool:
        """Whether the stored object's lock still forbids deleting it at ``now`` (with no
        ``now``, any lock recorded does: rotation never deletes what it cannot tell is free)."""
        if self.legal_hold:
            return True
        if self.retain_until is None:
            return False
        return now is None or now < self.retain_until

    @classmethod
    def of(cls, run: BackupRun) -> RunRecord:
        """The record of a BackupRun: ``status.startTime``, else ``metadata.creationTimestamp``.

        Any value of the keep annotation but ``"false"`` pins the run: when in doubt, a backup
        is kept rather than deleted.
        """
        status = run.status
        started = status.start_time if status is not None else None
        if started is None:
            created = (run.metadata.model_extra or {}).get("creationTimestamp")
            started = datetime.fromisoformat(created) if isinstance(created, str) else created
        if not isinstance(started, datetime):
            started = _NO_TIME
        elif started.utcoffset() is None:  # Kubernetes writes UTC, with or without the "Z"
            started = started.replace(tzinfo=UTC)
        pin = (run.metadata.annotations or {}).get(ANNOTATION_KEEP)
        until = status.retain_until if status is not None else None
        if until is not None and until.utcoffset() is None:
            until = until.replace(tzinfo=UTC)
        return cls(
            name=run.metadata.name,
            outcome=Outcome.of_phase(status.phase if status is not None else None),
            started_at=started,
            keep=pin is not None and pin.strip().lower() != "false",
            retain_until=until,
            legal_hold=bool(status is not None and status.legal_hold),
        )


@dataclass(frozen=True)
class RotationPolicy:
    """A schedule's rules for its history (see the module docstring for how they combine)."""

    successful_limit: int
    failed_limit: int
    retention: Retention | None = None
    #: The time zone of calendar periods.
    zone: tzinfo = UTC

    def __post_init__(self) -> None:
        for name, limit in (("successful", self.successful_limit), ("failed", self.failed_limit)):
            if limit < 0:
                raise ValueError(f"the {name} runs history limit must be 0 or more, not {limit}")

    @classmethod
    def of(cls, schedule: BackupSchedule) -> RotationPolicy:
        """The policy of a schedule; :class:`ValidationFailed` if its time zone is unknown."""
        spec = schedule.spec
        zone: tzinfo = UTC
        if spec.time_zone is not None:
            try:
                zone = zoneinfo.ZoneInfo(spec.time_zone)
            # OSError: a region such as "America" is a directory of the zone database.
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                message = (
                    f"{spec.time_zone!r} is not an IANA time zone (e.g. UTC, Europe/Berlin); "
                    "runs are not rotated until it is fixed"
                )
                obj = f"{schedule.kind}/{schedule.metadata.name}"
                raise ValidationFailed([Problem(obj, "spec.timeZone", message)]) from None
        return cls(
            successful_limit=spec.successful_runs_history_limit,
            failed_limit=spec.failed_runs_history_limit,
            retention=spec.retention,
            zone=zone,
        )


@dataclass(frozen=True)
class Kept:
    """A run that stays, and every reason it does."""

    name: str
    reasons: tuple[Reason, ...]

    def __str__(self) -> str:
        return f"{self.name}: {', '.join(self.reasons)}"


@dataclass(frozen=True)
class Rotation:
    """The decision for one schedule; every run is in exactly one of the two, newest first."""

    delete: tuple[str, ...]
    keep: tuple[Kept, ...]
    #: The earliest retain-until date of a run kept only for its Object Lock: rotate again
    #: then. None: no run waits for its lock to end (a legal hold has no date).
    recheck_at: datetime | None = None


_Period = Callable[[RunRecord], Hashable]


def _calendar(retention: Retention, zone: tzinfo) -> Iterator[tuple[Reason, int, _Period]]:
    def local(run: RunRecord) -> datetime:
        return run.started_at.astimezone(zone)

    yield Reason.KEEP_LAST, retention.keep_last or 0, lambda run: run.name
    # With the offset, the hour the clocks repeat is two hours, and a zone offset by half an
    # hour still has its hours start at :00 local time.
    yield (
        Reason.KEEP_HOURLY,
        retention.keep_hourly or 0,
        lambda run: (local(run).date(), local(run).hour, local(run).utcoffset()),
    )
    yield Reason.KEEP_DAILY, retention.keep_daily or 0, lambda run: local(run).date()
    yield Reason.KEEP_WEEKLY, retention.keep_weekly or 0, lambda run: local(run).isocalendar()[:2]
    yield (
        Reason.KEEP_MONTHLY,
        retention.keep_monthly or 0,
        lambda run: (local(run).year, local(run).month),
    )
    yield Reason.KEEP_YEARLY, retention.keep_yearly or 0, lambda run: local(run).year


def _newest_per_period(
    runs: Sequence[RunRecord], count: int, period: _Period
) -> Iterator[RunRecord]:
    """The newest run of each of the ``count`` most recent periods that have one.

    ``runs`` are newest first, so the runs of one period are adjacent.
    """
    previous: Hashable = object()
    for run in runs:
        if count <= 0:
            return
        key = period(run)
        if key != previous:
            yield run
            previous = key
            count -= 1


def rotate(
    runs: Iterable[RunRecord], policy: RotationPolicy, *, now: datetime | None = None
) -> Rotation:
    """Which of one schedule's runs to delete, and why each other one is kept.

    ``now`` decides which Object Locks still hold; without it, every lock recorded does.
    """
    ordered = sorted(runs, key=lambda run: (run.started_at, run.name), reverse=True)
    reasons: dict[str, set[Reason]] = {}
    for run in ordered:
        if run.name in reasons:
            raise ValueError(f"run {run.name!r} is listed twice")
        reasons[run.name] = set()

    def mark(selected: Iterable[RunRecord], reason: Reason) -> None:
        for run in selected:
            reasons[run.name].add(reason)

    mark((r for r in ordered if r.outcome is Outcome.IN_PROGRESS), Reason.IN_PROGRESS)
    mark((r for r in ordered if r.keep), Reason.PINNED)
    successful = [r for r in ordered if r.outcome is Outcome.SUCCEEDED]
    mark(successful[:1], Reason.NEWEST_SUCCESSFUL)
    rotating = [r for r in successful if not r.keep]
    if policy.retention is None:
        mark(rotating[: policy.successful_limit], Reason.SUCCESSFUL_LIMIT)
    else:
        for reason, count, period in _calendar(policy.retention, policy.zone):
            mark(_newest_per_period(rotating, count, period), reason)
    failed = [r for r in ordered if r.outcome is Outcome.FAILED and not r.keep]
    mark(failed[: policy.failed_limit], Reason.FAILED_LIMIT)
    # Last: a run that no other rule keeps is kept only for its lock, and goes when it ends.
    locked = [r for r in ordered if r.locked(now)]
    ends = [
        r.retain_until
        for r in locked
        if not reasons[r.name] and not r.legal_hold and r.retain_until is not None
    ]
    mark(locked, Reason.LOCKED)
    return Rotation(
        delete=tuple(run.name for run in ordered if not reasons[run.name]),
        keep=tuple(
            Kept(run.name, tuple(r for r in Reason if r in reasons[run.name]))
            for run in ordered
            if reasons[run.name]
        ),
        recheck_at=min(ends, default=None),
    )
