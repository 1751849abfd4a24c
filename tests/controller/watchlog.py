"""The recent changes of each resource, so a watch can resume from a resourceVersion.

A real API server keeps a window of recent changes per resource (its watch cache): a watch
that starts at resourceVersion N gets every change after N, or ``410 Gone`` when N has already
left the window. The log here does the same with a window of ``limit`` changes per resource;
every change carries the object before and after, so a watch with a selector can turn an
object that starts or stops matching into ADDED or DELETED, as a real server does.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kmock._internal import references

__all__ = ["Change", "Expired", "WatchLog", "event_for"]

Body = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One committed change: ``type`` is ADDED, MODIFIED or DELETED; ``rv`` its version."""

    type: str
    resource: references.resource
    rv: int
    obj: Body
    old: Body | None


class Expired(Exception):
    """The requested resourceVersion has left the window of retained changes."""


class WatchLog:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._changes: dict[references.resource, list[Change]] = defaultdict(list)
        self._base: dict[references.resource, int] = defaultdict(int)  # position of [0]
        self._floor: dict[references.resource, int] = defaultdict(int)  # newest dropped rv

    def append(self, change: Change) -> None:
        changes = self._changes[change.resource]
        changes.append(change)
        if len(changes) > self._limit + self._limit // 4:
            dropped = len(changes) - self._limit
            self._floor[change.resource] = changes[dropped - 1].rv
            self._base[change.resource] += dropped
            del changes[:dropped]

    def end(self, resource: references.resource) -> int:
        """The position the next change of ``resource`` will take."""
        return self._base[resource] + len(self._changes[resource])

    def position_after(self, resource: references.resource, rv: int) -> int:
        """The position of the first change newer than ``rv``."""
        if rv < self._floor[resource]:
            raise Expired(f"too old resource version: {rv} ({self._floor[resource]})")
        changes = self._changes[resource]
        return self._base[resource] + bisect.bisect_right(changes, rv, key=lambda c: c.rv)

    def read(self, resource: references.resource, position: int) -> tuple[list[Change], int]:
        """The changes from ``position`` on, and the position after them."""
        base = self._base[resource]
        if position < base:
            raise Expired(f"the watch fell behind by more than {self._limit} changes")
        changes = self._changes[resource][position - base :]
        return changes, position + len(changes)


def event_for(change: Change, matches: Callable[[Mapping[str, Any]], bool]) -> Body | None:
    """The event a watch with the filter ``matches`` sees for ``change``, if any."""
    now = matches(change.obj)
    before = change.old is not None and matches(change.old)
    if change.type == "MODIFIED":
        if now and before:
            return {"type": "MODIFIED", "object": change.obj}
        if now:
            return {"type": "ADDED", "object": change.obj}
        if before:
            return {"type": "DELETED", "object": change.obj}
        return None
    return {"type": change.type, "object": change.obj} if now else None
