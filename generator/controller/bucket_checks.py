"""Checking each storage's bucket with its credentials, one check at a time per storage.

A storage is checked when it is new or its spec changed (a new ``generation``), and on every
tick of the controller's periodic task; :class:`BucketChecks` keeps the latest result of each
(a :class:`~generator.controller.storages.BucketCheck`), which the storage's reconcile turns
into its ``Ready`` condition. A change that arrives while its storage is being checked is
checked again once that check ends, so the result always describes the newest spec. A check
that failed is tried again sooner than the periodic tick: after :data:`FIRST_RETRY` seconds,
doubling up to the check interval, so a bucket or Secret created after its storage makes the
storage Ready within seconds, not minutes.

The check itself (:func:`~generator.controller.objectstore.check_bucket`) blocks, bounded by
``storage_check_timeout``; it runs in the controller's threads. Its message is scrubbed of
secrets by the object store module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from generator.controller import objectstore
from generator.controller.kube import PermanentKubeError, TemporaryKubeError
from generator.controller.settings import Settings
from generator.controller.storages import BucketCheck

__all__ = ["FIRST_RETRY", "BucketChecks"]

Body = Mapping[str, Any]

#: Seconds before a failed check is tried again (then doubling, up to the check interval).
FIRST_RETRY = 10.0


class BucketChecks:
    """The latest bucket check of each storage, and the tasks that make them.

    ``storage`` reads a storage from the cache, ``read_secret`` its credentials (blocking),
    ``in_thread`` runs a blocking call off the event loop, ``checked`` is told the name of
    each storage whose check ended.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Callable[[str], Body | None],
        read_secret: Callable[[Body], Body | None],
        in_thread: Callable[[Callable[[], Any]], Awaitable[Any]],
        checked: Callable[[str], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.results: dict[str, BucketCheck] = {}
        self._storage = storage
        self._read_secret = read_secret
        self._in_thread = in_thread
        self._checked = checked
        self._clock = clock
        self._generation: dict[str, object] = {}
        self._checking: set[str] = set()
        self._again: set[str] = set()
        self._failed: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def seen(self, name: str, generation: object) -> None:
        """A storage's event: check it if it is new or its spec changed."""
        if self._generation.get(name, ...) != generation:
            self._generation[name] = generation
            self.spawn(name)

    def spawn(self, name: str) -> None:
        """Check ``name`` in a task of its own (after the running check of it, if any)."""
        if name in self._checking:  # the storage changed while it was being checked
            self._again.add(name)
            return
        self._checking.add(name)
        task = asyncio.create_task(self.check(name), name=f"check-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check(self, name: str) -> None:
        """Check the bucket of one storage with its credentials, then tell ``checked``."""
        self._checking.add(name)
        try:
            storage = self._storage(name)
            if storage is None:
                return
            result = await self._in_thread(lambda: self._check(storage))
            self.results[name] = result
            self._checked(name)
        finally:
            self._checking.discard(name)
        if name in self._again:
            self._again.discard(name)
            self.spawn(name)
        elif not result.ok:
            self._retry(name)
        else:
            self._failed.pop(name, None)

    def _retry(self, name: str) -> None:
        failures = self._failed.get(name, 0) + 1
        self._failed[name] = failures
        delay = min(FIRST_RETRY * 2 ** (failures - 1), self.settings.storage_check_interval)

        async def later() -> None:
            await asyncio.sleep(delay)
            if name not in self._checking:
                self.spawn(name)

        task = asyncio.create_task(later(), name=f"recheck-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check(self, storage: Body) -> BucketCheck:
        try:
            secret = self._read_secret(storage)
            objectstore.check_bucket(storage, secret, timeout=self.settings.storage_check_timeout)
        except (objectstore.ObjectStoreError, TemporaryKubeError, PermanentKubeError) as exc:
            return BucketCheck(False, str(exc), self._clock())
        bucket = ((storage.get("spec") or {}).get("parameters") or {}).get("bucket")
        return BucketCheck(True, f"the bucket {bucket!r} is reachable", self._clock())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
