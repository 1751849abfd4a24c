"""The reconcile loop's queue of keys: each key at most once at a time, the earliest due first.

Keys are ``(kind, namespace or "", name)``; a key added again keeps the earlier of its two times
(bursts of events coalesce), and one added while it is being reconciled is taken again once that
reconcile is done, so no object is reconciled twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq

__all__ = ["Key", "WorkQueue"]

#: (kind, namespace or "", name)
Key = tuple[str, str, str]


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

    def due_within(self, key: Key, seconds: float) -> bool:
        """Whether ``key`` is being reconciled, or is to be within ``seconds``."""
        if key in self._busy:
            return True
        due = self._due.get(key)
        return due is not None and due <= asyncio.get_running_loop().time() + seconds

    def done(self, key: Key) -> None:
        self._busy.discard(key)
        if key in self._again:
            due = self._again.pop(key)
            self.add(key, due - asyncio.get_running_loop().time())
