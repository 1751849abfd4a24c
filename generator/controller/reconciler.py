"""The reconcile loop: a queue of keys, workers that decide purely and act through kube.

:class:`Controller` is told what changed (``on_run``, ``on_schedule``, ``on_storage``,
``on_workflow``: called by :mod:`generator.controller.operator` for every watch event) and puts
the keys of the objects whose inputs changed on its :class:`WorkQueue`: a Workflow's event
concerns its run, and a cron-spawned one its catalogue entry too; a run's event concerns its
schedule (status, rotation) and its storage (counts) as well. Workers take one key at a time
per object, read the inputs from the indexes (the latest object of each kind, as watched),
call the pure reconcile of its kind and hand the Plan to :mod:`generator.controller.kube` in a
thread. A periodic task checks every storage's bucket (:mod:`generator.controller.objectstore`)
and puts every unfinished run back on the queue: the backstop for deadlines and lost events.

Failures: a temporary one (409, 429, 5xx, the network) puts the key back with an exponential
back-off; an S3 failure while deleting a stored object is handed to the next reconcile of the
run (``storage_error``), which reports it and says when to try again; a permanent one (the API
refused a request) is reported on the object's status (condition ``Synced``, reason
``ReconcileError``, the API's message) and as an Event, and not retried until the object
changes. Secrets are only ever read with a GET, when a storage is checked or reconciled.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from generator.controller import objectstore
from generator.controller.catalogue import record_workflow
from generator.controller.conditions import condition, rfc3339
from generator.controller.kube import Kube, PermanentKubeError, TemporaryKubeError
from generator.controller.names import COMPLETED, LABEL_CRON_WORKFLOW, LABEL_RESTORE_OF
from generator.controller.objects import is_catalogued, restore_workflow_name, run_workflow_name
from generator.controller.plan import ApplyStatus, DeleteStoredObject, EmitEvent, ObjectRef, Plan
from generator.controller.runs import reconcile_run
from generator.controller.schedules import reconcile_schedule
from generator.controller.settings import Settings
from generator.controller.storages import BucketCheck, reconcile_storage, storage_name_of
from generator.models import API_VERSION, LABEL_RUN, LABEL_SCHEDULE

__all__ = ["INDEXES", "Controller", "Key", "WorkQueue"]

log = logging.getLogger(__name__)

Body = dict[str, Any]
#: (kind, namespace or "", name): what the queue holds.
Key = tuple[str, str, str]
RUN, SCHEDULE, STORAGE, WORKFLOW = "BackupRun", "BackupSchedule", "BackupStorage", "Workflow"

#: Condition written when a reconcile is refused by the API server.
CONDITION_SYNCED = "Synced"
REASON_RECONCILE_ERROR = "ReconcileError"
#: Concurrent reconciles, and threads for the blocking client.
WORKERS = 8
THREADS = 16
#: Back-off of a key whose reconcile failed temporarily: doubling from FIRST to MAX seconds.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
#: Related reconciles (a schedule's or a storage's counts) wait this long, so bursts coalesce.
RELATED_DELAY = 0.5
#: Bucket checks at once.
CHECKS_AT_ONCE = 4

RECONCILES = Counter(
    "backup_operator_reconciles_total", "Reconciles carried out, by kind.", ["kind"]
)
RECONCILE_ERRORS = Counter(
    "backup_operator_reconcile_errors_total",
    "Reconciles that failed, by kind and error (temporary, permanent, storage, unexpected).",
    ["kind", "error"],
)


class WorkQueue:
    """Keys to reconcile: each at most once at a time, the earliest due first.

    A key added while it is being reconciled is taken again after that reconcile; a key added
    twice keeps the earlier of its two times.
    """

    def __init__(self) -> None:
        self._due: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._busy: set[Key] = set()
        self._again: dict[Key, float] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._due)

    def add(self, key: Key, delay: float = 0.0) -> None:
        due = asyncio.get_running_loop().time() + max(0.0, delay)
        if key in self._busy:
            self._again[key] = min(due, self._again.get(key, due))
            return
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        self._changed.set()

    async def get(self) -> Key:
        """The next key that is due, marked busy until :meth:`done`."""
        loop = asyncio.get_running_loop()
        while True:
            while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)  # superseded by an earlier time, or taken
            wait = self._heap[0][0] - loop.time() if self._heap else None
            if wait is not None and wait <= 0:
                _, key = heapq.heappop(self._heap)
                del self._due[key]
                self._busy.add(key)
                return key
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def done(self, key: Key) -> None:
        self._busy.discard(key)
        if key in self._again:
            due = self._again.pop(key)
            self.add(key, due - asyncio.get_running_loop().time())


class Controller:
    """The reconcile loop over kopf's indexes; ``kube`` does every request."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        workers: int = WORKERS,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.queue = WorkQueue()
        self.indices: Mapping[str, Any] = {}
        self.checks: dict[str, BucketCheck] = {}
        self.stored_object_errors: dict[Key, str] = {}
        self._failures: dict[Key, int] = {}
        self._ready: dict[str, str | None] = {}
        self._checked_generation: dict[str, object] = {}
        self._checking: set[str] = set()
        self._check_again: set[str] = set()
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="kube")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, indices: Mapping[str, Any]) -> None:
        self.indices = indices
        for number in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-{number}"))
        self._tasks.append(asyncio.create_task(self._periodic(), name="periodic"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- what an event changes -----------------------------------------------------------------

    def on_run(self, body: Mapping[str, Any]) -> None:
        namespace, name = _where(body)
        self.queue.add((RUN, namespace, name))
        labels = _meta(body).get("labels") or {}
        if LABEL_SCHEDULE in labels:
            self.queue.add((SCHEDULE, namespace, labels[LABEL_SCHEDULE]), RELATED_DELAY)
        storage = storage_name_of(body)
        if storage:
            self.queue.add((STORAGE, "", storage), RELATED_DELAY)
        if is_catalogued(body):
            self.queue.add((WORKFLOW, namespace, run_workflow_name(body)))

    def on_schedule(self, body: Mapping[str, Any]) -> None:
        namespace, name = _where(body)
        self.queue.add((SCHEDULE, namespace, name))
        storage = storage_name_of(body)
        if storage:
            self.queue.add((STORAGE, "", storage), RELATED_DELAY)

    def on_storage(self, body: Mapping[str, Any]) -> None:
        _, name = _where(body)
        self.queue.add((STORAGE, "", name))
        generation = _meta(body).get("generation")
        if self._checked_generation.get(name, ...) != generation:  # new, or its spec changed
            self._checked_generation[name] = generation
            self._spawn_check(name)
        ready = condition((body.get("status") or {}).get("conditions"), "Ready")
        status = ready.get("status") if ready is not None else None
        if self._ready.get(name, "") != status:
            self._ready[name] = status
            for user in self._users(name):
                self.queue.add(user, RELATED_DELAY)

    def on_workflow(self, body: Mapping[str, Any]) -> None:
        namespace, name = _where(body)
        meta = _meta(body)
        labels = meta.get("labels") or {}
        if LABEL_CRON_WORKFLOW in labels:
            self.queue.add((WORKFLOW, namespace, name))
            self.queue.add((RUN, namespace, name))
        for run in {labels.get(LABEL_RUN), labels.get(LABEL_RESTORE_OF)} - {None}:
            self.queue.add((RUN, namespace, str(run)))
        for owner in meta.get("ownerReferences") or ():
            if owner.get("kind") == RUN and owner.get("apiVersion") == API_VERSION:
                self.queue.add((RUN, namespace, str(owner.get("name"))))

    # -- reconciling ---------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
            finally:
                self.queue.done(key)

    async def reconcile(self, key: Key) -> None:
        """Reconcile one object; failures are handled here (retried, or reported)."""
        kind, namespace, name = key
        try:
            decided = self._inputs(key)
            if decided is None:
                return
            body, decide, store = decided

            def carry_out() -> Plan:
                plan = decide()
                self.kube.execute(plan, delete_stored_object=store)
                return plan

            plan = await self._in_thread(carry_out)
            RECONCILES.labels(kind).inc()
            self._failures.pop(key, None)
            await self._clear_reconcile_error(body, plan)
            if plan.requeue_after is not None:
                self.queue.add(key, plan.requeue_after)
        except TemporaryKubeError as exc:
            self._retry(key, "temporary", str(exc))
        except objectstore.ObjectStoreError as exc:
            self.stored_object_errors[key] = str(exc)
            RECONCILE_ERRORS.labels(kind, "storage").inc()
            log.warning("%s %s/%s: %s", kind, namespace, name, exc)
            self.queue.add(key)  # at once: the next plan reports it and says when to try again
        except PermanentKubeError as exc:
            RECONCILE_ERRORS.labels(kind, "permanent").inc()
            log.error("%s %s/%s: %s (not retried until it changes)", kind, namespace, name, exc)
            await self._report(key, str(exc))
        except Exception as exc:
            # A bug: the message could quote an input (say, a Secret), so only the type is told.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            self._retry(key, "unexpected", f"{type(exc).__name__} at\n{frames}")

    def _inputs(
        self, key: Key
    ) -> tuple[Body, Callable[[], Plan], Callable[[DeleteStoredObject], None] | None] | None:
        """The object, its decision (to run in a thread: it may read a Secret), and how to
        delete a stored object; None if the object is gone. Reads the indexes, so it runs in
        the event loop, which is where kopf updates them."""
        kind, namespace, name = key
        body = self._one(_INDEX[kind], name if kind == STORAGE else (namespace, name))
        if body is None:
            return None
        now = self.clock()
        storage = self._one("storages", name if kind == STORAGE else storage_name_of(body) or "")
        if kind == STORAGE:
            check = self.checks.get(name)
            users = self._many("schedules", "schedules_by_storage", name)
            runs = self._many("runs", "runs_by_storage", name)

            def decide_storage() -> Plan:
                secret = self._read_secret(body)
                return reconcile_storage(
                    body, check=check, secret=secret, users=[*users, *runs], runs=runs, now=now
                )

            return body, decide_storage, None
        if kind == RUN:
            restore = restore_workflow_name(body)
            plan = reconcile_run(
                body,
                storage=storage,
                workflow=self._one("workflows", (namespace, run_workflow_name(body))),
                restore_workflow=self._one("workflows", (namespace, restore)) if restore else None,
                storage_error=self.stored_object_errors.pop(key, None),
                settings=self.settings,
                now=now,
            )
            return body, lambda: plan, self._stored_object_deleter(storage)
        if kind == SCHEDULE:
            runs = self._many("runs", "runs_by_schedule", (namespace, name))
            plan = reconcile_schedule(
                body, storage=storage, runs=runs, settings=self.settings, now=now
            )
            return body, lambda: plan, None
        schedule = (_meta(body).get("labels") or {}).get(LABEL_CRON_WORKFLOW, "")
        plan = record_workflow(
            body,
            schedule=self._one("schedules", (namespace, schedule)),
            run=self._one("runs", (namespace, name)),
            settings=self.settings,
            now=now,
        )
        return body, lambda: plan, None

    def _read_secret(self, storage: Mapping[str, Any]) -> Body | None:
        """The storage's credentials Secret (a GET: Secrets are never watched); None if absent."""
        credentials = (storage.get("spec") or {}).get("credentials") or {}
        name, namespace = credentials.get("name"), credentials.get("namespace")
        if not name or not namespace:
            return None
        return self.kube.get(ObjectRef("v1", "Secret", str(name), str(namespace)))

    def _stored_object_deleter(self, storage: Body | None) -> Callable[[DeleteStoredObject], None]:
        def delete(action: DeleteStoredObject) -> None:
            if storage is None or _where(storage)[1] != action.storage:
                raise objectstore.ObjectStoreError(
                    f"cannot delete {action.key}: BackupStorage {action.storage} does not exist"
                )
            secret = self._read_secret(storage)
            timeout = self.settings.storage_check_timeout
            objectstore.delete_object(storage, secret, action.key, timeout=timeout)

        return delete

    def _retry(self, key: Key, error: str, message: str) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1))
        RECONCILE_ERRORS.labels(key[0], error).inc()
        log.warning("%s %s/%s failed, retrying in %gs: %s", *key, delay, message)
        self.queue.add(key, delay)

    async def _report(self, key: Key, message: str) -> None:
        """A permanent error on the object's status and as an Event, once per message."""
        kind, namespace, name = key
        body = self._one(_INDEX[kind], name if kind == STORAGE else (namespace, name))
        if body is None:
            return
        ref = ObjectRef(
            str(body.get("apiVersion")), kind, name, namespace or None, _meta(body).get("uid")
        )
        event = EmitEvent(ref, REASON_RECONCILE_ERROR, message, "Warning")
        if kind == WORKFLOW:  # not ours: no status to write
            await self._in_thread(lambda: self.kube.emit_event(event))
            return
        conditions = list((body.get("status") or {}).get("conditions") or [])
        synced = condition(conditions, CONDITION_SYNCED)
        if synced is not None and synced.get("message") == message:
            return  # reported already: our own status write must not start a loop
        wanted = [c for c in conditions if c.get("type") != CONDITION_SYNCED]
        wanted.append(
            {
                "type": CONDITION_SYNCED,
                "status": "False",
                "reason": REASON_RECONCILE_ERROR,
                "message": message,
                "lastTransitionTime": rfc3339(self.clock()),
            }
        )

        def write() -> None:
            self.kube.merge_status(ref, {"conditions": wanted})
            self.kube.emit_event(event)

        try:
            await self._in_thread(write)
        except (TemporaryKubeError, PermanentKubeError) as exc:
            log.warning("cannot report the error on %s: %s", ref, exc)

    async def _clear_reconcile_error(self, body: Mapping[str, Any], plan: Plan) -> None:
        """After a success, drop our Synced condition unless the plan wrote the status anyway."""
        conditions = list((body.get("status") or {}).get("conditions") or [])
        if condition(conditions, CONDITION_SYNCED) is None:
            return
        namespace, name = _where(body)
        ref = ObjectRef(str(body.get("apiVersion")), str(body.get("kind")), name, namespace or None)
        if any(isinstance(a, ApplyStatus) and a.ref.name == ref.name for a in plan.actions):
            return
        wanted = [c for c in conditions if c.get("type") != CONDITION_SYNCED]
        await self._in_thread(lambda: self.kube.merge_status(ref, {"conditions": wanted}))

    # -- storage checks and the backstop -------------------------------------------------------

    async def _periodic(self) -> None:
        limit = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def bounded(name: str) -> None:
            async with limit:
                await self.check_storage(name)

        while True:
            await asyncio.sleep(self.settings.storage_check_interval)
            await asyncio.gather(*(bounded(name) for name in list(self._index("storages"))))
            for (namespace, name), store in list(self._index("runs").items()):
                for run in store:
                    if ((run.get("status") or {}).get("phase") or "") not in COMPLETED:
                        self.queue.add((RUN, namespace, name))

    def _spawn_check(self, name: str) -> None:
        if name in self._checking:  # the storage changed while it was being checked
            self._check_again.add(name)
            return
        self._checking.add(name)
        task = asyncio.create_task(self.check_storage(name), name=f"check-{name}")
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def check_storage(self, name: str) -> None:
        """Check the bucket of one storage with its credentials, then reconcile the storage."""
        self._checking.add(name)
        try:
            storage = self._one("storages", name)
            if storage is None:
                return

            def check() -> BucketCheck:
                try:
                    secret = self._read_secret(storage)
                    objectstore.check_bucket(
                        storage, secret, timeout=self.settings.storage_check_timeout
                    )
                except (objectstore.ObjectStoreError, TemporaryKubeError, PermanentKubeError) as e:
                    return BucketCheck(False, str(e), self.clock())
                bucket = ((storage.get("spec") or {}).get("parameters") or {}).get("bucket")
                return BucketCheck(True, f"the bucket {bucket!r} is reachable", self.clock())

            self.checks[name] = await self._in_thread(check)
            self.queue.add((STORAGE, "", name))
        finally:
            self._checking.discard(name)
        if name in self._check_again:
            self._check_again.discard(name)
            self._spawn_check(name)

    # -- indexes -------------------------------------------------------------------------------

    def _index(self, name: str) -> Mapping[Any, Any]:
        index = self.indices.get(name)
        return index if index is not None else {}

    def _one(self, index: str, key: Any) -> Body | None:
        for body in self._index(index).get(key, ()):
            return dict(body)
        return None

    def _many(self, bodies: str, keys: str, key: Any) -> list[Body]:
        found = []
        for where in set(self._index(keys).get(key, ())):
            body = self._one(bodies, where)
            if body is not None:
                found.append(body)
        return found

    def _users(self, storage: str) -> Iterable[Key]:
        for namespace, name in set(self._index("schedules_by_storage").get(storage, ())):
            yield (SCHEDULE, namespace, name)
        for namespace, name in set(self._index("runs_by_storage").get(storage, ())):
            yield (RUN, namespace, name)

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)


_INDEX = {RUN: "runs", SCHEDULE: "schedules", STORAGE: "storages", WORKFLOW: "workflows"}
#: The kopf indexes the controller reads, by id: objects by key, and keys by what they name.
INDEXES = (
    "runs",
    "runs_by_schedule",
    "runs_by_storage",
    "schedules",
    "schedules_by_storage",
    "storages",
    "workflows",
)


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _where(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = _meta(body)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
