"""The API server and the object store in memory, carrying plans out the way they would.

The pure decisions are tested by feeding them plain dicts. To test what a reconcile leaves
behind, and a controller killed after any action of a plan, a test carries the plan (or a
prefix of it) out on a :class:`World` and feeds what is left to the next reconcile. The world
follows the API server for the parts a plan relies on, with the loopback server's own rules
where they overlap (:func:`~tests.controller.merging.apply_config`,
:mod:`tests.controller.objectmeta`):

- Apply is server-side apply by the controller's one field manager: what it sets is set
  (labels, annotations, finalizers and owner references one by one, maps recursively, other
  lists whole), what it applied before and leaves out now is removed, the rest stays (a label
  another writer added, Argo's status on its own objects);
- a write keeps what the server owns: uid, creationTimestamp, generation (bumped when more
  than metadata changed), deletionTimestamp, and the status of a kind with a status
  subresource (ours), which only ApplyStatus writes, whole (the controller owns all of it);
- a creation gets a uid of its own (``uid-<name>``, ``uid-<name>-2`` if that one was taken
  before: another incarnation is never mistaken for this one), the world's clock as its
  creationTimestamp, and is counted in :attr:`World.created`;
- Create does nothing to an object of that name that exists, whatever it holds;
- an action whose reference names a uid applies only to that incarnation (a precondition);
- Delete of an object with finalizers only marks it (deletionTimestamp, the first time);
  removing its last finalizer completes the deletion; no finalizer is added to an object
  being deleted (the server forbids it);
- empty labels, annotations, finalizers and owner references are not stored (as the server
  omits them), so an object reached by two paths compares equal;
- the object store is :attr:`World.stored`; every deletion in it is recorded.

Not played: resourceVersion; the garbage collector (objects owned by a deleted one stay);
the refusal of a repeated Event name (every Event posted is recorded, so a test sees one the
controller posts twice).

:func:`check_restart_safe` carries out every prefix of a plan, reconciles again from what is
left, and checks that the two plans together end where the whole plan does, without an Event
or a creation twice, and that one more reconcile finds nothing left to do.
"""

from __future__ import annotations

import copy
import functools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from generator.controller.plan import (
    Action,
    AddFinalizer,
    Apply,
    ApplyStatus,
    Create,
    Delete,
    DeleteStoredObject,
    EmitEvent,
    ObjectRef,
    Patch,
    Plan,
    RemoveFinalizer,
)
from tests.controller.bodies import NOW, Body
from tests.controller.merging import apply_config, merge_patch
from tests.controller.objectmeta import created, timestamp, written
from tests.controller.resources import our_crds

__all__ = ["Key", "Reconcile", "StoredKey", "World", "check_restart_safe", "key_of", "settle"]

#: An object of the API: (kind, namespace, name).
Key = tuple[str, str | None, str]
#: An object of the object store: (storage, key).
StoredKey = tuple[str, str]
#: Metadata the server omits when empty.
_OMITTED_WHEN_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences")


@functools.cache
def _with_status_subresource() -> frozenset[str]:
    """The kinds whose status only the status subresource writes: ours, from ``crds/``."""
    return frozenset(
        crd["spec"]["names"]["kind"]
        for crd in our_crds()
        if any("status" in (v.get("subresources") or {}) for v in crd["spec"]["versions"])
    )


def _prune(live: Body, previous: Mapping[str, Any], applied: Mapping[str, Any]) -> None:
    """Remove the maps an apply emptied: the server drops a map whose fields the manager
    owned and left out, where :func:`~tests.controller.merging.apply_config` drops only the
    fields."""
    for key, before in previous.items():
        if not isinstance(before, Mapping) or not isinstance(live.get(key), dict):
            continue
        now = applied.get(key)
        _prune(live[key], before, now if isinstance(now, Mapping) else {})
        if not live[key] and key not in applied:
            del live[key]


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (body["kind"], meta.get("namespace"), meta["name"])


@dataclass
class World:
    """The objects of the API server and the object store, as far as plans touch them."""

    objects: dict[Key, Body] = field(default_factory=dict)
    stored: set[StoredKey] = field(default_factory=set)
    #: Every Event posted, in order.
    events: list[EmitEvent] = field(default_factory=list)
    #: How often a plan really created each object (a Create or Apply of an absent one).
    created: Counter[Key] = field(default_factory=Counter)
    #: Every deletion from the object store, in order (one already gone included).
    stored_deleted: list[StoredKey] = field(default_factory=list)
    now: datetime = NOW
    #: What the controller last applied to each object: the fields its field manager owns.
    _applied: dict[Key, Body] = field(default_factory=dict, repr=False)
    #: Every uid ever given, so that none is given twice.
    _uids: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def of(cls, *bodies: Body) -> World:
        world = cls()
        for body in bodies:
            world.put(body)
        return world

    def copy(self) -> World:
        return copy.deepcopy(self)

    # -- reads, as a reconcile gets them (its own copies) ----------------------------------------

    def get(self, kind: str, name: str | None, namespace: str | None) -> Body | None:
        found = self.objects.get((kind, namespace, name)) if name is not None else None
        return copy.deepcopy(found) if found is not None else None

    def of_kind(self, kind: str) -> list[Body]:
        return [copy.deepcopy(b) for (k, _, _), b in sorted(self.objects.items()) if k == kind]

    # -- what others do: users, Argo, a test setting the scene ---------------------------------

    def put(self, body: Body) -> None:
        """Store ``body`` as it is (uid included): an object another party wrote whole."""
        key = key_of(body)
        old = self.objects.get(key)
        if old is None or old["metadata"].get("uid") != body["metadata"].get("uid"):
            self._applied.pop(key, None)  # another incarnation: none of its fields are ours
        self._store(key, copy.deepcopy(body))

    def set_status(self, kind: str, name: str, namespace: str | None, status: Body) -> None:
        """Another writer's status (Argo updating its Workflow)."""
        self.objects[(kind, namespace, name)]["status"] = copy.deepcopy(status)

    def delete(self, kind: str, name: str, namespace: str | None) -> None:
        """Another party's deletion (a user, Argo's history limit), without a precondition."""
        self.do(Delete(ObjectRef("", kind, name, namespace)))

    # -- plans ---------------------------------------------------------------------------------

    def carry_out(self, plan: Plan, upto: int | None = None) -> World:
        """Carry out the plan's first ``upto`` actions (all by default): a crash after them."""
        for action in plan.actions[:upto]:
            self.do(action)
        return self

    def do(self, action: Action) -> None:
        match action:
            case Create(body=body):
                if key_of(body) not in self.objects:
                    self._create(body)
            case Apply(body=body):
                self._apply(body)
            case ApplyStatus(ref=ref, status=status):
                if (found := self._find(ref)) is not None:
                    found["status"] = copy.deepcopy(status)
            case Patch(ref=ref, labels=labels, annotations=annotations):
                if (found := self._find(ref)) is not None:
                    changes = {"labels": dict(labels), "annotations": dict(annotations)}
                    self._store(key_of(found), merge_patch(found, {"metadata": changes}))
            case AddFinalizer(ref=ref, finalizer=finalizer):
                found = self._find(ref)
                if found is not None and not found["metadata"].get("deletionTimestamp"):
                    finalizers = found["metadata"].setdefault("finalizers", [])
                    if finalizer not in finalizers:
                        finalizers.append(finalizer)
            case RemoveFinalizer(ref=ref, finalizer=finalizer):
                if (found := self._find(ref)) is not None:
                    meta = found["metadata"]
                    meta["finalizers"] = [f for f in meta.get("finalizers", []) if f != finalizer]
                    self._store(key_of(found), found)
            case Delete(ref=ref):
                if (found := self._find(ref)) is not None:
                    if found["metadata"].get("finalizers"):
                        found["metadata"].setdefault("deletionTimestamp", timestamp(self.now))
                    else:
                        self._remove(key_of(found))
            case DeleteStoredObject(storage=storage, key=key):
                self.stored.discard((storage, key))
                self.stored_deleted.append((storage, key))
            case EmitEvent():
                self.events.append(action)
            case _:  # pragma: no cover - a new action kind needs a branch here
                raise TypeError(action)

    # -- the server's side ---------------------------------------------------------------------

    def _find(self, ref: ObjectRef) -> Body | None:
        """The object ``ref`` names, None if it is gone or another incarnation."""
        found = self.objects.get((ref.kind, ref.namespace, ref.name))
        if found is None or (ref.uid and found["metadata"].get("uid") != ref.uid):
            return None
        return found

    def _create(self, body: Body) -> None:
        meta = body["metadata"]
        key = key_of(body)
        self._store(
            key,
            created(
                body,
                api_version=body["apiVersion"],
                kind=body["kind"],
                name=meta["name"],
                namespace=meta.get("namespace"),
                uid=self._new_uid(meta["name"]),
                now=self.now,
                status_subresource=body["kind"] in _with_status_subresource(),
            ),
        )
        self.created[key] += 1

    def _apply(self, body: Body) -> None:
        key = key_of(body)
        live = self.objects.get(key)
        if live is None:
            self._create(body)
        else:
            previous = self._applied.get(key)
            merged = apply_config(live, previous, body)
            _prune(merged, previous or {}, body)
            subresource = body["kind"] in _with_status_subresource()
            new = written(live, merged, status_only=False, status_subresource=subresource)
            self._store(key, new)
        self._applied[key] = copy.deepcopy(body)

    def _new_uid(self, name: str) -> str:
        uid, number = f"uid-{name}", 1
        while uid in self._uids:
            number += 1
            uid = f"uid-{name}-{number}"
        return uid

    def _store(self, key: Key, body: Body) -> None:
        """Keep ``body`` as the server would, or complete its deletion if nothing holds it."""
        meta = body["metadata"]
        for name in _OMITTED_WHEN_EMPTY:
            if name in meta and not meta[name]:
                del meta[name]
        if "uid" in meta:
            self._uids.add(meta["uid"])
        self.objects[key] = body
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key)

    def _remove(self, key: Key) -> None:
        del self.objects[key]
        self._applied.pop(key, None)


Reconcile = Callable[[World], Plan]


def settle(world: World, reconcile: Reconcile) -> Plan:
    """The plan of one more reconcile, which must have nothing left to do but re-apply."""
    plan = reconcile(world)
    leftover = [a for a in plan.actions if not isinstance(a, Apply)]
    assert leftover == [], f"a settled reconcile still plans {leftover}"
    return plan


def _told(events: list[EmitEvent]) -> list[tuple[ObjectRef, str, str]]:
    return [(e.regarding, e.reason, e.type) for e in events]


def check_restart_safe(world: World, reconcile: Reconcile) -> World:
    """Every prefix of the plan, then a fresh reconcile, ends where the whole plan does.

    Returns the world after the whole plan.
    """
    plan = reconcile(world)
    whole = world.copy().carry_out(plan)
    for cut in range(len(plan.actions) + 1):
        partial = world.copy().carry_out(plan, cut)
        partial.carry_out(reconcile(partial))
        where = f"after {cut} of {len(plan.actions)} actions"
        assert partial.objects == whole.objects, where
        assert partial.created == whole.created, f"{where}: created {partial.created}"
        # An Event tells of a change after it is made, so a restart in between may leave one
        # out or word it for what was left to do (a rotation cut in two names the runs the
        # second plan deletes); it never posts one twice or posts one the plan had not.
        counted = Counter(_told(partial.events))
        assert all(n == 1 for n in counted.values()), f"{where}: an Event twice: {counted}"
        assert not counted - Counter(_told(whole.events)), f"{where}: an unexpected Event"
        settle(partial, reconcile)
    return whole
