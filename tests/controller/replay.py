"""Carrying plans out on objects in memory, to test what a reconcile leaves behind.

:class:`World` holds objects by kind, namespace and name and applies each action the way the
API server would for the parts a plan relies on: Apply replaces what the controller sets and
keeps what the server owns (uid, finalizers, deletion, status); Create does nothing to an
object that exists; Delete of an object with finalizers marks it for deletion, which removing
the last one completes; an action whose uid precondition no longer holds does nothing.

:func:`check_restart_safe` carries out every prefix of a plan, reconciles again from what is
left, and checks that the two plans together end where the whole plan does, without an Event
or object twice, and that one more reconcile finds nothing left to do.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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

Body = dict[str, Any]
Key = tuple[str, str | None, str]

DELETION_TIME = "2024-05-02T00:00:00Z"


def key_of(body: Body) -> Key:
    meta = body["metadata"]
    return (body["kind"], meta.get("namespace"), meta["name"])


@dataclass
class World:
    objects: dict[Key, Body] = field(default_factory=dict)
    events: list[EmitEvent] = field(default_factory=list)
    stored_deleted: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, *bodies: Body) -> World:
        world = cls()
        for body in bodies:
            world.objects[key_of(body)] = copy.deepcopy(body)
        return world

    def copy(self) -> World:
        return World(copy.deepcopy(self.objects), list(self.events), list(self.stored_deleted))

    def get(self, kind: str, name: str, namespace: str | None = None) -> Body | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str) -> list[Body]:
        return [body for (k, _, _), body in sorted(self.objects.items()) if k == kind]

    def _find(self, ref: ObjectRef) -> Body | None:
        body = self.objects.get((ref.kind, ref.namespace, ref.name))
        if body is None or (ref.uid and body["metadata"].get("uid") != ref.uid):
            return None
        return body

    def _drop_if_done(self, ref: ObjectRef) -> None:
        body = self.objects[(ref.kind, ref.namespace, ref.name)]
        meta = body["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[(ref.kind, ref.namespace, ref.name)]

    def do(self, action: Action) -> None:
        if isinstance(action, Apply):
            body = copy.deepcopy(action.body)
            old = self.objects.get(key_of(body))
            meta = body["metadata"]
            if old is None:
                meta["uid"] = f"uid-{meta['name']}"
            else:
                for kept in ("uid", "finalizers", "deletionTimestamp", "creationTimestamp"):
                    if kept in old["metadata"]:
                        meta[kept] = old["metadata"][kept]
                if "status" in old:
                    body["status"] = old["status"]
            self.objects[key_of(body)] = body
        elif isinstance(action, Create):
            body = copy.deepcopy(action.body)
            if key_of(body) not in self.objects:
                body["metadata"]["uid"] = f"uid-{body['metadata']['name']}"
                self.objects[key_of(body)] = body
        elif isinstance(action, ApplyStatus):
            found = self._find(action.ref)
            if found is not None:
                found["status"] = copy.deepcopy(action.status)
        elif isinstance(action, Patch):
            found = self._find(action.ref)
            if found is not None:
                for part, changes in (
                    ("labels", action.labels),
                    ("annotations", action.annotations),
                ):
                    values = found["metadata"].setdefault(part, {})
                    for name, value in changes.items():
                        if value is None:
                            values.pop(name, None)
                        else:
                            values[name] = value
        elif isinstance(action, AddFinalizer):
            found = self._find(action.ref)
            if found is not None:
                finalizers = found["metadata"].setdefault("finalizers", [])
                if action.finalizer not in finalizers:
                    finalizers.append(action.finalizer)
        elif isinstance(action, RemoveFinalizer):
            found = self._find(action.ref)
            if found is not None:
                finalizers = found["metadata"].get("finalizers") or []
                found["metadata"]["finalizers"] = [f for f in finalizers if f != action.finalizer]
                self._drop_if_done(action.ref)
        elif isinstance(action, Delete):
            found = self._find(action.ref)
            if found is not None:
                found["metadata"].setdefault("deletionTimestamp", DELETION_TIME)
                self._drop_if_done(action.ref)
        elif isinstance(action, DeleteStoredObject):
            self.stored_deleted.append((action.storage, action.key))
        elif isinstance(action, EmitEvent):
            self.events.append(action)
        else:  # pragma: no cover - a new action kind needs a branch here
            raise TypeError(action)

    def run(self, actions: tuple[Action, ...] | list[Action]) -> World:
        for action in actions:
            self.do(action)
        return self


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
    whole = world.copy().run(plan.actions)
    for cut in range(len(plan.actions) + 1):
        partial = world.copy().run(plan.actions[:cut])
        partial.run(reconcile(partial).actions)
        where = f"after {cut} of {len(plan.actions)} actions"
        assert partial.objects == whole.objects, where
        # An Event tells of a change after it is made, so a restart in between may leave one
        # out or word it for what was left to do (a rotation cut in two names the runs the
        # second plan deletes); it never posts one twice or posts one the plan had not.
        counted = Counter(_told(partial.events))
        assert all(n == 1 for n in counted.values()), f"{where}: an Event twice: {counted}"
        assert not counted - Counter(_told(whole.events)), f"{where}: an unexpected Event"
        settle(partial, reconcile)
    return whole
