"""The metadata a real API server owns, stamped onto the objects of the emulated one.

kmock stores what it is sent; a real server gives every object a ``uid``, a
``creationTimestamp``, a ``generation`` and a ``resourceVersion``, names it from
``generateName``, drops ``status`` on create and on main-resource writes when the resource has
a ``status`` subresource (and everything but ``status`` on writes to that subresource), and
keeps all of that out of the client's reach. These pure functions compute the stored object
from what a client sent; the store only adds the resourceVersion of the commit.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SERVER_FIELDS",
    "created",
    "generated_name",
    "timestamp",
    "written",
]

Body = dict[str, Any]

#: The metadata fields only the server writes.
SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
#: The alphabet of generated name suffixes (no vowels, as the API server's own).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with seconds, as the API server writes times."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_name(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choice(_ALPHABET) for _ in range(5))


def created(
    body: Mapping[str, Any],
    *,
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    uid: str,
    now: datetime,
    status_subresource: bool,
) -> Body:
    """The object a create of ``body`` stores (before its resourceVersion)."""
    result = copy.deepcopy(dict(body))
    result["apiVersion"] = api_version
    result["kind"] = kind
    meta = result.setdefault("metadata", {})
    for field in SERVER_FIELDS:
        meta.pop(field, None)
    meta["name"] = name
    if namespace is None:
        meta.pop("namespace", None)
    else:
        meta["namespace"] = namespace
    meta["uid"] = uid
    meta["creationTimestamp"] = timestamp(now)
    meta["generation"] = 1
    if status_subresource:
        result.pop("status", None)
    return result


def _without(body: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in keys}


def written(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    status_only: bool,
    status_subresource: bool,
) -> Body:
    """The object a write of ``new`` over ``old`` stores (before its resourceVersion).

    ``status_only``: the write went to the ``status`` subresource. The server fields, the
    name, the namespace, ``apiVersion`` and ``kind`` always stay as they were.
    """
    if status_only:
        result = copy.deepcopy(dict(old))
        if "status" in new:
            result["status"] = copy.deepcopy(new["status"])
        else:
            result.pop("status", None)
    else:
        result = copy.deepcopy(dict(new))
        if status_subresource:
            if "status" in old:
                result["status"] = copy.deepcopy(old["status"])
            else:
                result.pop("status", None)
    old_meta = old.get("metadata") or {}
    meta = result.setdefault("metadata", {})
    if not isinstance(meta, dict):
        meta = result["metadata"] = {}
    for field in (*SERVER_FIELDS, "name", "namespace"):
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    for field in ("apiVersion", "kind"):
        result[field] = old[field]
    ignored = ("metadata", "status") if status_subresource else ("metadata",)
    if _without(old, *ignored) != _without(result, *ignored):
        meta["generation"] = int(old_meta.get("generation") or 0) + 1
    return result
