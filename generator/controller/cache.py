"""The controller's copy of what it watches: the newest body of each object, and who names whom.

kopf's own indexes (``kopf.index``) are not used: until the first listing of every indexed kind
is indexed, kopf parks each object's event in a task of its own, all waiting on one condition
that every indexed object notifies, which is quadratic in the number of objects (1,000 schedules
and 10,000 runs with their Workflows never got through it: ``bench/controller.py``). So kopf's
``on.event`` handlers put what they see here, and :class:`Startup` holds the reconciles back
until every object listed when the controller started has been seen, as kopf's index
readiness did.

Memory: a body is kept as compact JSON, compressed (zlib, fastest level), and parsed again on
every read: ~1 KB an object instead of ~14 KB of dicts, for ~40 us a write and ~20 us a read;
each read is a fresh copy, which no reconcile can alter for the next one. Workflows keep only
what the decisions read: no spec but its ``entrypoint``. Runs and schedules are also kept as
their :func:`summary`, all that is read of every one of them at once (a storage's reconcile,
the backstop's scan for unfinished runs, the metrics), so none of those parses 10,000 runs.

:class:`Applied` remembers what this process applied (server-side apply of whole objects: a
schedule's CronWorkflow and WorkflowTemplate, a storage's credentials copies), so the same body
is not sent again on every reconcile: each change of a run reconciles its schedule, which
renders the same objects again. Those objects are not watched, so an edit or deletion of one by
someone else is set right the next time the rendered body changes, or once
:data:`APPLIED_FOR` has passed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from generator.controller.names import LABEL_CRON_WORKFLOW, LABEL_RESTORE_OF
from generator.controller.storages import storage_name_of
from generator.controller.workqueue import Key
from generator.models import LABEL_RUN, LABEL_SCHEDULE, LABEL_VERIFIES, LABEL_VERIFY_OF

__all__ = [
    "APPLIED_FOR",
    "RUN",
    "SCHEDULE",
    "STORAGE",
    "WORKFLOW",
    "Applied",
    "Cache",
    "Key",
    "Startup",
    "is_our_workflow",
    "key_of",
    "only_status_changed",
    "slim",
    "summary",
]

log = logging.getLogger(__name__)

Body = dict[str, Any]
RUN, SCHEDULE, STORAGE, WORKFLOW = "BackupRun", "BackupSchedule", "BackupStorage", "Workflow"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: zlib's level for the cached bodies: the fastest (JSON of one object shrinks 3x already).
COMPRESSION = 1
#: At start, how often kopf's deliveries are counted; when none came for STARTUP_STALL
#: seconds, the objects still missing are read (those deleted since the listing are dropped);
#: the wait is logged every STARTUP_LOG_EVERY seconds.
STARTUP_POLL = 0.1
STARTUP_STALL = 10.0
STARTUP_LOG_EVERY = 30.0
#: How long an applied body counts as in place (then it is applied again when next decided).
APPLIED_FOR = 600.0


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _part(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    part = body.get(name)
    return part if isinstance(part, Mapping) else {}


def key_of(kind: str, body: Mapping[str, Any]) -> Key:
    meta = _meta(body)
    return (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


#: What the event of a schedule or storage can change that its own reconcile reads (its
#: status is the reconcile's own output; the other inputs, runs, checks, come separately).
_DECIDING_METADATA = (
    "uid",
    "generation",
    "labels",
    "annotations",
    "finalizers",
    "deletionTimestamp",
)


def only_status_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether ``after`` differs from ``before`` in its status (or resourceVersion) only."""
    old, new = _meta(before), _meta(after)
    return before.get("spec") == after.get("spec") and all(
        old.get(k) == new.get(k) for k in _DECIDING_METADATA
    )


def is_our_workflow(body: Mapping[str, Any]) -> bool:
    """A Workflow that a run or a schedule of ours is about."""
    meta = _meta(body)
    labels = meta.get("labels") or {}
    if labels.keys() & {LABEL_CRON_WORKFLOW, LABEL_RUN, LABEL_RESTORE_OF, LABEL_VERIFY_OF}:
        return True
    return any(owner.get("kind") == RUN for owner in meta.get("ownerReferences") or ())


def slim(kind: str, body: Mapping[str, Any]) -> Body:
    """What the cache keeps of an object: all but the bookkeeping no reconcile reads (managed
    fields, kubectl's last applied configuration) and, of a Workflow, all of its spec but the
    ``entrypoint`` (:mod:`~generator.controller.workflow_status` reads no more)."""
    meta = {k: v for k, v in _meta(body).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    kept = {**body, "metadata": meta}
    if kind == WORKFLOW and isinstance(body.get("spec"), Mapping):
        entrypoint = body["spec"].get("entrypoint")
        kept["spec"] = {"entrypoint": entrypoint} if entrypoint is not None else {}
    return kept


def summary(body: Mapping[str, Any]) -> Body:
    """What is read of every run or schedule at once, as a body of those fields only: by
    :func:`~generator.controller.storages.reconcile_storage` (identity, the storage named, a
    run's phase and size), the backstop (a run's phase) and the metrics of
    :mod:`generator.controller.metrics` (a run's schedule label, times and size; a schedule's
    cron, suspension, creation time, and its drills' cron and last success)."""
    meta = _meta(body)
    status = _part(body, "status")
    spec = _part(body, "spec")
    kept_meta = {k: meta[k] for k in ("name", "namespace", "creationTimestamp") if k in meta}
    schedule = (meta.get("labels") or {}).get(LABEL_SCHEDULE)
    if schedule is not None:
        kept_meta["labels"] = {LABEL_SCHEDULE: schedule}
    kept: Body = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind")}
    kept["metadata"] = kept_meta
    named = {"storage": {"name": storage_name_of(body)}}
    if body.get("kind") == SCHEDULE:
        kept["spec"] = {"schedule": spec.get("schedule"), "template": {"spec": named}}
        for name in ("suspend", "timeZone"):
            if name in spec:
                kept["spec"][name] = spec[name]
        verify = _part(spec, "verify")
        if verify:
            drill = ("schedule", "timeZone", "suspend", "level")
            kept["spec"]["verify"] = {k: verify[k] for k in drill if k in verify}
    else:
        kept["spec"] = named
    fields = (
        "phase",
        "sizeInBytes",
        "startTime",
        "completionTime",
        "lastVerifiedTime",
        "lastVerifiedRun",
    )
    kept_status = {k: status[k] for k in fields if k in status}
    if kept_status:
        kept["status"] = kept_status
    return kept


class Cache:
    """The newest body of every watched object, with the runs of each schedule and the
    schedules and runs of each storage. Used on the event loop only (no locking)."""

    def __init__(self) -> None:
        self._bodies: dict[Key, bytes] = {}
        self._views: dict[Key, Body] = {}
        self._runs_of: dict[tuple[str, str], set[Key]] = defaultdict(set)
        self._users_of: dict[str, set[Key]] = defaultdict(set)
        #: What each key is listed under in the two maps above, to take it out again.
        self._links: dict[Key, tuple[tuple[str, str] | None, str | None]] = {}
        self._kinds: dict[str, set[Key]] = defaultdict(set)
        #: Drill Workflows by (namespace, schedule) and by (namespace, run drilled).
        self._drills: dict[tuple[str, str, str], set[Key]] = defaultdict(set)
        self._drill_links: dict[Key, tuple[tuple[str, str, str], ...]] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def put(self, kind: str, body: Mapping[str, Any]) -> Key:
        key = key_of(kind, body)
        self._unlink(key)
        text = json.dumps(slim(kind, body), separators=(",", ":"))
        self._bodies[key] = zlib.compress(text.encode(), COMPRESSION)
        self._kinds[kind].add(key)
        schedule = storage = None
        if kind == RUN:
            label = (_meta(body).get("labels") or {}).get(LABEL_SCHEDULE)
            schedule = (key[1], str(label)) if label else None
        if kind in (RUN, SCHEDULE):
            storage = storage_name_of(body)
            self._views[key] = summary(body)
        if kind == WORKFLOW:
            self._link_drill(key, body)
        if schedule is not None:
            self._runs_of[schedule].add(key)
        if storage:
            self._users_of[storage].add(key)
        self._links[key] = (schedule, storage or None)
        return key

    def remove(self, kind: str, body: Mapping[str, Any]) -> Key:
        key = key_of(kind, body)
        self._unlink(key)
        self._bodies.pop(key, None)
        self._views.pop(key, None)
        self._kinds[kind].discard(key)
        return key

    def _link_drill(self, key: Key, body: Mapping[str, Any]) -> None:
        labels = _meta(body).get("labels") or {}
        schedule, run = labels.get(LABEL_VERIFY_OF), labels.get(LABEL_VERIFIES)
        links = tuple(
            (by, key[1], str(name)) for by, name in ((SCHEDULE, schedule), (RUN, run)) if name
        )
        for link in links:
            self._drills[link].add(key)
        if links:
            self._drill_links[key] = links

    def _unlink(self, key: Key) -> None:
        for link in self._drill_links.pop(key, ()):
            self._drills[link].discard(key)
            if not self._drills[link]:
                del self._drills[link]
        schedule, storage = self._links.pop(key, (None, None))
        if schedule is not None:
            self._runs_of[schedule].discard(key)
            if not self._runs_of[schedule]:
                del self._runs_of[schedule]
        if storage is not None:
            self._users_of[storage].discard(key)
            if not self._users_of[storage]:
                del self._users_of[storage]

    # -- reading -------------------------------------------------------------------------------

    def get(self, key: Key) -> Body | None:
        """A fresh copy of the object's body, None if it is not (or no longer) there."""
        packed = self._bodies.get(key)
        if packed is None:
            return None
        body: Body = json.loads(zlib.decompress(packed))
        return body

    def keys(self, kind: str) -> Iterator[Key]:
        yield from list(self._kinds.get(kind, ()))

    def summary(self, key: Key) -> Body | None:
        """The :func:`summary` of a schedule or run, None if it is not there."""
        return self._views.get(key)

    def summaries(self, keys: Iterable[Key]) -> list[Body]:
        return [self._views[key] for key in keys if key in self._views]

    def indices(self) -> dict[str, dict[Any, tuple[Body, ...]]]:
        """The objects as kopf's indexes held them (key: one body), which
        :func:`generator.controller.metrics.snapshot_of` reads: runs and schedules as their
        :func:`summary`, storages whole."""
        found: dict[str, dict[Any, tuple[Body, ...]]] = {}
        for name, kind in (("runs", RUN), ("schedules", SCHEDULE)):
            found[name] = {k[1:]: (self._views[k],) for k in self.keys(kind) if k in self._views}
        storages = ((k[2], self.get(k)) for k in self.keys(STORAGE))
        found["storages"] = {name: (body,) for name, body in storages if body is not None}
        return found

    def runs_of(self, namespace: str, schedule: str) -> list[Body]:
        """The bodies of the runs labelled with the schedule."""
        found = (self.get(key) for key in sorted(self._runs_of.get((namespace, schedule), ())))
        return [body for body in found if body is not None]

    def drills_of(self, kind: str, namespace: str, name: str) -> list[Body]:
        """The drill Workflows of a schedule (``kind`` SCHEDULE) or of a run (RUN)."""
        found = (self.get(key) for key in sorted(self._drills.get((kind, namespace, name), ())))
        return [body for body in found if body is not None]

    def users_of(self, storage: str, kind: str | None = None) -> list[Key]:
        """The schedules and runs (or those of ``kind``) that name the storage."""
        return sorted(k for k in self._users_of.get(storage, ()) if kind is None or k[0] == kind)


class Startup:
    """The objects listed when the controller started that kopf has not delivered yet.

    The controller reconciles nothing until this is empty: a run reconciled before its
    Workflow was seen would be failed as ``WorkflowMissing``. An object deleted between the
    controller's listing and kopf's is never delivered: the controller reads it (a GET), and
    :meth:`gone` drops it when it is not there.
    """

    def __init__(self) -> None:
        self.missing: set[Key] = set()
        self.listed = 0

    def expect(self, keys: Iterable[Key]) -> None:
        self.missing.update(keys)
        self.listed = len(self.missing)

    def delivered(self, key: Key) -> None:
        self.missing.discard(key)

    def gone(self, key: Key) -> None:
        self.missing.discard(key)

    @property
    def complete(self) -> bool:
        return not self.missing

    async def wait(self, read_missing: Callable[[], Awaitable[object]]) -> None:
        """Return once every object listed was delivered, or is gone; ``read_missing`` (which
        calls :meth:`gone`) is awaited whenever no delivery came for :data:`STARTUP_STALL`."""
        loop = asyncio.get_running_loop()
        left, progressed, logged = len(self.missing), loop.time(), loop.time()
        while not self.complete:
            await asyncio.sleep(STARTUP_POLL)
            now = loop.time()
            if len(self.missing) < left:
                left, progressed = len(self.missing), now
            elif now - progressed >= STARTUP_STALL:
                await read_missing()
                progressed = now
            if now - logged >= STARTUP_LOG_EVERY and not self.complete:
                example = ", ".join("/".join(k) for k in sorted(self.missing)[:3])
                log.warning("waiting for kopf to deliver %d objects, e.g. %s", left, example)
                logged = now
        log.info("%d objects delivered; reconciling", self.listed)


class Applied:
    """The bodies this process applied, by object, with when (their digest, not the bodies:
    a credentials copy holds a Secret's data)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._applied: dict[tuple[str, str, str, str], tuple[str, float]] = {}

    @staticmethod
    def _key(body: Mapping[str, Any]) -> tuple[str, str, str, str]:
        meta = _meta(body)
        where = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        return (str(body.get("apiVersion")), str(body.get("kind")), *where)

    @staticmethod
    def _digest(body: Mapping[str, Any]) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def fresh(self, body: Mapping[str, Any]) -> bool:
        """Whether exactly this body was applied less than :data:`APPLIED_FOR` ago."""
        found = self._applied.get(self._key(body))
        return (
            found is not None
            and found[0] == self._digest(body)
            and self._clock() - found[1] < APPLIED_FOR
        )

    def remember(self, body: Mapping[str, Any]) -> None:
        self._applied[self._key(body)] = (self._digest(body), self._clock())

    def forget(self, body: Mapping[str, Any]) -> None:
        self._applied.pop(self._key(body), None)
