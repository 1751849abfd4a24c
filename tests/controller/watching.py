"""Watch streams of the emulated API server, as a real server streams them.

A watch with ``resourceVersion=N`` gets every change after N from the store's log, or one
``ERROR`` event with ``410 Expired`` once N has left the log (clients then list again); without
a version (or with ``0``, or ``sendInitialEvents=true``) it starts with an ADDED event per
existing object. Selectors turn an object that starts or stops matching into ADDED or DELETED.
``timeoutSeconds`` ends the stream (with a BOOKMARK when ``allowWatchBookmarks``). An open watch
is a :class:`Watch` in the server's registry, which a test can drop: the connection is cut
as a network failure would cut it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableSet
from typing import Any

import aiohttp.web
from kmock._internal import references

from tests.controller.apierrors import bad_request, status_object
from tests.controller.selectors import Query
from tests.controller.store import Store
from tests.controller.watchlog import Expired, event_for

__all__ = ["Watch", "stream"]

Body = dict[str, Any]


class Watch:
    """An open watch of ``resource``; :meth:`drop` cuts its connection."""

    def __init__(self, resource: references.resource, raw: aiohttp.web.BaseRequest) -> None:
        self.resource = resource
        self.dropped = asyncio.Event()
        self._raw = raw

    def drop(self) -> None:
        if self._raw.transport is not None:
            self._raw.transport.close()
        self.dropped.set()


def _line(event: Body) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _error(message: str) -> Body:
    return {"type": "ERROR", "object": status_object(410, message, reason="Expired")}


def bookmark(store: Store, resource: references.resource, *, initial_end: bool = False) -> Body:
    meta: Body = {"resourceVersion": str(store.resource_version)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": store.kind(resource), "apiVersion": store.api_version(resource)}
    return {"type": "BOOKMARK", "object": {**obj, "metadata": meta}}


async def stream(
    store: Store,
    raw: aiohttp.web.BaseRequest,
    resource: references.resource,
    query: Query,
    params: dict[str, str],
    registry: MutableSet[Watch],
) -> aiohttp.web.StreamResponse:
    """Serve one watch request until it times out, the client leaves, or it is dropped."""
    since = params.get("resourceVersion") or "0"
    initial = params.get("sendInitialEvents") == "true"
    try:
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
    except ValueError as exc:
        raise bad_request("timeoutSeconds must be a number") from exc
    # Up to the first write nothing awaits: the snapshot and the log position agree.
    events: list[Body] = []
    position: int | None = None
    if since == "0" or initial:
        events = [{"type": "ADDED", "object": obj} for obj in store.list(resource, query)]
        position = store.log.end(resource)
        if initial:
            events.append(bookmark(store, resource, initial_end=True))
    else:
        try:
            position = store.log.position_after(resource, int(since))
        except ValueError as exc:
            raise bad_request(f"invalid resourceVersion {since!r}") from exc
        except Expired as exc:
            events = [_error(str(exc))]
    response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
    watch = Watch(resource, raw)
    registry.add(watch)  # before the client sees the headers: from then on it can be dropped
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        await response.prepare(raw)
        for event in events:
            await response.write(_line(event))
        while position is not None and not watch.dropped.is_set():
            waiter = store.changed
            try:
                changes, position = store.log.read(resource, position)
            except Expired as exc:
                await response.write(_line(_error(str(exc))))
                break
            for change in changes:
                if (seen := event_for(change, query.matches)) is not None:
                    await response.write(_line(seen))
            if changes:
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                if params.get("allowWatchBookmarks") == "true":
                    await response.write(_line(bookmark(store, resource)))
                break
            await _first(waiter, watch.dropped, timeout=remaining)
        if not watch.dropped.is_set():
            await response.write_eof()
    except ConnectionError:
        pass  # the client went away
    finally:
        registry.discard(watch)
    return response


async def _first(*events: asyncio.Event, timeout: float | None) -> None:
    """Wait until one of ``events`` is set, or ``timeout`` seconds."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
