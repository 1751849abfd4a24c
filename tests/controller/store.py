"""The state of the emulated API server: objects, versions, deletion and garbage collection.

Every write goes through one of :meth:`Store.create`, :meth:`Store.replace`,
:meth:`Store.patch` and :meth:`Store.delete`, synchronously on the server's event loop, so
each one is atomic. A committed change takes the next resourceVersion (one counter for the
whole server, as etcd's revision), lands in kmock's ``objects`` history and in the
:class:`~tests.controller.watchlog.WatchLog`, and wakes the watches. A write that changes
nothing commits nothing: no new resourceVersion, no event (as a real server treats a no-op
patch or apply).

Deletion as a real server does it: an object with finalizers gets a ``deletionTimestamp``
and stays until its last finalizer is removed; then, or at once without finalizers, it is
gone. Garbage collection is background propagation: when an object is gone for good, every
object listing it in ``metadata.ownerReferences`` (by uid) and left with no live owner is
deleted in turn, finalizers respected; an object written with owners none of which exists is
deleted too, as the garbage collector does with dangling owners. Namespaces exist once created
or once something is created in them (a real server would refuse the latter); deleting a
namespace deletes its content and the namespace goes when the last of it is gone.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import random
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kmock._internal import k8s_views, references

from tests.controller import admission, apierrors, merging, objectmeta
from tests.controller.selectors import Query
from tests.controller.watchlog import Change, WatchLog

__all__ = ["NAMESPACES", "Key", "Store"]

Body = dict[str, Any]
Key = tuple[references.resource, str | None, str]
NAMESPACES = references.resource("", "v1", "namespaces")


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _owner_uids(body: Mapping[str, Any]) -> set[str]:
    refs = _meta(body).get("ownerReferences") or []
    return {str(ref.get("uid")) for ref in refs if isinstance(ref, Mapping)}


def _what(resource: references.resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


class Store:
    """Every object of the emulated server, and the rules its writes follow."""

    def __init__(
        self,
        objects: k8s_views.ObjectsArray,
        resources: k8s_views.ResourcesArray,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        history_limit: int = 20,
        log_limit: int = 10_000,
    ) -> None:
        self._objects = objects
        self._resources = resources
        self._clock = clock
        self._history_limit = history_limit
        self._rng = random.Random()
        self._rv = 0
        self._live: dict[references.resource, dict[tuple[str | None, str], Body]] = defaultdict(
            dict
        )
        self._uids: dict[str, Key] = {}
        self._dependents: dict[str, dict[Key, None]] = defaultdict(dict)
        self._population: Counter[str] = Counter()
        self._applied: dict[Key, dict[tuple[str, bool], Body]] = defaultdict(dict)
        self._pending: deque[str] = deque()
        self._changed = asyncio.Event()
        self.log = WatchLog(log_limit)
        #: Called with every committed change, on the server's event loop.
        self.listeners: list[Callable[[Change], None]] = []

    # -- reading -----------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next commit: take it before reading, wait on it after."""
        return self._changed

    def info(self, resource: references.resource) -> references.ResourceInfo:
        if resource not in self._resources:
            raise apierrors.not_found(f"the resource {_what(resource)}")
        return self._resources[resource]

    def api_version(self, resource: references.resource) -> str:
        return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)

    def kind(self, resource: references.resource) -> str:
        return self.info(resource).kind or str(resource.plural).capitalize()

    def scope(self, resource: references.resource, namespace: str | None) -> str | None:
        return namespace if self.info(resource).namespaced is not False else None

    def get(self, resource: references.resource, namespace: str | None, name: str) -> Body:
        namespace = self.scope(resource, namespace)
        body = self._live[resource].get((namespace, name))
        if body is None:
            raise apierrors.not_found(_what(resource), name)
        return body

    def list(self, resource: references.resource, query: Query) -> list[Body]:
        self.info(resource)
        items = [body for body in self._live[resource].values() if query.matches(body)]
        items.sort(key=lambda b: (_meta(b).get("namespace") or "", _meta(b).get("name") or ""))
        return items

    # -- writing -----------------------------------------------------------------------------

    def create(self, resource: references.resource, namespace: str | None, body: Any) -> Body:
        info = self.info(resource)
        if not isinstance(body, Mapping):
            raise apierrors.bad_request("the body of a create must be a JSON object")
        meta = body.get("metadata") or {}
        what = _what(resource)
        namespace = admission.namespace_for(
            what, info.namespaced is not False, namespace, meta.get("namespace")
        )
        admission.check_type(self.api_version(resource), self.kind(resource), body)
        name = meta.get("name")
        for _ in range(10):
            if name or not meta.get("generateName"):
                break
            name = objectmeta.generated_name(str(meta["generateName"]), self._rng)
            name = None if (namespace, name) in self._live[resource] else name
        if not name:
            why = "metadata.name: Required value: name or generateName is required"
            raise apierrors.invalid(_what(resource), None, why)
        if (namespace, name) in self._live[resource]:
            raise apierrors.already_exists(_what(resource), name)
        if namespace is not None:
            self._admit(namespace)
        new = objectmeta.created(
            body,
            api_version=self.api_version(resource),
            kind=self.kind(resource),
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            now=self._clock(),
            status_subresource="status" in info.subresources,
        )
        if resource == NAMESPACES:
            new["status"] = {"phase": "Active"}
        key = (resource, namespace, name)
        self._commit(key, new, "ADDED")
        self._orphaned(key)
        self._drain()
        return new

    def replace(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        status_only: bool = False,
    ) -> Body:
        self.check_subresource(resource, status_only)
        old = self.get(resource, namespace, name)
        if not isinstance(body, Mapping):
            raise apierrors.bad_request("the body of an update must be a JSON object")
        self._check_name(resource, name, body)
        admission.check_version(_what(resource), name, old, body)
        return self._update(resource, old, body, status_only=status_only)

    def patch(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        patch_type: str,
        status_only: bool = False,
        manager: str | None = None,
    ) -> tuple[Body, bool]:
        """Patch (or, for an apply, create): the object and whether it was created."""
        self.check_subresource(resource, status_only)
        namespace = self.scope(resource, namespace)
        old = self._live[resource].get((namespace, name))
        if patch_type == "apply":
            if not manager:
                why = "metadata.managedFields.fieldManager: Required value: is required for apply"
                raise apierrors.invalid(_what(resource), name, why)
            if not isinstance(body, Mapping):
                raise apierrors.bad_request("the body of an apply must be a JSON object")
            self._check_name(resource, name, body)
            if old is None and not status_only:
                meta = {**(body.get("metadata") or {}), "name": name}
                created = self.create(resource, namespace, {**body, "metadata": meta})
                self._applied[(resource, namespace, name)][(manager, False)] = copy.deepcopy(
                    dict(body)
                )
                return created, True
        if old is None:
            raise apierrors.not_found(_what(resource), name)
        key = (resource, namespace, name)
        try:
            if patch_type == "apply":
                previous = self._applied[key].get((str(manager), status_only))
                merged = merging.apply_config(old, previous, body)
            elif patch_type == "merge":
                merged = merging.merge_patch(old, body)
            elif patch_type == "json":
                merged = merging.json_patch(old, body)
            else:
                raise apierrors.unsupported_media_type(patch_type)
        except merging.PatchError as exc:
            raise apierrors.invalid(_what(resource), name, str(exc)) from exc
        admission.check_version(_what(resource), name, old, merged)
        result = self._update(resource, old, merged, status_only=status_only)
        if patch_type == "apply" and key[1:] in self._live[resource]:
            self._applied[key][(str(manager), status_only)] = copy.deepcopy(dict(body))
        return result, False

    def delete(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
    ) -> Body | None:
        """Delete: the object now marked for deletion, or None when it is gone already."""
        old = self.get(resource, namespace, name)
        admission.check_preconditions(_what(resource), name, old, preconditions)
        result = self._delete((resource, self.scope(resource, namespace), name))
        self._drain()
        return result

    # -- the rules ---------------------------------------------------------------------------

    def check_subresource(self, resource: references.resource, status_only: bool) -> None:
        """Writes and reads of ``.../status`` need a resource declared with that subresource."""
        if status_only and "status" not in self.info(resource).subresources:
            raise apierrors.not_found(f"the subresource status of {_what(resource)}")

    def _check_name(
        self, resource: references.resource, name: str, body: Mapping[str, Any]
    ) -> None:
        admission.check_name(name, body)
        admission.check_type(self.api_version(resource), self.kind(resource), body)

    def _admit(self, namespace: str) -> None:
        """Let objects into ``namespace``: create it if need be, refuse it while it goes."""
        existing = self._live[NAMESPACES].get((None, namespace))
        if existing is None:
            self.create(NAMESPACES, None, {"metadata": {"name": namespace}})
        elif _meta(existing).get("deletionTimestamp"):
            why = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise apierrors.forbidden(_what(NAMESPACES), namespace, why)

    def _update(
        self, resource: references.resource, old: Body, new: Mapping[str, Any], *, status_only: bool
    ) -> Body:
        info = self.info(resource)
        stored = objectmeta.written(
            old, new, status_only=status_only, status_subresource="status" in info.subresources
        )
        admission.check_finalizers(_what(resource), old, stored)
        meta = _meta(stored)
        if stored == old:
            return old
        key = (resource, meta.get("namespace"), str(meta["name"]))
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # As a real server does: the write that removes the last finalizer deletes the
            # object, and watches see one DELETED (with the object as written), no MODIFIED.
            self._remove(key, stored)
        else:
            self._commit(key, stored, "MODIFIED")
            self._orphaned(key)
        self._drain()
        return stored

    def _delete(self, key: Key) -> Body | None:
        resource, namespace, name = key
        old = self._live[resource].get((namespace, name))
        if old is None:
            return None
        meta = _meta(old)
        if resource == NAMESPACES:
            for other in [k for r, objs in self._live.items() for k in self._keys(r, objs, name)]:
                self._delete(other)
            if self._population[name] and not meta.get("deletionTimestamp"):
                marked = copy.deepcopy(old)
                marked["metadata"]["deletionTimestamp"] = objectmeta.timestamp(self._clock())
                marked["status"] = {"phase": "Terminating"}
                self._commit(key, marked, "MODIFIED")
                return marked
            if self._population[name]:
                return old
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return old
            marked = copy.deepcopy(old)
            marked["metadata"]["deletionTimestamp"] = objectmeta.timestamp(self._clock())
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(key, marked, "MODIFIED")
            return marked
        self._remove(key)
        return None

    @staticmethod
    def _keys(
        resource: references.resource, objs: dict[tuple[str | None, str], Body], namespace: str
    ) -> builtins.list[Key]:
        return [(resource, ns, name) for ns, name in objs if ns == namespace]

    def _remove(self, key: Key, last: Body | None = None) -> None:
        """Delete for good; the DELETED event shows ``last`` (default: the stored object)."""
        resource, namespace, _ = key
        old = self._live[resource][key[1:]]
        self._commit(key, None, "DELETED", last)
        self._applied.pop(key, None)
        self._pending.append(str(_meta(old).get("uid")))
        if namespace is not None and not self._population[namespace]:
            ns = self._live[NAMESPACES].get((None, namespace))
            if ns is not None and _meta(ns).get("deletionTimestamp"):
                self._remove((NAMESPACES, None, namespace))

    def _orphaned(self, key: Key) -> None:
        """Delete an object whose owners are all gone (garbage collection of dangling owners)."""
        body = self._live[key[0]].get(key[1:])
        if body is not None and not self._has_owner(body):
            self._delete(key)

    def _has_owner(self, body: Mapping[str, Any]) -> bool:
        owners = _owner_uids(body)
        return not owners or any(uid in self._uids for uid in owners)

    def _drain(self) -> None:
        """Collect the dependents of every object gone for good, recursively."""
        while self._pending:
            for key in list(self._dependents.pop(self._pending.popleft(), {})):
                self._orphaned(key)

    # -- committing --------------------------------------------------------------------------

    def _commit(self, key: Key, new: Body | None, type_: str, last: Body | None = None) -> None:
        resource, namespace, name = key
        old = self._live[resource].get((namespace, name))
        self._rv += 1
        if old is not None:
            self._unindex(key, old)
        if new is None:
            assert old is not None
            last = last or old
            obj = {**last, "metadata": {**_meta(last), "resourceVersion": str(self._rv)}}
            del self._live[resource][(namespace, name)]
        else:
            new["metadata"]["resourceVersion"] = str(self._rv)
            self._live[resource][(namespace, name)] = obj = new
            self._index(key, new)
        self._record(key, new)
        change = Change(type_, resource, self._rv, obj, old)
        self.log.append(change)
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        for listener in self.listeners:
            listener(change)

    def _index(self, key: Key, body: Body) -> None:
        self._uids[str(_meta(body).get("uid"))] = key
        for uid in _owner_uids(body):
            self._dependents[uid][key] = None
        if key[1] is not None:
            self._population[key[1]] += 1

    def _unindex(self, key: Key, body: Body) -> None:
        self._uids.pop(str(_meta(body).get("uid")), None)
        for uid in _owner_uids(body):
            self._dependents.get(uid, {}).pop(key, None)
        if key[1] is not None:
            self._population[key[1]] -= 1

    def _record(self, key: Key, body: Body | None) -> None:
        """Keep kmock's view of every object's versions (the last ``history_limit`` of them)."""
        if key not in self._objects:
            self._objects[key] = [body]
            return
        history = self._objects[key].history
        history.append(body)
        if len(history) > self._history_limit:
            del history[: len(history) - self._history_limit]
