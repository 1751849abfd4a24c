"""Kubernetes conditions and timestamps as the API server holds them: plain dicts and strings.

A condition's ``lastTransitionTime`` says when its ``status`` last changed, so a status written
again with the same condition status keeps the time it had; a new reason or message alone is
not a transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "MAX_MESSAGE",
    "Cond",
    "condition",
    "merge_conditions",
    "parse_time",
    "rfc3339",
]

#: Longer messages (a Workflow's, a storage's) are cut: a status is read in ``kubectl get``.
MAX_MESSAGE = 1024


def rfc3339(when: datetime) -> str:
    """A time as Kubernetes writes it: UTC, whole seconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A timestamp of the API (``2024-05-01T00:00:00Z``) as an aware datetime, else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _cut(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True)
class Cond:
    """One condition as decided; :func:`merge_conditions` gives it its transition time."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


def condition(conditions: object, type_: str) -> Mapping[str, Any] | None:
    """The condition of one type in a ``status.conditions`` list, if any."""
    if not isinstance(conditions, Sequence):
        return None
    for item in conditions:
        if isinstance(item, Mapping) and item.get("type") == type_:
            return item
    return None


def merge_conditions(
    previous: object, wanted: Iterable[Cond], now: datetime
) -> list[dict[str, Any]]:
    """The ``status.conditions`` list for ``wanted``, in its order.

    A condition whose status is the one it had keeps its ``lastTransitionTime``; any other
    gets ``now``.
    """
    merged = []
    for cond in wanted:
        before = condition(previous, cond.type)
        since = before.get("lastTransitionTime") if before is not None else None
        if before is None or before.get("status") != cond.status or not since:
            since = rfc3339(now)
        item: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": str(cond.reason),
            "lastTransitionTime": since,
        }
        if cond.message:
            item["message"] = _cut(cond.message)
        merged.append(item)
    return merged
