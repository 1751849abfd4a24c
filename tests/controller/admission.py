"""What the emulated API server refuses before it stores a write, worded as a real server's.

Pure checks on what a client sent, each raising the :class:`~tests.controller.apierrors.ApiError`
a real server answers: the namespace of the URL against the body's, ``apiVersion``/``kind``
and the name against the URL, a stale ``resourceVersion`` (409 Conflict, the optimistic
concurrency every controller relies on), delete preconditions, and new finalizers on an object
already being deleted. ``what`` names the resource as a server does (``plural.group``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.controller import apierrors

__all__ = [
    "check_finalizers",
    "check_name",
    "check_preconditions",
    "check_type",
    "check_version",
    "namespace_for",
]

_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def namespace_for(
    what: str, namespaced: bool, url_namespace: str | None, body_namespace: Any
) -> str | None:
    """The namespace an object goes to (None for a cluster-scoped resource)."""
    if not namespaced:
        return None
    if url_namespace and body_namespace and url_namespace != body_namespace:
        raise apierrors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    namespace = url_namespace or body_namespace
    if not namespace:
        raise apierrors.bad_request(f"{what} are namespaced: a namespace is needed")
    return str(namespace)


def check_type(api_version: str, kind: str, body: Mapping[str, Any]) -> None:
    for field, expected in (("apiVersion", api_version), ("kind", kind)):
        sent = body.get(field)
        if sent is not None and sent != expected:
            raise apierrors.bad_request(
                f"the {field} in the data ({sent}) does not match the expected {field} ({expected})"
            )


def check_name(name: str, body: Mapping[str, Any]) -> None:
    sent = _meta(body).get("name")
    if sent is not None and sent != name:
        raise apierrors.bad_request(
            f"the name of the object ({sent}) does not match the name on the URL ({name})"
        )


def check_version(what: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """A write whose result names a resourceVersion must name the stored one."""
    sent = _meta(new).get("resourceVersion")
    if sent is not None and str(sent) != str(_meta(old).get("resourceVersion")):
        raise apierrors.conflict(what, name, _MODIFIED)


def check_preconditions(
    what: str, name: str, old: Mapping[str, Any], preconditions: Mapping[str, Any] | None
) -> None:
    meta = _meta(old)
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = (preconditions or {}).get(field)
        if wanted is not None and str(wanted) != str(meta.get(field)):
            why = (
                f"Precondition failed: {label} in precondition: {wanted}, "
                f"{label} in object meta: {meta.get(field)}"
            )
            raise apierrors.conflict(what, name, why)


def check_finalizers(what: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """No finalizer may be added to an object that is being deleted."""
    if not _meta(old).get("deletionTimestamp"):
        return
    added = set(_meta(new).get("finalizers") or []) - set(_meta(old).get("finalizers") or [])
    if added:
        why = (
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is "
            f"being deleted, found new finalizers {sorted(added)}"
        )
        raise apierrors.invalid(what, _meta(new).get("name"), why)
