"""The ``Synced`` condition: a reconcile the API server refused, on the object's own status.

A permanent error (the API refused a request: a bad field, a forbidden namespace) is not
retried until the object changes; the user learns of it from ``kubectl describe``: a
``Synced=False`` condition with reason ``ReconcileError`` and the API's message, and an Event.
The next successful reconcile drops the condition. Both decisions are pure: the conditions to
write, or None when there is nothing to write (reported already, or nothing to clear), so that
our own status write does not start a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from generator.controller.conditions import condition, rfc3339
from generator.controller.plan import ApplyStatus, Plan

__all__ = ["CONDITION_SYNCED", "REASON_RECONCILE_ERROR", "cleared", "reported"]

#: Condition written when a reconcile is refused by the API server.
CONDITION_SYNCED = "Synced"
REASON_RECONCILE_ERROR = "ReconcileError"

Conditions = list[dict[str, Any]]


def _conditions(body: Mapping[str, Any]) -> Conditions:
    return list((body.get("status") or {}).get("conditions") or [])


def reported(body: Mapping[str, Any], message: str, now: datetime) -> Conditions | None:
    """The conditions that report ``message``; None if it is reported already."""
    conditions = _conditions(body)
    synced = condition(conditions, CONDITION_SYNCED)
    if synced is not None and synced.get("message") == message:
        return None
    wanted = [c for c in conditions if c.get("type") != CONDITION_SYNCED]
    wanted.append(
        {
            "type": CONDITION_SYNCED,
            "status": "False",
            "reason": REASON_RECONCILE_ERROR,
            "message": message,
            "lastTransitionTime": rfc3339(now),
        }
    )
    return wanted


def cleared(body: Mapping[str, Any], plan: Plan) -> Conditions | None:
    """After a successful reconcile, the conditions without ours; None if there is none, or
    the plan writes the object's status anyway (its status is the reconcile's own)."""
    conditions = _conditions(body)
    if condition(conditions, CONDITION_SYNCED) is None:
        return None
    name = (body.get("metadata") or {}).get("name")
    if any(isinstance(a, ApplyStatus) and a.ref.name == name for a in plan.actions):
        return None
    return [c for c in conditions if c.get("type") != CONDITION_SYNCED]
