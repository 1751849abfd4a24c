"""What one reconcile decides from: an object's inputs read from the cache, and its decision.

Each kind has a pure reconcile (:func:`~generator.controller.runs.reconcile_run`,
:func:`~generator.controller.schedules.reconcile_schedule`,
:func:`~generator.controller.storages.reconcile_storage`, and the catalogue's
:func:`~generator.controller.catalogue.record_workflow` for a cron-spawned Workflow);
:func:`decision` reads what it needs from the :class:`~generator.controller.cache.Cache`, in
the event loop where the cache is updated, and returns the call that decides. A storage's
decision reads its credentials Secret (a GET: Secrets are never watched), so every decision
is run in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from generator.controller.cache import RUN, SCHEDULE, STORAGE, WORKFLOW, Cache, Key
from generator.controller.catalogue import record_workflow
from generator.controller.names import LABEL_CRON_WORKFLOW
from generator.controller.objects import restore_workflow_name, run_workflow_name
from generator.controller.plan import Plan
from generator.controller.runs import reconcile_run
from generator.controller.schedules import reconcile_schedule
from generator.controller.settings import Settings
from generator.controller.storages import BucketCheck, reconcile_storage, storage_name_of

__all__ = ["Decision", "decision"]

Body = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """An object, the call that decides its plan, and the storage it names (None if none)."""

    body: Body
    decide: Callable[[], Plan]
    storage: Body | None


def decision(
    cache: Cache,
    key: Key,
    *,
    checks: Mapping[str, BucketCheck],
    storage_error: Callable[[], str | None],
    read_secret: Callable[[Mapping[str, Any]], Body | None],
    settings: Settings,
    now: datetime,
) -> Decision | None:
    """The decision of the object at ``key``; None if it is gone. ``storage_error`` hands over
    the error of the run's last attempt to delete its stored object, if any."""
    kind, namespace, name = key
    body = cache.get(key)
    if body is None:
        return None
    storage_name = name if kind == STORAGE else storage_name_of(body) or ""
    storage = cache.get((STORAGE, "", storage_name))
    if kind == STORAGE:
        check = checks.get(name)
        users = cache.summaries(cache.users_of(name, SCHEDULE))
        runs = cache.summaries(cache.users_of(name, RUN))

        def decide_storage() -> Plan:
            return reconcile_storage(
                body,
                check=check,
                secret=read_secret(body),
                users=[*users, *runs],
                runs=runs,
                now=now,
            )

        return Decision(body, decide_storage, storage)
    if kind == RUN:
        restore = restore_workflow_name(body)
        plan = reconcile_run(
            body,
            storage=storage,
            workflow=cache.get((WORKFLOW, namespace, run_workflow_name(body))),
            restore_workflow=cache.get((WORKFLOW, namespace, restore or "")),
            storage_error=storage_error(),
            settings=settings,
            now=now,
            drills=cache.drills_of(RUN, namespace, name),
        )
    elif kind == SCHEDULE:
        runs = cache.runs_of(namespace, name)
        plan = reconcile_schedule(
            body,
            storage=storage,
            runs=runs,
            settings=settings,
            now=now,
            drills=cache.drills_of(SCHEDULE, namespace, name),
        )
    else:
        schedule = ((body.get("metadata") or {}).get("labels") or {}).get(LABEL_CRON_WORKFLOW, "")
        plan = record_workflow(
            body,
            schedule=cache.get((SCHEDULE, namespace, schedule)),
            run=cache.get((RUN, namespace, name)),
            settings=settings,
            now=now,
        )
    return Decision(body, lambda: plan, storage)
