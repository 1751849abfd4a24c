"""The reconcile loop: a queue of keys, workers that decide purely and act through kube.

:class:`Controller` is told what changed (``on_run``, ``on_schedule``, ``on_storage``,
``on_workflow``: called by :mod:`generator.controller.operator` for every watch event) and puts
the keys of the objects whose inputs changed on its :class:`WorkQueue`: a Workflow's event
concerns its run, or for a cron-spawned one its catalogue entry, which writes the run's status
(and its run only once it is deleted); a run's event concerns its schedule (status, rotation)
and its storage (counts) as well. Workers take one key at a time per object, read its inputs
from the cache and decide (:mod:`generator.controller.decisions`: the pure reconcile of its
kind), and hand the Plan to :mod:`generator.controller.kube` in a thread. A periodic task checks
every storage's bucket (:mod:`generator.controller.bucket_checks`) and puts every unfinished
run back on the queue: the backstop for deadlines and lost events.

The inputs are the controller's own :class:`~generator.controller.cache.Cache`, which every
event updates. At start (:meth:`Controller.prime`, before kopf watches) the controller lists
the keys of every object it will watch, and its workers take nothing from the queue until kopf
has delivered each of them (:class:`~generator.controller.cache.Startup`), so no reconcile
decides on a partial view.

Work that would change nothing is not done: a schedule's or a storage's event that only brings
back the status its reconcile wrote queues nothing; an apply of a body this process applied
unchanged just before is not sent again (:class:`~generator.controller.cache.Applied`); a run
in progress that the catalogue records waits while the catalogue's reconcile of its Workflow
is due, since both would write the same status.

Failures: a temporary one (409, 429, 5xx, the network) puts the key back with an exponential
back-off; an S3 failure while deleting a stored object is handed to the next reconcile of the
run (``storage_error``), which reports it and says when to try again; a permanent one (the API
refused a request) is reported on the object's status (condition ``Synced``, reason
``ReconcileError``, the API's message) and as an Event, and not retried until the object
changes. Secrets are only ever read with a GET, when a storage is checked or reconciled.

A little over the size of most modules here: what an event concerns (the ``on_*`` routing) and
how a failed reconcile is handled are kept beside the loop that relies on both.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeGuard

from prometheus_client import Counter

from generator.controller import objectstore, synced
from generator.controller.bucket_checks import BucketChecks
from generator.controller.cache import (
    RUN,
    SCHEDULE,
    STORAGE,
    WORKFLOW,
    Applied,
    Cache,
    Key,
    Startup,
    is_our_workflow,
    key_of,
    only_status_changed,
)
from generator.controller.conditions import condition
from generator.controller.decisions import decision
from generator.controller.kube import Kube, PermanentKubeError, TemporaryKubeError
from generator.controller.names import (
    COMPLETED,
    LABEL_CRON_WORKFLOW,
    LABEL_RESTORE_OF,
    PHASE_FAILED,
)
from generator.controller.objects import is_catalogued, run_workflow_name
from generator.controller.plan import (
    Action,
    Apply,
    ApplyStatus,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Plan,
)
from generator.controller.progress import Reason, is_final
from generator.controller.settings import Settings
from generator.controller.storages import storage_name_of
from generator.controller.workqueue import WorkQueue
from generator.models import (
    API_VERSION,
    LABEL_RUN,
    LABEL_SCHEDULE,
    LABEL_VERIFIES,
    LABEL_VERIFY_OF,
)

__all__ = ["Controller", "Key", "WorkQueue"]

log = logging.getLogger(__name__)

Body = dict[str, Any]

#: Concurrent reconciles, and threads for the blocking client.
WORKERS = 8
THREADS = 16
#: Back-off of a key whose reconcile failed temporarily: doubling from FIRST to MAX seconds.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
#: Related reconciles (a schedule's or a storage's counts) wait this long, so bursts coalesce;
#: a storage's longer: it reads every run that names it (~0.1 s for 10,000 of them).
RELATED_DELAY = 0.5
STORAGE_DELAY = 2.0
#: Bucket checks at once, on the periodic task's tick.
CHECKS_AT_ONCE = 4
#: A run the catalogue records waits this long when the catalogue is about to write its status.
CATALOGUE_FIRST = 0.5
#: What is listed at start, (apiVersion, kind, namespaced), in the order kopf watches them.
WATCHED = (
    (API_VERSION, STORAGE, False),
    (API_VERSION, SCHEDULE, True),
    (API_VERSION, RUN, True),
    ("argoproj.io/v1alpha1", WORKFLOW, True),
)
#: At start, objects kopf has not delivered are read at most this many at a time.
STARTUP_READS = 50

RECONCILES = Counter(
    "backup_operator_reconciles_total", "Reconciles carried out, by kind.", ["kind"]
)
RECONCILE_ERRORS = Counter(
    "backup_operator_reconcile_errors_total",
    "Reconciles that failed, by kind and error (temporary, permanent, storage, unexpected).",
    ["kind", "error"],
)


class Controller:
    """The reconcile loop over the cache of what kopf delivers; ``kube`` does every request."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        workers: int = WORKERS,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.queue = WorkQueue()
        self.cache = Cache()
        self.startup = Startup()
        self.applied = Applied()
        #: Set once every object listed at start was delivered, when reconciling begins.
        self.reconciling = asyncio.Event()
        #: The namespaces watched; empty: all of them.
        self.namespaces = namespaces
        self.checks = BucketChecks(
            settings,
            storage=lambda name: self.cache.get((STORAGE, "", name)),
            read_secret=self._read_secret,
            in_thread=self._in_thread,
            checked=lambda name: self.queue.add((STORAGE, "", name)),
            clock=clock,
        )
        self.stored_object_errors: dict[Key, str] = {}
        self._failures: dict[Key, int] = {}
        self._ready: dict[str, str | None] = {}
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="kube")

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def indices(self) -> Mapping[str, Any]:
        """The watched objects as kopf's indexes held them, for the metrics
        (:meth:`~generator.controller.cache.Cache.indices`)."""
        return self.cache.indices()

    async def prime(self) -> None:
        """List the key of every object to watch (a page at a time): reconciling starts once
        kopf has delivered each (see :meth:`start`). Raises TemporaryKubeError."""

        def listed() -> list[Key]:
            keys = []
            for api_version, kind, namespaced in WATCHED:
                for namespace in self.namespaces if namespaced and self.namespaces else [None]:
                    for body in self.kube.iter_objects(api_version, kind, namespace=namespace):
                        if kind != WORKFLOW or is_our_workflow(body):
                            keys.append(key_of(kind, body))
            return keys

        self.startup.expect(await self._in_thread(listed))
        log.info("listed %d objects; reconciling once kopf has delivered them", self.startup.listed)

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._begin(), name="startup"))

    async def _begin(self) -> None:
        await self.startup.wait(lambda: self._in_thread(self._read_missing))
        self.reconciling.set()
        for number in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-{number}"))
        self._tasks.append(asyncio.create_task(self._periodic(), name="periodic"))

    def _read_missing(self) -> None:
        """Read the objects kopf has not delivered: those gone (or no longer ours) are dropped."""
        versions = {kind: api_version for api_version, kind, _ in WATCHED}
        for key in sorted(self.startup.missing)[:STARTUP_READS]:
            kind, namespace, name = key
            ref = ObjectRef(versions[kind], kind, name, namespace or None)
            try:
                body = self.kube.get(ref)
            except (TemporaryKubeError, PermanentKubeError) as exc:
                log.warning("cannot tell whether %s is still there: %s", ref, exc)
                continue
            if body is None or (kind == WORKFLOW and not is_our_workflow(body)):
                self.startup.gone(key)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.checks.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- what an event changes -----------------------------------------------------------------

    def _seen(self, kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        """Keep the object in the cache (drop it when ``deleted``)."""
        if deleted:
            self.startup.delivered(self.cache.remove(kind, body))
        else:
            self.startup.delivered(self.cache.put(kind, body))

    def on_run(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        self._seen(RUN, body, deleted)
        namespace, name = _where(body)
        self.queue.add((RUN, namespace, name))
        labels = _meta(body).get("labels") or {}
        if LABEL_SCHEDULE in labels:
            self.queue.add((SCHEDULE, namespace, labels[LABEL_SCHEDULE]), RELATED_DELAY)
        storage = storage_name_of(body)
        if storage:
            self.queue.add((STORAGE, "", storage), STORAGE_DELAY)
        if is_catalogued(body):
            self.queue.add((WORKFLOW, namespace, run_workflow_name(body)))

    def on_schedule(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        before = self.cache.get(key_of(SCHEDULE, body))
        self._seen(SCHEDULE, body, deleted)
        if not deleted and before is not None and only_status_changed(before, body):
            return  # its status written back: what its reconcile decides from is the same
        namespace, name = _where(body)
        self.queue.add((SCHEDULE, namespace, name))
        storage = storage_name_of(body)
        if storage:
            self.queue.add((STORAGE, "", storage), STORAGE_DELAY)

    def on_storage(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        before = self.cache.get(key_of(STORAGE, body))
        self._seen(STORAGE, body, deleted)
        _, name = _where(body)
        if deleted or before is None or not only_status_changed(before, body):
            self.queue.add((STORAGE, "", name))  # not for its status written back
        self.checks.seen(name, _meta(body).get("generation"))
        ready = condition((body.get("status") or {}).get("conditions"), "Ready")
        status = ready.get("status") if ready is not None else None
        if self._ready.get(name, "") != status:
            self._ready[name] = status
            for user in self._users(name):
                self.queue.add(user, RELATED_DELAY)

    def on_workflow(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        self._seen(WORKFLOW, body, deleted)
        namespace, name = _where(body)
        meta = _meta(body)
        labels = meta.get("labels") or {}
        if LABEL_CRON_WORKFLOW in labels:
            # The catalogue writes the run's status (whose event then reconciles the run); the
            # run itself only when the Workflow is gone, which the catalogue cannot see.
            self.queue.add((WORKFLOW, namespace, name))
            if deleted:
                self.queue.add((RUN, namespace, name))
        for run in {
            labels.get(LABEL_RUN),
            labels.get(LABEL_RESTORE_OF),
            labels.get(LABEL_VERIFIES),
        }:
            if run is not None:
                self.queue.add((RUN, namespace, str(run)))
        if LABEL_VERIFY_OF in labels:  # a drill: its schedule records the result
            self.queue.add((SCHEDULE, namespace, str(labels[LABEL_VERIFY_OF])), RELATED_DELAY)
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
        if kind == RUN and self._catalogue_first(key):
            self.queue.add(key, CATALOGUE_FIRST)
            return
        try:
            decided = decision(
                self.cache,
                key,
                checks=self.checks.results,
                storage_error=lambda: self.stored_object_errors.pop(key, None),
                read_secret=self._read_secret,
                settings=self.settings,
                now=self.clock(),
            )
            if decided is None:
                return
            body = decided.body
            store = self._stored_object_deleter(decided.storage) if kind == RUN else None

            def carry_out() -> Plan | Body:
                plan = decided.decide()
                if kind == RUN:
                    there = self._workflow_still_there(body, plan)
                    if there is not None:
                        return there  # the watch is behind: decide again with it
                self._execute(plan, store, seen=body)
                return plan

            done = await self._in_thread(carry_out)
            if not isinstance(done, Plan):
                log.info("%s %s/%s: its Workflow is there after all", kind, namespace, name)
                self.on_workflow(done)
                return
            plan = done
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

    def _catalogue_first(self, key: Key) -> bool:
        """Whether a run in progress that the catalogue records waits for the catalogue's
        reconcile of its Workflow, due now: both would write the same status (and post the
        same Event), one of them before the other's write came back."""
        run = self.cache.get(key)
        if run is None or not is_catalogued(run) or is_final(run):
            return False
        return self.queue.due_within((WORKFLOW, key[1], run_workflow_name(run)), CATALOGUE_FIRST)

    def _execute(
        self,
        plan: Plan,
        store: Callable[[DeleteStoredObject], None] | None,
        *,
        seen: Mapping[str, Any],
    ) -> None:
        """Carry the plan out, less the applies of bodies this process applied unchanged less
        than :data:`~generator.controller.cache.APPLIED_FOR` ago; ``seen`` is the object as
        it was decided on (its finalizers are patched at that version)."""
        fresh = self.applied.fresh
        todo = [a for a in plan.actions if not (_is_apply(a) and fresh(a.body))]
        applies = [a.body for a in todo if _is_apply(a)]
        for body in applies:
            self.applied.forget(body)  # sent again, should this plan fail
        self.kube.execute(Plan(tuple(todo)), delete_stored_object=store, seen=[seen])
        for body in applies:
            self.applied.remember(body)

    def _workflow_still_there(self, run: Mapping[str, Any], plan: Plan) -> Body | None:
        """Before a run is failed for a Workflow the cache does not hold (WorkflowMissing),
        the Workflow read from the API server: the one found, if the watch was only behind."""
        missing = any(
            isinstance(a, ApplyStatus)
            and a.status.get("phase") == PHASE_FAILED
            and any(c.get("reason") == Reason.WORKFLOW_MISSING for c in a.status["conditions"])
            for a in plan.actions
        )
        if not missing:
            return None
        namespace = _where(run)[0] or None
        ref = ObjectRef("argoproj.io/v1alpha1", WORKFLOW, run_workflow_name(run), namespace)
        return self.kube.get(ref)

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
        body = self.cache.get(key)
        if body is None:
            return
        ref = ObjectRef(
            str(body.get("apiVersion")), kind, name, namespace or None, _meta(body).get("uid")
        )
        event = EmitEvent(ref, synced.REASON_RECONCILE_ERROR, message, "Warning")
        if kind == WORKFLOW:  # not ours: no status to write
            await self._in_thread(lambda: self.kube.emit_event(event))
            return
        wanted = synced.reported(body, message, self.clock())
        if wanted is None:
            return  # reported already: our own status write must not start a loop

        def write() -> None:
            self.kube.merge_status(ref, {"conditions": wanted})
            self.kube.emit_event(event)

        try:
            await self._in_thread(write)
        except (TemporaryKubeError, PermanentKubeError) as exc:
            log.warning("cannot report the error on %s: %s", ref, exc)

    async def _clear_reconcile_error(self, body: Mapping[str, Any], plan: Plan) -> None:
        """After a success, drop our Synced condition unless the plan wrote the status anyway."""
        wanted = synced.cleared(body, plan)
        if wanted is None:
            return
        namespace, name = _where(body)
        ref = ObjectRef(str(body.get("apiVersion")), str(body.get("kind")), name, namespace or None)
        await self._in_thread(lambda: self.kube.merge_status(ref, {"conditions": wanted}))

    # -- storage checks and the backstop -------------------------------------------------------

    async def _periodic(self) -> None:
        limit = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def bounded(name: str) -> None:
            async with limit:
                await self.checks.check(name)

        while True:
            await asyncio.sleep(self.settings.storage_check_interval)
            storages = [name for _, _, name in self.cache.keys(STORAGE)]
            await asyncio.gather(*(bounded(name) for name in storages))
            for run in self.cache.keys(RUN):
                view = self.cache.summary(run) or {}
                if ((view.get("status") or {}).get("phase") or "") not in COMPLETED:
                    self.queue.add(run)

    # -- indexes -------------------------------------------------------------------------------

    def _users(self, storage: str) -> Iterable[Key]:
        return self.cache.users_of(storage)

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)


def _is_apply(action: Action) -> TypeGuard[Apply]:
    return isinstance(action, Apply)


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _where(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = _meta(body)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
