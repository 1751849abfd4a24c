"""What the controller tells Prometheus about the backups: read from the catalogue at scrape time.

Every figure is derived from the objects themselves (schedules, runs, storages as watched), not
counted as events pass, so a restarted controller reports the same values at once and a scrape
never sees a count that drifted from ``kubectl get backupruns``. The alerts in
``argo/monitoring/`` are written against these names:

- ``backup_operator_schedule_last_success_timestamp_seconds`` and the ``_size_bytes`` and
  ``_duration_seconds`` of that run, per schedule; absent until a schedule has one.
- ``backup_operator_schedule_interval_seconds``: the longest gap between two fire times of the
  schedule (:mod:`generator.controller.cron`), so an alert can allow 1.5x of it.
- ``backup_operator_schedule_created_timestamp_seconds``: for schedules that never succeeded.
- ``backup_operator_schedule_last_verified_timestamp_seconds`` (``status.lastVerifiedTime``: the
  newest successful restore drill) and ``backup_operator_schedule_verify_interval_seconds`` (the
  longest gap of ``spec.verify.schedule``), per schedule whose drills are due: see
  :func:`drills_of`. A schedule never verified has only the interval, and its creation time
  stands in for when its drills began. The drills' ``timeZone`` moves no gap but by a
  daylight-saving hour, which the alert's 1.5x absorbs.
- ``backup_operator_runs``: runs in the catalogue by schedule and phase.
- ``backup_operator_storage_ready`` (1 or 0) and ``backup_operator_storage_size_bytes``.

The reconcile counters of the controller itself live in :mod:`generator.controller.reconciler`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from generator.controller.conditions import condition, parse_time
from generator.controller.cron import longest_gap
from generator.models import LABEL_SCHEDULE

__all__ = [
    "CatalogueCollector",
    "LoopSnapshots",
    "Snapshot",
    "drills_of",
    "families",
    "period_of",
    "snapshot_of",
]

Body = Mapping[str, Any]
PREFIX = "backup_operator"
SCHEDULE_LABELS = ["namespace", "schedule"]
#: How long a scrape waits for the event loop to take a snapshot.
SNAPSHOT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Snapshot:
    """The watched objects at one moment (taken where they are updated: the event loop)."""

    schedules: list[Body] = field(default_factory=list)
    runs: list[Body] = field(default_factory=list)
    storages: list[Body] = field(default_factory=list)


def families(snapshot: Snapshot) -> list[GaugeMetricFamily]:
    """The metric families of one snapshot (pure: tested without a server)."""
    last_time = _gauge(
        "schedule_last_success_timestamp_seconds",
        "When the newest successful backup of the schedule completed (Unix time).",
        SCHEDULE_LABELS,
    )
    last_size = _gauge(
        "schedule_last_success_size_bytes",
        "Stored size of the newest successful backup.",
        SCHEDULE_LABELS,
    )
    last_duration = _gauge(
        "schedule_last_success_duration_seconds",
        "How long the newest successful backup took.",
        SCHEDULE_LABELS,
    )
    interval = _gauge(
        "schedule_interval_seconds",
        "The longest gap between two fire times of the schedule.",
        SCHEDULE_LABELS,
    )
    created = _gauge(
        "schedule_created_timestamp_seconds",
        "When the schedule was created (Unix time).",
        SCHEDULE_LABELS,
    )
    runs = _gauge(
        "runs",
        "Runs in the catalogue, by schedule (empty: none) and phase.",
        ["namespace", "schedule", "phase"],
    )
    ready = _gauge(
        "storage_ready",
        "1 if the storage's bucket is reachable with its credentials, else 0.",
        ["storage"],
    )
    stored = _gauge(
        "storage_size_bytes", "Total stored bytes of the storage's successful runs.", ["storage"]
    )
    last_verified = _gauge(
        "schedule_last_verified_timestamp_seconds",
        "When the newest successful restore drill of the schedule completed (Unix time).",
        SCHEDULE_LABELS,
    )
    verify_interval = _gauge(
        "schedule_verify_interval_seconds",
        "The longest gap between two fire times of the schedule's restore drills.",
        SCHEDULE_LABELS,
    )

    newest: dict[tuple[str, str], tuple[datetime, Body]] = {}
    phases: Counter[tuple[str, str, str]] = Counter()
    for run in snapshot.runs:
        namespace, _ = _where(run)
        schedule = str((_meta(run).get("labels") or {}).get(LABEL_SCHEDULE) or "")
        status = _status(run)
        phases[(namespace, schedule, str(status.get("phase") or "Pending"))] += 1
        completed = parse_time(status.get("completionTime"))
        if not schedule or status.get("phase") != "Succeeded" or completed is None:
            continue
        best = newest.get((namespace, schedule))
        if best is None or completed > best[0]:
            newest[(namespace, schedule)] = (completed, run)
    for (namespace, schedule, phase), count in sorted(phases.items()):
        runs.add_metric([namespace, schedule, phase], count)

    for body in snapshot.schedules:
        labels = list(_where(body))
        gap = period_of((body.get("spec") or {}).get("schedule"))
        if gap is not None:
            interval.add_metric(labels, gap)
        drills = drills_of(body)
        if drills is not None:
            verified = parse_time(_status(body).get("lastVerifiedTime"))
            if verified is not None:
                last_verified.add_metric(labels, verified.timestamp())
            drill_gap = period_of(drills.get("schedule"))
            if drill_gap is not None:
                verify_interval.add_metric(labels, drill_gap)
        made = parse_time(_meta(body).get("creationTimestamp"))
        if made is not None:
            created.add_metric(labels, made.timestamp())
        found = newest.get((labels[0], labels[1]))
        if found is None:
            continue
        completed, run = found
        status = _status(run)
        started = parse_time(status.get("startTime"))
        last_time.add_metric(labels, completed.timestamp())
        if isinstance(status.get("sizeInBytes"), int):
            last_size.add_metric(labels, status["sizeInBytes"])
        if started is not None:
            last_duration.add_metric(labels, max(0.0, (completed - started).total_seconds()))

    for body in snapshot.storages:
        name = [_where(body)[1]]
        cond = condition(_status(body).get("conditions"), "Ready")
        ready.add_metric(name, 1.0 if cond is not None and cond.get("status") == "True" else 0.0)
        if isinstance(_status(body).get("sizeInBytes"), int):
            stored.add_metric(name, _status(body)["sizeInBytes"])
    return [
        last_time,
        last_size,
        last_duration,
        interval,
        created,
        runs,
        ready,
        stored,
        last_verified,
        verify_interval,
    ]


def drills_of(schedule: Body) -> Mapping[str, Any] | None:
    """The schedule's ``spec.verify`` if its restore drills are due, else None: none set, the
    drills suspended, or the schedule itself suspended. A suspended schedule makes no backup to
    drill, and its backups' age already raises BackupMissing: an alert on its drills as well
    would only repeat it, so neither drill series is exported for it."""
    spec = schedule.get("spec")
    if not isinstance(spec, Mapping) or spec.get("suspend") is True:
        return None
    verify = spec.get("verify")
    if not isinstance(verify, Mapping) or verify.get("suspend") is True:
        return None
    return verify


def period_of(schedule: object) -> float | None:
    """The longest gap of a cron schedule (:func:`~generator.controller.cron.longest_gap`), or
    None when it has none: a text that is not a schedule must cost its own series, not the
    scrape (``*/0`` makes the walk raise ``ValueError``)."""
    if not isinstance(schedule, str):
        return None
    try:
        return longest_gap(schedule)
    except ValueError:
        return None


def snapshot_of(indices: Mapping[str, Any]) -> Snapshot:
    """The objects in the controller's kopf indexes (each maps a key to a store of bodies)."""

    def bodies(name: str) -> list[Body]:
        return [body for store in (indices.get(name) or {}).values() for body in store]

    return Snapshot(schedules=bodies("schedules"), runs=bodies("runs"), storages=bodies("storages"))


class LoopSnapshots:
    """Snapshots for the metrics server's thread, taken in the event loop that updates the
    indexes (iterating them from another thread could see them change midway)."""

    def __init__(self, indices: Callable[[], Mapping[str, Any]]) -> None:
        self._indices = indices
        #: Set once the loop runs (the controller's startup), back to None at its cleanup.
        self.loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> Snapshot | None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return None

        taken: Future[Snapshot] = Future()

        def take() -> None:
            try:
                taken.set_result(snapshot_of(self._indices()))
            except Exception as exc:  # handed to the scrape, which fails
                taken.set_exception(exc)

        try:
            loop.call_soon_threadsafe(take)
            return taken.result(SNAPSHOT_TIMEOUT)
        except (RuntimeError, TimeoutError):  # the loop stopped, or is stuck: no figures
            return None


class CatalogueCollector(Collector):
    """A Prometheus collector over ``snapshot()``: called by the metrics server's thread."""

    def __init__(self, snapshot: Callable[[], Snapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        taken = self._snapshot()
        if taken is not None:  # not started yet, or shutting down
            yield from families(taken)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # do not collect at registration (the loop may not run yet)


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)


def _meta(body: Body) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _status(body: Body) -> Mapping[str, Any]:
    status = body.get("status")
    return status if isinstance(status, Mapping) else {}


def _where(body: Body) -> tuple[str, str]:
    meta = _meta(body)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
